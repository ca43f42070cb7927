package pluginhost

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// A provider whose define hangs does not hold up the others: the good
// provider is loaded, and its Plugin configured, while the hanging define
// is still running (its time limit is far away; the test ends it by
// cancelling discovery).
func TestHangingDefineDoesNotDelayOthers(t *testing.T) {
	s := newFakeServer(t)
	cfg := s.config()
	cfg.DefineTimeout = 10 * time.Minute
	// "a-hang" sorts before "fake": one-at-a-time discovery would define
	// it first and wait for it.
	installBinary(t, cfg.PluginRoot, "hangdefine", "a-hang")
	installBinary(t, cfg.PluginRoot, "fake", "fake")
	p := &models.Plugin{Name: "fake1", Provider: "fake"}
	p.Fill()
	s.plugins["fake1"] = p

	h, err := New(cfg, s.deps())
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.host = h
	s.mu.Unlock()
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- h.Start(ctx) }()

	waitFor(t, 30*time.Second, "fake1 configured", func() bool { return s.bus.find("plugins", "configed", "fake1") != nil })
	select {
	case err := <-started:
		t.Fatalf("discovery ended (%v) before the hanging define did", err)
	default:
	}
	if s.bus.find("plugin_providers", "create", "fake") == nil {
		t.Fatal("no plugin_providers create event for fake")
	}
	if e := s.bus.find("plugin_providers", "error", "a-hang"); e != nil {
		t.Fatalf("hanging define already reported: %+v", e)
	}
	if errs := s.pluginErrors("fake1"); len(errs) != 0 {
		t.Fatalf("fake1 reported errors while discovery ran: %v", errs)
	}

	cancel()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	info, ok := h.Provider("a-hang")
	if !ok || len(info.Errors) == 0 || !strings.Contains(info.Errors[0], "define failed") {
		t.Fatalf("hanging provider entry: %+v %v", info, ok)
	}
	if _, err := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "pid", Plugin: "fake1"}); err != nil {
		t.Fatalf("fake1 after discovery: %v", err)
	}
}

// Discovery runs define in parallel but its outcome does not depend on
// which define finishes first: of two files defining the same provider,
// the one whose name sorts first wins, every time.
func TestDiscoveryOutcomeIsDeterministic(t *testing.T) {
	for i := 0; i < 3; i++ {
		s := newFakeServer(t)
		cfg := s.config()
		installBinary(t, cfg.PluginRoot, "fake", "b-fake")
		installBinary(t, cfg.PluginRoot, "fake-v2", "a-fake")
		installBinary(t, cfg.PluginRoot, "noready", "noready")
		installBinary(t, cfg.PluginRoot, "garbage", "garbage")
		installBinary(t, cfg.PluginRoot, "needparam", "needparam")
		h := s.start(cfg)
		var names []string
		for _, p := range h.Providers() {
			names = append(names, p.Name)
		}
		if got := strings.Join(names, ","); got != "b-fake,fake,garbage,needparam,noready" {
			t.Fatalf("providers %s", got)
		}
		if info, _ := h.Provider("fake"); info.Version != "v2" || len(info.Errors) != 0 {
			t.Fatalf("fake is not a-fake's v2: %+v", info)
		}
		if info, _ := h.Provider("b-fake"); len(info.Errors) != 1 || !strings.Contains(info.Errors[0], "provider fake is already defined by a-fake") {
			t.Fatalf("b-fake entry: %+v", info)
		}
		h.Close()
	}
}
