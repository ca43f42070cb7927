package pluginsdk_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server/events"
)

const wsToken = "ws-test-token"

// wsServer is provisiond's real websocket handler behind a TLS test server
// whose connections can be cut from the test.
type wsServer struct {
	bus *events.Bus
	srv *httptest.Server

	mu    sync.Mutex
	cuts  []context.CancelFunc
	conns int
}

func newWSServer(t *testing.T) *wsServer {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := &wsServer{bus: events.NewBus(events.Options{Logger: quiet})}
	h := events.NewWebsocketHandler(w.bus, events.WSOptions{
		Logger: quiet,
		Authenticate: func(r *http.Request) (string, func(*models.Event) bool, *models.Error) {
			if r.Header.Get("Authorization") != "Bearer "+wsToken {
				return "", nil, &models.Error{Type: "GET", Code: 403, Messages: []string{"bad token"}}
			}
			return "plugin", nil, nil
		},
	})
	w.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/ws" {
			http.NotFound(rw, r)
			return
		}
		ctx, cut := context.WithCancel(r.Context())
		w.mu.Lock()
		w.cuts = append(w.cuts, cut)
		w.conns++
		w.mu.Unlock()
		h.ServeHTTP(rw, r.WithContext(ctx))
	}))
	t.Cleanup(func() { h.Close(); w.srv.Close() })
	return w
}

// cut ends every open websocket connection, as a server restart would.
func (w *wsServer) cut() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.cuts {
		c()
	}
	w.cuts = nil
}

func (w *wsServer) connections() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conns
}

// watcher is an EventSelector plugin that records what Publish receives.
type watcher struct {
	mu   sync.Mutex
	seen map[string]int // key -> count
}

func (w *watcher) Config(context.Context, *slog.Logger, *client.Client, map[string]any) *models.Error {
	return nil
}

func (w *watcher) SelectEvents(context.Context, *slog.Logger) []string {
	return []string{"machines.*.*"}
}

func (w *watcher) Publish(ctx context.Context, l *slog.Logger, e *models.Event) *models.Error {
	w.mu.Lock()
	w.seen[e.Key]++
	w.mu.Unlock()
	l.Info("got event", "key", e.Key)
	if e.Key == "bad" {
		return models.NewError("plugin", 400, "cannot handle %s", e.Key)
	}
	if e.Key == "explode" {
		panic("publish exploded")
	}
	return nil
}

func (w *watcher) count(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[key]
}

// deliver publishes an event until the plugin has seen it (the stream may
// be reconnecting, and events published meanwhile are lost by design).
func deliver(t *testing.T, ws *wsServer, w *watcher, key string) {
	t.Helper()
	deadline := time.Now().Add(plugintest.DefaultWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for w.count(key) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("event %s never reached Publish", key)
		}
		ws.bus.Publish(models.Event{Time: time.Now(), Type: "machines", Action: "update", Key: key})
		<-tick.C
	}
}

func TestEventStreamReconnects(t *testing.T) {
	ws := newWSServer(t)
	w := &watcher{seen: map[string]int{}}
	app := pluginsdk.InitApp("watcher", "w", "v1", &models.PluginProvider{Name: "watcher", PluginVersion: 4}, w)
	pl := plugintest.StartApp(t, app, map[string]string{"RS_ENDPOINT": ws.srv.URL, "RS_TOKEN": wsToken})

	expect(t, pl.Config(t, nil), 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	// Registration is acknowledged before /config answers, so the first
	// event after it is delivered.
	ws.bus.Publish(models.Event{Type: "profiles", Action: "save", Key: "filtered-out"})
	ws.bus.Publish(models.Event{Type: "machines", Action: "create", Key: "m1"})
	waitCount(t, w, "m1")
	if w.count("filtered-out") != 0 {
		t.Error("event outside the selected filters delivered")
	}
	// Lines logged by Publish are marked IgnorePublish.
	if l := pl.Host.WaitForMessage(t, 0, "got event key=m1"); !l.IgnorePublish {
		t.Errorf("Publish log line not marked IgnorePublish: %+v", l)
	}

	// The server drops the websocket: the stream comes back by itself.
	ws.cut()
	deliver(t, ws, w, "after-cut")
	if ws.connections() < 2 {
		t.Errorf("no reconnection seen: %d connections", ws.connections())
	}

	// Publish errors and panics are logged, and delivery goes on.
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "bad"})
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "explode"})
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "m2"})
	waitCount(t, w, "m2")
	if l := pl.Host.WaitForMessage(t, 0, "Error processing event"); l.Level != "error" || !l.IgnorePublish {
		t.Errorf("publish error line: %+v", l)
	}
	pl.Host.WaitForMessage(t, 0, "Publish panicked")

	// A second /config replaces the stream instead of adding one.
	before := ws.connections()
	expect(t, pl.Config(t, nil), 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	if ws.connections() != before+1 {
		t.Errorf("re-config opened %d connections", ws.connections()-before)
	}
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "once"})
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "m3"})
	waitCount(t, w, "m3")
	if n := w.count("once"); n != 1 {
		t.Errorf("event delivered %d times after re-config", n)
	}

	pl.Stop(t)
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "after-stop"})
	if w.count("after-stop") != 0 {
		t.Error("event delivered after stop")
	}
}

func waitCount(t *testing.T, w *watcher, key string) {
	t.Helper()
	plugintest.Eventually(t, plugintest.DefaultWait, "event "+key+" to be delivered", func() bool { return w.count(key) > 0 })
}

// stopOrder is an EventSelector plugin whose Publish of "hold" runs until
// its context ends, and which records every Publish that overlaps or
// follows Stop.
type stopOrder struct {
	held chan struct{} // closed when the "hold" Publish is running

	mu         sync.Mutex
	inPublish  bool
	stopping   bool
	stopCalled bool
	overlaps   []string
}

func (p *stopOrder) Config(context.Context, *slog.Logger, *client.Client, map[string]any) *models.Error {
	return nil
}

func (p *stopOrder) SelectEvents(context.Context, *slog.Logger) []string {
	return []string{"machines.*.*"}
}

func (p *stopOrder) Publish(ctx context.Context, l *slog.Logger, e *models.Event) *models.Error {
	p.mu.Lock()
	if p.stopping {
		p.overlaps = append(p.overlaps, "Publish("+e.Key+") called after Stop began")
	}
	hold := e.Key == "hold" && !p.inPublish
	if hold {
		p.inPublish = true
		close(p.held)
	}
	p.mu.Unlock()
	if hold {
		// A well-behaved Publish returns when its context ends; the SDK
		// cancels it when it closes the event feed.
		<-ctx.Done()
		p.mu.Lock()
		p.inPublish = false
		p.mu.Unlock()
	}
	return nil
}

func (p *stopOrder) Stop(context.Context, *slog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopping, p.stopCalled = true, true
	if p.inPublish {
		p.overlaps = append(p.overlaps, "Stop called while Publish was running")
	}
}

// TestStopEndsEventsBeforeStopper checks that the event feed is closed (and
// a running Publish has returned) before Stopper.Stop is called, so a
// plugin's Stop never races its own Publish.
func TestStopEndsEventsBeforeStopper(t *testing.T) {
	ws := newWSServer(t)
	p := &stopOrder{held: make(chan struct{})}
	app := pluginsdk.InitApp("stoporder", "s", "v1", &models.PluginProvider{Name: "stoporder", PluginVersion: 4}, p)
	pl := plugintest.StartApp(t, app, map[string]string{"RS_ENDPOINT": ws.srv.URL, "RS_TOKEN": wsToken})
	expect(t, pl.Config(t, nil), 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)

	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "hold"})
	select {
	case <-p.held:
	case <-time.After(plugintest.DefaultWait):
		t.Fatal("the hold event never reached Publish")
	}
	// Queued behind the running Publish: must never be delivered once
	// stopping has begun.
	ws.bus.Publish(models.Event{Type: "machines", Action: "update", Key: "queued"})

	expect(t, pl.Stop(t), 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopCalled {
		t.Error("Stopper not called")
	}
	if p.inPublish {
		t.Error("Publish still running after the plugin exited")
	}
	for _, o := range p.overlaps {
		t.Error(o)
	}
}
