package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStartupOutputBounded: a plugin that prints 20000 lines on stdout
// and on stderr (about 4.8 MB) before READY! starts normally, and its
// start-up output puts at most maxStartupLines lines (plus what was
// still in the stderr pipe at READY!) in the log, then one line saying
// how much was dropped.
func TestStartupOutputBounded(t *testing.T) {
	logs := &lockedBuffer{}
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
