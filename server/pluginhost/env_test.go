package pluginhost

import (
	"context"
	"errors"
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
	_, h, _ := runningPlugin(t, "fake", &models.Plugin{Name: "f", Provider: "fake"}, nil)
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
	if got := env("RS_ENDPOINT"); got["value"] != h.cfg.APIURL {
		t.Fatalf("RS_ENDPOINT: %v", got)
	}
	if got := env("RS_WEBROOT"); got["value"] != h.cfg.FileRoot {
		t.Fatalf("RS_WEBROOT: %v", got)
	}
	if got := env("RS_TOKEN"); got["value"] == "" {
		t.Fatal("no RS_TOKEN")
	}
}

// TestStopEscalates: a plugin that ignores /stop and SIGTERM is killed
// after the grace periods.
func TestStopEscalates(t *testing.T) {
	s, _, p := runningPlugin(t, "stubborn", &models.Plugin{Name: "st", Provider: "stubborn"}, func(cfg *Config) {
		cfg.StopGrace = 300 * time.Millisecond
	})
	pid := p.cmd.Process.Pid
	s.deletePlugin("st")
	waitFor(t, 20*time.Second, "stubborn plugin killed", func() bool { return syscall.Kill(pid, 0) != nil })
	<-p.exited
	if !strings.Contains(p.exitString(), "killed") {
		t.Fatalf("stubborn plugin ended with %q, want killed", p.exitString())
	}
}

// TestShutdownBudgetKillsStuckPlugins: a plugin with an action that never
// ends, which also ignores /stop and SIGTERM, would hold a plain Close for
// the drain plus two grace periods (3 minutes here). Shutdown with a spent
// budget kills it instead: Shutdown returns, the process is gone and the
// action's caller is answered with a 502.
func TestShutdownBudgetKillsStuckPlugins(t *testing.T) {
	s, h, p := runningPlugin(t, "stubborn", &models.Plugin{Name: "st", Provider: "stubborn"}, func(cfg *Config) {
		cfg.DrainTimeout, cfg.StopGrace = time.Minute, time.Minute
	})
	pid := p.cmd.Process.Pid
	m := s.addMachine("m1", nil)
	answered := make(chan error, 1)
	go func() {
		_, err := h.RunAction(context.Background(), ActionRequest{Prefix: "machines", ID: m.Uuid.String(), Command: "sleep"})
		answered <- err
	}()
	waitFor(t, 20*time.Second, "the sleep action in flight", func() bool {
		n, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "active"})
		return merr == nil && n == float64(1)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(ctx) }()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return within 30s of a 200ms budget: the stuck plugin was waited for")
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("plugin process %d outlived the shutdown", pid)
	}
	select {
	case err := <-answered:
		var me *models.Error
		if !errors.As(err, &me) || me.Code != 502 {
			t.Fatalf("the action in flight got %v, want a 502", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the action in flight was never answered")
	}
}
