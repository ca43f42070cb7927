package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
	"github.com/provisionhq/provision/server/servertest"
)

// TestStartupOutputBounded: a plugin that prints 20000 lines on stdout
// and on stderr (about 4.8 MB) before READY! starts normally, and its
// start-up output puts at most maxStartupLines lines (plus what was
// still in the stderr pipe at READY!) in the log, then one line saying
// how much was dropped.
func TestStartupOutputBounded(t *testing.T) {
	logs := &servertest.Buffer{}
	_, h, _ := runningPlugin(t, "chatty", &models.Plugin{Name: "chatty1", Provider: "chatty"}, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.ReadyTimeout = time.Minute
	})
	if v, err := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Plugin: "chatty1", Command: "pid"}); err != nil || v == nil {
		t.Fatalf("chatty1 does not answer: %v %v", v, err)
	}
	var startup, stderr, startupBytes int
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, `msg="plugin start-up"`):
			startup++
			startupBytes += len(line)
		case strings.Contains(line, `msg="plugin stderr"`):
			stderr++
			startupBytes += len(line)
		}
	}
	t.Logf("logged %d start-up and %d stderr lines, %d bytes", startup, stderr, startupBytes)
	if startup > maxStartupLines {
		t.Errorf("%d stdout lines before READY! logged, want at most %d", startup, maxStartupLines)
	}
	// stderr lines written before READY! but read after it are logged
	// as ordinary output: at most a pipe buffer (64 KiB) of them.
	if startupBytes > 256<<10 {
		t.Errorf("start-up output put %d bytes in the log", startupBytes)
	}
	if !strings.Contains(logs.String(), "plugin start-up output dropped") {
		t.Errorf("the log does not say that start-up output was dropped")
	}
}

// TestNotRunningSaysWhyAfterCrash: between a crash and the supervisor
// noticing it, an action is refused with the exit status, not with
// "Plugin X is not running: running".
func TestNotRunningSaysWhyAfterCrash(t *testing.T) {
	p := &process{exitErr: errors.New("exit status 3")}
	p.life, p.lifeDone = context.WithCancel(context.Background())
	p.lifeDone()
	in := &instance{name: "x", state: "running", proc: p}
	_, err := in.current()
	if err == nil {
		t.Fatal("an exited process is current")
	}
	msg := err.Error()
	if strings.HasSuffix(msg, "not running: running") || !strings.Contains(msg, "exited unexpectedly (exit status 3)") {
		t.Errorf("refusal %q does not say the plugin exited and how", msg)
	}
	if why := in.whyNotRunning(); !strings.Contains(why, "exit status 3") {
		t.Errorf("whyNotRunning %q does not say how the plugin exited", why)
	}
	p.unhealthy.Store(true)
	if _, err := in.current(); err == nil || !strings.Contains(err.Error(), "stopped answering") {
		t.Errorf("refusal for a killed unhealthy plugin: %v", err)
	}
}

// TestScratchNamesDistinct: plugins whose names share the first 16
// characters, or differ only in characters shortName replaces, get
// scratch directories of their own; short plain names are kept.
func TestScratchNamesDistinct(t *testing.T) {
	names := []string{"fake1", "averyveryverylongname-1", "averyveryverylongname-2", "a b", "a_b", "a/b"}
	seen := map[string]string{}
	for _, n := range names {
		s := scratchName(n)
		if other, dup := seen[s]; dup {
			t.Errorf("%q and %q share scratch directory %q", n, other, s)
		}
		seen[s] = n
	}
	if scratchName("fake1") != "fake1" {
		t.Errorf("scratchName(fake1) = %q", scratchName("fake1"))
	}
}

// sandboxDirs returns a scratch and a socket root the plugin user can
// reach (t.TempDir() is 0700).
func sandboxDirs(t *testing.T) (scratch, comm string) {
	t.Helper()
	for _, p := range []*string{&scratch, &comm} {
		d, err := os.MkdirTemp("", "pluginhost-sandbox-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		*p = d
	}
	return scratch, comm
}

// TestSandboxNeedsReachableDirs: as root, a scratch root the plugin user
// cannot reach (inside a 0700 directory, like the base directory) is
// refused when the host is created, naming the directory in the way.
func TestSandboxNeedsReachableDirs(t *testing.T) {
	if !(Sandbox{Enabled: true, User: "nobody"}).SwitchesUser() {
		t.Skip("needs root and a nobody account")
	}
	s := newFakeServer(t)
	cfg := s.config()
	cfg.Sandbox = Sandbox{Enabled: true, User: "nobody"}
	_, err := New(cfg, s.deps())
	if err == nil || !strings.Contains(err.Error(), "out of reach of plugin user nobody") {
		t.Fatalf("New with a scratch root in a 0700 directory: %v", err)
	}
}

// TestSandboxReportsUnexecutableProvider: a provider file the plugin
// user may not execute (mode 0700) is reported as such in the
// provider's errors, with the sandbox helper's reason.
func TestSandboxReportsUnexecutableProvider(t *testing.T) {
	if !(Sandbox{Enabled: true, User: "nobody"}).SwitchesUser() {
		t.Skip("needs root and a nobody account")
	}
	s := newFakeServer(t)
	cfg := s.config()
	cfg.ScratchRoot, cfg.CommRoot = sandboxDirs(t)
	cfg.Sandbox = Sandbox{Enabled: true, User: "nobody"}
	path := installBinary(t, cfg.PluginRoot, "fake", "fake")
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
	h := s.start(cfg)
	info, ok := h.Provider("fake")
	if !ok || len(info.Errors) == 0 {
		t.Fatalf("provider fake: %+v %v", info, ok)
	}
	if msg := strings.Join(info.Errors, "; "); !strings.Contains(msg, "must be executable by uid") || !strings.Contains(msg, sandbox.ErrorPrefix) {
		t.Errorf("errors %q do not say the plugin user cannot execute the provider", msg)
	}
}

// TestSandboxedPluginRuns: with the sandbox on (as nobody when root), a
// provider is defined, unpacked and runs, in its own scratch directory.
func TestSandboxedPluginRuns(t *testing.T) {
	scratch, comm := sandboxDirs(t)
	s, h, p := runningPlugin(t, "fake", &models.Plugin{Name: "fake1", Provider: "fake"}, func(c *Config) {
		c.ScratchRoot, c.CommRoot = scratch, comm
		c.Sandbox = Sandbox{Enabled: true, User: "nobody"}
	})
	cfg := s.config()
	if _, err := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "pid", Plugin: "fake1"}); err != nil {
		t.Fatalf("pid: %v", err)
	}
	if !strings.Contains(p.sandbox, "no_new_privs=yes") {
		t.Errorf("process sandbox %q", p.sandbox)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.FileRoot, "files", "plugin_providers", "fake", "testFile")); err != nil || string(b) != "ImaFile v1" {
		t.Errorf("unpacked testFile: %q %v", b, err)
	}
	// The helper's policy does not reach the plugin; TMPDIR is its
	// scratch directory.
	for name, want := range map[string]any{
		"PROVISION_PLUGIN_SANDBOX": map[string]any{"set": false, "value": ""},
		"TMPDIR":                   map[string]any{"set": true, "value": filepath.Join(scratch, "fake1")},
	} {
		v, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Plugin: "fake1", Command: "env", Params: map[string]any{"name": name}})
		if merr != nil || fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("plugin env %s: %v %v, want %v", name, v, merr, want)
		}
	}
	t.Logf("enforced: %s", p.sandbox)
}
