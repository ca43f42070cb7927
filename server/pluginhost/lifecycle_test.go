package pluginhost

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/provisionhq/provision/models"
)

func pidOf(t *testing.T, h *Host, plugin string) int {
	t.Helper()
	v, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "pid", Plugin: plugin})
	if merr != nil {
		t.Fatalf("pid: %v", merr)
	}
	return int(v.(float64))
}

func hasErr(errs []string, sub string) bool {
	for _, e := range errs {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

// TestLifecycleRules covers §7: required provider params, Failed at
// start-up, restart on a material change only, leaving, and recovery from
// a plugin that stops answering.
func TestLifecycleRules(t *testing.T) {
	s := newFakeServer(t)
	cfg := s.config()
	os.MkdirAll(cfg.PluginRoot, 0o750)
	installBinary(t, cfg.PluginRoot, "fake", "fake")
	installBinary(t, cfg.PluginRoot, "needparam", "needparam")
	installBinary(t, cfg.PluginRoot, "failready", "failready")
	if os.Getenv("PH_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	h := s.start(cfg)

	s.savePlugin(&models.Plugin{Name: "np", Provider: "needparam"})
	waitFor(t, 10*time.Second, "missing provider param", func() bool {
		errs := s.pluginErrors("np")
		return len(errs) == 1 && errs[0] == "Missing required parameter: fake/token"
	})
	s.savePlugin(&models.Plugin{Name: "np", Provider: "needparam", Params: map[string]any{"fake/token": "t"}})
	waitRunning(t, h, "np")

	// Deleting the object stops the process (/stop, then signals).
	npPid := pidOf(t, h, "np")
	s.deletePlugin("np")
	// The process can be gone a moment before the supervisor publishes
	// the event, so wait for both.
	waitFor(t, 20*time.Second, "deleted plugin's process gone and plugins.stopped published", func() bool {
		return h.instance("np") == nil && syscall.Kill(npPid, 0) != nil && s.bus.find("plugins", "stopped", "np") != nil
	})

	s.savePlugin(&models.Plugin{Name: "fr", Provider: "failready"})
	waitFor(t, 10*time.Second, "Failed at start-up", func() bool {
		return hasErr(s.pluginErrors("fr"), "plugin reported Failed during start-up")
	})

	s.savePlugin(&models.Plugin{Name: "f", Provider: "fake"})
	waitRunning(t, h, "f")
	pid := pidOf(t, h, "f")
	// Meta is not material: same process.
	s.savePlugin(&models.Plugin{Name: "f", Provider: "fake", Meta: models.Meta{"color": "red"}})
	if pidOf(t, h, "f") != pid {
		t.Fatal("a Meta change restarted the plugin")
	}
	// Description is: new process.
	s.savePlugin(&models.Plugin{Name: "f", Provider: "fake", Description: "changed"})
	waitFor(t, 20*time.Second, "restart after a Description change", func() bool {
		in := h.instance("f")
		p, err := in.current()
		return err == nil && p.cmd.Process.Pid != pid
	})

	// A plugin that stops answering is killed and restarted.
	pid = pidOf(t, h, "f")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "hung plugin replaced", func() bool {
		in := h.instance("f")
		p, err := in.current()
		return err == nil && p.cmd.Process.Pid != pid
	})
	if !hasErr(s.pluginErrors("f"), "stopped answering and was killed") {
		t.Fatalf("hang not recorded: %v", s.pluginErrors("f"))
	}
	if got := counterValue(h.metrics.restarts.WithLabelValues("f")); got < 1 {
		t.Fatalf("restart not counted: %v", got)
	}

	// A plugin may ask to leave: it is stopped until changed.
	m := s.addMachine("m1", nil)
	if _, merr := runAction(t, h, ActionRequest{Prefix: "machines", ID: m.Uuid.String(), Command: "leave", Plugin: "f"}); merr != nil {
		t.Fatal(merr)
	}
	waitFor(t, 20*time.Second, "plugin left", func() bool {
		return hasErr(s.pluginErrors("f"), "Plugin left: plugin: plugin/fake: asked to leave")
	})
	if _, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "pid", Plugin: "f"}); merr == nil {
		t.Fatal("a plugin that left still answers")
	}
	if s.bus.find("plugins", "stopped", "f") == nil {
		t.Fatal("no plugins.stopped event")
	}
}

// TestPublishQueueNeverBlocksTheBus: a slow HasPublish plugin loses
// events (counted, noted) while publishing stays instantaneous.
func TestPublishQueueNeverBlocksTheBus(t *testing.T) {
	s, h, _ := runningPlugin(t, "fake", &models.Plugin{Name: "f", Provider: "fake", Params: map[string]any{"fake/slow-publish": 0.3}}, func(cfg *Config) {
		cfg.PublishQueueLen = 2
	})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 200; i++ {
			s.bus.Publish(models.Event{Type: "test", Action: "flood", Key: "k"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to the bus blocked on a slow plugin")
	}
	waitFor(t, 20*time.Second, "drops counted and noted", func() bool {
		return counterValue(h.metrics.dropped.WithLabelValues("f")) > 0 &&
			hasErr(s.pluginErrors("f"), "publish queue full")
	})
	v, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "events", Plugin: "f"})
	if merr != nil {
		t.Fatal(merr)
	}
	if n := len(v.([]any)); n == 0 || n >= 200 {
		t.Fatalf("plugin received %d of 200 events, want some but not all", n)
	}
}

// TestStopDiscardsQueuedPublishes: stopping a plugin whose /publish is
// slow cancels the post in flight and drops the queue instead of feeding
// it every queued event first (here 10 x 30 s).
func TestStopDiscardsQueuedPublishes(t *testing.T) {
	s, _, p := runningPlugin(t, "fake", &models.Plugin{Name: "f", Provider: "fake", Params: map[string]any{"fake/slow-publish": 30}}, func(cfg *Config) {
		cfg.PublishTimeout = 30 * time.Second
	})
	pid := p.cmd.Process.Pid
	for range 10 {
		s.bus.Publish(models.Event{Type: "test", Action: "queued", Key: "k"})
	}
	s.deletePlugin("f")
	// The plain stop takes at most /stop + SIGTERM grace (2 s each) here.
	waitFor(t, 20*time.Second, "the plugin stopped with publishes still queued", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}

// TestReloadAddsAndRemovesProviders is what SIGHUP does.
func TestReloadAddsAndRemovesProviders(t *testing.T) {
	s := newFakeServer(t)
	cfg := s.config()
	os.MkdirAll(cfg.PluginRoot, 0o750)
	h := s.start(cfg)
	s.savePlugin(&models.Plugin{Name: "f", Provider: "fake"})
	waitFor(t, 10*time.Second, "missing provider", func() bool {
		errs := s.pluginErrors("f")
		return len(errs) == 1 && errs[0] == "Missing Plugin Provider: fake"
	})
	installBinary(t, cfg.PluginRoot, "fake", "fake")
	h.Reload(context.Background())
	waitRunning(t, h, "f")
	if errs := s.pluginErrors("f"); len(errs) != 0 {
		t.Fatalf("errors after the provider appeared: %v", errs)
	}
	if err := os.Remove(filepath.Join(cfg.PluginRoot, "fake")); err != nil {
		t.Fatal(err)
	}
	h.Reload(context.Background())
	waitFor(t, 20*time.Second, "provider gone", func() bool {
		errs := s.pluginErrors("f")
		return len(errs) == 1 && errs[0] == "Missing Plugin Provider: fake"
	})
	if _, ok := h.Provider("fake"); ok {
		t.Fatal("removed provider still listed")
	}
	s.mu.Lock()
	_, layer := s.layers["fake"]
	s.mu.Unlock()
	if layer {
		t.Fatal("content layer of a removed provider kept")
	}
}

func counterValue(c prometheus.Counter) float64 {
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
