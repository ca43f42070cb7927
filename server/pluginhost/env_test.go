package pluginhost

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// TestPluginEnvironment: plugins get the §1.2 variables but none of the
// server's own RS_* variables (they may hold secrets).
func TestPluginEnvironment(t *testing.T) {
	t.Setenv("RS_ADMIN_PASSWORD", "server-secret")
	s := newFakeServer(t)
	cfg := s.config()
	os.MkdirAll(cfg.PluginRoot, 0o750)
	installBinary(t, cfg.PluginRoot, "fake", "fake")
	h := s.start(cfg)
	s.savePlugin(&models.Plugin{Name: "f", Provider: "fake"})
	waitRunning(t, h, "f")
	env := func(name string) map[string]any {
		v, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "env", Params: map[string]any{"name": name}})
		if merr != nil {
			t.Fatal(merr)
		}
		return v.(map[string]any)
	}
	if got := env("RS_ADMIN_PASSWORD"); got["set"] != false {
		t.Fatalf("server secret leaked into the plugin: %v", got)
	}
	if got := env("RS_ENDPOINT"); got["value"] != cfg.APIURL {
		t.Fatalf("RS_ENDPOINT: %v", got)
	}
	if got := env("RS_WEBROOT"); got["value"] != cfg.FileRoot {
		t.Fatalf("RS_WEBROOT: %v", got)
	}
	if got := env("RS_TOKEN"); got["value"] == "" {
		t.Fatal("no RS_TOKEN")
	}
}

// TestStopEscalates: a plugin that ignores /stop and SIGTERM is killed
// after the grace periods.
func TestStopEscalates(t *testing.T) {
	s := newFakeServer(t)
	cfg := s.config()
	cfg.StopGrace = 300 * time.Millisecond
	os.MkdirAll(cfg.PluginRoot, 0o750)
	installBinary(t, cfg.PluginRoot, "stubborn", "stubborn")
	h := s.start(cfg)
	s.savePlugin(&models.Plugin{Name: "st", Provider: "stubborn"})
	p := waitRunning(t, h, "st")
	pid := p.cmd.Process.Pid
	s.deletePlugin("st")
	waitFor(t, 20*time.Second, "stubborn plugin killed", func() bool { return syscall.Kill(pid, 0) != nil })
	<-p.exited
	if !strings.Contains(p.exitString(), "killed") {
		t.Fatalf("stubborn plugin ended with %q, want killed", p.exitString())
	}
}
