package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/provisionhq/provision/models"
)

// fakeWS is a websocket endpoint speaking §5.8: it authenticates the
// handshake, records register/deregister frames per connection, answers
// them with "websocket" acknowledgement events (unless noAck) and delivers
// published events to connections whose filters match by type.
type fakeWS struct {
	t     *testing.T
	token string
	noAck bool
	// deaf, when set, makes new connections stop reading (so they never
	// answer a ping: a half-open server) until it is closed.
	deaf chan struct{}

	mu      sync.Mutex
	conns   []*wsConn
	nextID  int
	changed chan struct{} // closed and replaced on every state change
}

type wsConn struct {
	id      int
	c       *websocket.Conn
	filters []string
	log     []string // "register f" / "deregister f" in order
	closed  bool
}

func newFakeWS(t *testing.T) (*fakeWS, *httptest.Server) {
	f := &fakeWS{t: t, token: "good-token", changed: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	// Offer HTTP/2 like a real Go TLS server: the client must still use
	// HTTP/1.1 for the upgrade.
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		f.kill()
		srv.Close()
	})
	return f, srv
}

// notify wakes waiters; call with f.mu held.
func (f *fakeWS) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitFor polls cond (under the lock) until it is true or the deadline passes.
func (f *fakeWS) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok := cond()
		ch := f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *fakeWS) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v3/ws" {
		writeErr(w, http.StatusNotFound, r.Method, "", r.URL.Path, "No route")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		writeErr(w, http.StatusForbidden, "AUTH", "", "", "Forbidden")
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		f.t.Errorf("accept: %v", err)
		return
	}
	f.mu.Lock()
	f.nextID++
	wc := &wsConn{id: f.nextID, c: c}
	f.conns = append(f.conns, wc)
	f.notify()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		wc.closed = true
		f.notify()
		f.mu.Unlock()
		_ = c.CloseNow()
	}()
	ctx := r.Context()
	f.mu.Lock()
	deaf := f.deaf
	f.mu.Unlock()
	if deaf != nil {
		select {
		case <-deaf:
		case <-ctx.Done():
			return
		}
		return
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		verb, filter, _ := strings.Cut(string(data), " ")
		f.mu.Lock()
		wc.log = append(wc.log, string(data))
		switch verb {
		case "register":
			if !slices.Contains(wc.filters, filter) {
				wc.filters = append(wc.filters, filter)
			}
		case "deregister":
			wc.filters = slices.DeleteFunc(wc.filters, func(s string) bool { return s == filter })
		}
		f.notify()
		noAck := f.noAck
		f.mu.Unlock()
		if !noAck && (verb == "register" || verb == "deregister") {
			ack, _ := json.Marshal(&models.Event{Time: time.Now(), Type: "websocket", Action: verb, Key: filter})
			if err := c.Write(ctx, websocket.MessageText, ack); err != nil {
				return
			}
		}
	}
}

// live returns the open connections.
func (f *fakeWS) live() []*wsConn {
	var res []*wsConn
	for _, c := range f.conns {
		if !c.closed {
			res = append(res, c)
		}
	}
	return res
}

// publish sends e to every open connection with a filter for e.Type (or *).
func (f *fakeWS) publish(e models.Event) {
	buf, _ := json.Marshal(&e)
	f.mu.Lock()
	var targets []*websocket.Conn
	for _, c := range f.live() {
		for _, flt := range c.filters {
			typ, _, _ := strings.Cut(flt, ".")
			if typ == "*" || typ == e.Type {
				targets = append(targets, c.c)
				break
			}
		}
	}
	f.mu.Unlock()
	for _, c := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.Write(ctx, websocket.MessageText, buf); err != nil {
			f.t.Logf("publish: %v", err)
		}
		cancel()
	}
}

// kill drops every connection abruptly.
func (f *fakeWS) kill() {
	f.mu.Lock()
	conns := f.live()
	f.mu.Unlock()
	for _, c := range conns {
		_ = c.c.CloseNow()
	}
}

func recvEvent(t *testing.T, s *EventStream) models.Event {
	t.Helper()
	select {
	case e, ok := <-s.C():
		if !ok {
			t.Fatal("event channel closed")
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event received")
	}
	return models.Event{}
}

func openStream(t *testing.T, srv *httptest.Server, so StreamOptions) *EventStream {
	t.Helper()
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	s, err := c.EventsWith(context.Background(), so)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEventStreamRegisterDeliverDeregister(t *testing.T) {
	f, srv := newFakeWS(t)
	s := openStream(t, srv, StreamOptions{})
	ctx := context.Background()
	if err := s.Register(ctx, "machines.*.*", "plugins.create,update.*"); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// Register returns only after the acks, so the server state is final.
	f.mu.Lock()
	got := slices.Clone(f.live()[0].log)
	f.mu.Unlock()
	if want := []string{"register machines.*.*", "register plugins.create,update.*"}; !slices.Equal(got, want) {
		t.Fatalf("server saw %q, want %q", got, want)
	}
	// Registering again sends nothing.
	if err := s.Register(ctx, "machines.*.*"); err != nil {
		t.Fatal(err)
	}
	f.publish(models.Event{Type: "machines", Action: "create", Key: "m1", Object: map[string]any{"Name": "m1"}})
	e := recvEvent(t, s)
	if e.Type != "machines" || e.Action != "create" || e.Key != "m1" {
		t.Fatalf("got event %+v (acks must not be delivered)", e)
	}
	if err := s.Deregister(ctx, "machines.*.*"); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	f.mu.Lock()
	got = slices.Clone(f.live()[0].log)
	f.mu.Unlock()
	if want := []string{"register machines.*.*", "register plugins.create,update.*", "deregister machines.*.*"}; !slices.Equal(got, want) {
		t.Fatalf("server saw %q, want %q", got, want)
	}
	if fl := s.Filters(); !slices.Equal(fl, []string{"plugins.create,update.*"}) {
		t.Fatalf("Filters() = %q", fl)
	}
	if err := s.Register(ctx, "bad filter"); err == nil {
		t.Fatal("a filter with a space was accepted")
	}
	if err := s.Register(ctx, "machines.create"); err == nil {
		t.Fatal("a two-part filter was accepted")
	}
}

func TestEventStreamAckTimeout(t *testing.T) {
	f, srv := newFakeWS(t)
	f.mu.Lock()
	f.noAck = true
	f.mu.Unlock()
	s := openStream(t, srv, StreamOptions{AckTimeout: 200 * time.Millisecond})
	err := s.Register(context.Background(), "machines.*.*")
	if err == nil || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Fatalf("want ack timeout, got %v", err)
	}
	if len(s.Filters()) != 0 {
		t.Fatalf("unacknowledged filter kept: %q", s.Filters())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Register(ctx, "plugins.*.*"); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestEventStreamReconnectsAndReregisters(t *testing.T) {
	f, srv := newFakeWS(t)
	s := openStream(t, srv, StreamOptions{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	filters := []string{"machines.*.*", "params.*.incrementer\\1step"}
	if err := s.Register(context.Background(), filters...); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		f.mu.Lock()
		firstID := f.live()[0].id
		f.mu.Unlock()
		f.kill()
		f.waitFor(t, "a new connection with every filter registered", func() bool {
			live := f.live()
			if len(live) != 1 || live[0].id == firstID {
				return false
			}
			got := slices.Clone(live[0].filters)
			slices.Sort(got)
			want := slices.Clone(filters)
			slices.Sort(want)
			return slices.Equal(got, want)
		})
		// The acks of the re-registration may still be in flight; an event
		// published now must be delivered either way.
		f.publish(models.Event{Type: "machines", Action: "update", Key: "m1"})
		if e := recvEvent(t, s); e.Type != "machines" || e.Action != "update" {
			t.Fatalf("round %d: got %+v", round, e)
		}
		if s.Reconnects() != uint64(round) {
			t.Fatalf("Reconnects() = %d, want %d", s.Reconnects(), round)
		}
	}
	// A filter registered after the reconnects reaches the new socket.
	if err := s.Register(context.Background(), "plugins.*.*"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	live := f.live()
	ok := len(live) == 1 && slices.Contains(live[0].filters, "plugins.*.*")
	f.mu.Unlock()
	if !ok {
		t.Fatal("late filter not registered on the current connection")
	}
}

// TestEventStreamPingDetectsHalfOpenServer: a server that keeps the TCP
// connection but no longer answers (no pong) is dropped after PingTimeout
// and the stream reconnects, instead of waiting for events forever.
func TestEventStreamPingDetectsHalfOpenServer(t *testing.T) {
	f, srv := newFakeWS(t)
	deaf := make(chan struct{})
	f.mu.Lock()
	f.deaf = deaf
	f.mu.Unlock()
	s := openStream(t, srv, StreamOptions{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond,
		ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	f.waitFor(t, "the deaf connection", func() bool { return len(f.conns) == 1 })
	f.mu.Lock()
	f.deaf = nil // later connections answer
	f.mu.Unlock()
	f.waitFor(t, "a reconnect after the unanswered ping", func() bool {
		live := f.live()
		return len(f.conns) >= 2 && len(live) >= 1 && live[len(live)-1].id >= 2
	})
	close(deaf)
	if err := s.Register(context.Background(), "machines.*.*"); err != nil {
		t.Fatalf("register on the new connection: %v", err)
	}
	f.publish(models.Event{Type: "machines", Action: "update", Key: "m1"})
	if e := recvEvent(t, s); e.Type != "machines" || e.Key != "m1" {
		t.Fatalf("after the reconnect: got %+v", e)
	}
	if s.Reconnects() < 1 {
		t.Fatalf("Reconnects() = %d, want at least 1", s.Reconnects())
	}
}

func TestEventStreamCloseAndContext(t *testing.T) {
	f, srv := newFakeWS(t)
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, "*.*.*"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("stream did not stop when its context ended")
	}
	if _, ok := <-s.C(); ok {
		t.Fatal("C not closed after the stream ended")
	}
	f.waitFor(t, "the server to see the disconnect", func() bool { return len(f.live()) == 0 })
	if err := s.Register(context.Background(), "machines.*.*"); err == nil {
		t.Fatal("Register on a closed stream succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2 := openStream(t, srv, StreamOptions{})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-s2.C(); ok {
		t.Fatal("C not closed after Close")
	}
}

func TestEventStreamDropsWhenFull(t *testing.T) {
	f, srv := newFakeWS(t)
	s := openStream(t, srv, StreamOptions{Buffer: 1})
	if err := s.Register(context.Background(), "machines.*.*"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.publish(models.Event{Type: "machines", Action: "update", Key: string(rune('a' + i))})
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Dropped() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Dropped() = %d, want 2", s.Dropped())
		}
		time.Sleep(time.Millisecond)
	}
	if e := recvEvent(t, s); e.Key != "a" {
		t.Fatalf("kept event %q, want the first one", e.Key)
	}
}

func TestEventStreamAuthError(t *testing.T) {
	_, srv := newFakeWS(t)
	c := newTestClient(t, srv.URL, Options{Token: "wrong"})
	_, err := c.Events(context.Background())
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusForbidden {
		t.Fatalf("want 403 *models.Error, got %v", err)
	}
}
