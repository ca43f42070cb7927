package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
)

// wsEnv is a real bus + websocket handler behind an httptest server. The
// test "API layer" takes the principal from the X-Principal header and
// asks allowFor for that principal's rights check.
type wsEnv struct {
	bus *Bus
	h   *WebsocketHandler
	srv *httptest.Server
	reg *prometheus.Registry
	url string
}

func newWSEnv(t testing.TB, opts WSOptions, allowFor func(principal string) func(*models.Event) bool) *wsEnv {
	t.Helper()
	reg := prometheus.NewRegistry()
	var log *slog.Logger
	if _, isBench := t.(*testing.B); isBench {
		log = slog.New(slog.DiscardHandler) // keep benchmark output readable
	}
	bus := NewBus(Options{Metrics: reg, Logger: log})
	if opts.Logger == nil {
		opts.Logger = log
	}
	h := NewWebsocketHandler(bus, opts)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.Header.Get("X-Principal")
		var allow func(*models.Event) bool
		if allowFor != nil {
			allow = allowFor(p)
		}
		h.ServeWS(w, r, p, allow)
	}))
	t.Cleanup(func() {
		h.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return &wsEnv{bus: bus, h: h, srv: srv, reg: reg, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v3/ws"}
}

type wsClient struct {
	t testing.TB
	c *websocket.Conn
}

func (e *wsEnv) dial(t testing.TB, principal string, opts *websocket.DialOptions) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	opts.HTTPHeader = http.Header{"X-Principal": {principal}}
	c, _, err := websocket.Dial(ctx, e.url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send %q: %v", msg, err)
	}
}

// next reads one event frame (generous deadline; failing means a bug).
func (c *wsClient) next() models.Event {
	c.t.Helper()
	e, err := c.tryNext()
	if err != nil {
		c.t.Fatalf("read event: %v", err)
	}
	return e
}

func (c *wsClient) tryNext() (models.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	typ, data, err := c.c.Read(ctx)
	if err != nil {
		return models.Event{}, err
	}
	if typ != websocket.MessageText {
		return models.Event{}, fmt.Errorf("frame type %v", typ)
	}
	var e models.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return models.Event{}, fmt.Errorf("decode %q: %w", data, err)
	}
	return e, nil
}

// expectAck reads the next frame and checks it acknowledges action/filter.
func (c *wsClient) expectAck(action, filter string) {
	c.t.Helper()
	e := c.next()
	if e.Type != AckType || e.Action != action || e.Key != filter {
		c.t.Fatalf("got %s.%s.%s, want ack websocket.%s.%s", e.Type, e.Action, e.Key, action, filter)
	}
	if e.Time.IsZero() {
		c.t.Fatal("ack without time")
	}
	if e.Object != nil {
		c.t.Fatalf("ack of an applied request carries Object %v, want none (DRP's shape)", e.Object)
	}
}

// expectRefusal reads the next frame and checks it is an error
// acknowledgement of action/key whose models.Error says contains.
func (c *wsClient) expectRefusal(action, key, contains string) {
	c.t.Helper()
	e := c.next()
	if e.Type != AckType || e.Action != action || e.Key != key {
		c.t.Fatalf("got %s.%s.%s, want error ack websocket.%s.%s", e.Type, e.Action, e.Key, action, key)
	}
	var me models.Error
	if err := e.ObjectAs(&me); err != nil || me.Code != 400 || len(me.Messages) != 1 || !strings.Contains(me.Messages[0], contains) {
		c.t.Fatalf("error ack Object = %v (%v), want a 400 models.Error containing %q", e.Object, err, contains)
	}
}

func (c *wsClient) register(filter string) {
	c.t.Helper()
	c.send("register " + filter)
	c.expectAck("register", filter)
}

// expectKeys reads len(want) events and checks their keys in order.
func (c *wsClient) expectKeys(want ...string) {
	c.t.Helper()
	for _, k := range want {
		e := c.next()
		if e.Key != k {
			c.t.Fatalf("got event %s.%s.%s, want key %s", e.Type, e.Action, e.Key, k)
		}
	}
}

func pub(b *Bus, typ, action, key string) {
	b.Publish(models.Event{Time: time.Now(), Type: typ, Action: action, Key: key, Principal: "test"})
}

func TestWSRegisterAckAndReceive(t *testing.T) {
	env := newWSEnv(t, WSOptions{}, nil)
	c := env.dial(t, "rocketskates", nil)
	c.send("register machines.create,update.*")
	ack := c.next()
	if ack.Type != "websocket" || ack.Action != "register" || ack.Key != "machines.create,update.*" || ack.Principal != "rocketskates" {
		t.Fatalf("ack = %+v", ack)
	}
	c.register(`params.*.incrementer\1step`)

	env.bus.Publish(models.Event{Type: "machines", Action: "create", Key: "m1", Object: map[string]any{"Name": "john"}})
	pub(env.bus, "profiles", "save", "global")    // other type
	pub(env.bus, "machines", "delete", "m1")      // other action
	pub(env.bus, "params", "save", "incrementer") // key mismatch
	pub(env.bus, "params", "save", "incrementer.step")
	pub(env.bus, "machines", "update", "a.b.c")
	e := c.next()
	if e.Type != "machines" || e.Action != "create" || e.Key != "m1" {
		t.Fatalf("first event = %s.%s.%s", e.Type, e.Action, e.Key)
	}
	var obj struct{ Name string }
	if err := e.ObjectAs(&obj); err != nil || obj.Name != "john" {
		t.Fatalf("object = %v (%v)", e.Object, err)
	}
	// Events arrive in publish order, so the non-matching ones in between
	// were not sent.
	c.expectKeys("incrementer.step", "a.b.c")
}

func TestWSDeregisterStopsDelivery(t *testing.T) {
	env := newWSEnv(t, WSOptions{}, nil)
	c := env.dial(t, "u", nil)
	c.register("machines.*.*")
	c.register("profiles.*.*")
	c.register("machines.*.*") // duplicate: acknowledged, ignored
	c.send("deregister machines.*.*")
	c.expectAck("deregister", "machines.*.*")

	pub(env.bus, "machines", "create", "m1")
	pub(env.bus, "profiles", "save", "p1")
	// Registered twice, deregistered once: no reference counting.
	c.expectKeys("p1")
}

func TestWSBadRequestsDoNotBreakConnection(t *testing.T) {
	env := newWSEnv(t, WSOptions{MaxFilters: 2}, nil)
	c := env.dial(t, "u", nil)
	c.send("hello there") // unknown: error ack
	c.expectRefusal("hello", "there", `unknown request "hello"`)
	c.send("") // empty: error ack
	c.expectRefusal("", "", "unknown request")
	c.send("register nodots") // bad filter: error ack, not registered
	c.expectRefusal("register", "nodots", `invalid filter "nodots"`)
	c.send("deregister")
	c.expectRefusal("deregister", "", "invalid filter")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte("register *.*.*")); err != nil {
		t.Fatal(err)
	}
	c.register("machines.*.*")
	c.register("profiles.*.*")
	c.send("register users.*.*") // over MaxFilters: error ack, ignored
	c.expectRefusal("register", "users.*.*", "too many filters on this connection: limit 2")
	pub(env.bus, "users", "create", "u1")
	pub(env.bus, "jobs", "create", "j1")
	pub(env.bus, "machines", "create", "m1")
	c.expectKeys("m1")
}

func TestWSAllowDenies(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	env := newWSEnv(t, WSOptions{}, func(p string) func(*models.Event) bool {
		return func(e *models.Event) bool {
			mu.Lock()
			seen[p]++
			mu.Unlock()
			if e.Key == "panic" {
				panic("rights check exploded")
			}
			return p == "admin" || e.Key != "secret"
		}
	})
	user := env.dial(t, "user", nil)
	admin := env.dial(t, "admin", nil)
	user.register("*.*.*")
	admin.register("*.*.*")
	pub(env.bus, "machines", "create", "secret")
	pub(env.bus, "machines", "create", "panic")
	pub(env.bus, "machines", "create", "ok")
	user.expectKeys("ok")
	admin.expectKeys("secret", "ok")
	mu.Lock()
	defer mu.Unlock()
	if seen["user"] != 3 || seen["admin"] != 3 {
		t.Fatalf("allow called %v", seen)
	}
}

func TestWSCloseEndsConnectionsCleanly(t *testing.T) {
	env := newWSEnv(t, WSOptions{}, nil)
	c := env.dial(t, "u", nil)
	c.register("*.*.*")
	if env.bus.Subscribers() != 1 || env.h.Connections() != 1 {
		t.Fatalf("subscribers=%d connections=%d", env.bus.Subscribers(), env.h.Connections())
	}
	env.h.Close()
	_, err := c.tryNext()
	if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
		t.Fatalf("read after Close: %v (status %v), want going away", err, s)
	}
	waitFor(t, "connection cleanup", func() bool { return env.h.Connections() == 0 && env.bus.Subscribers() == 0 })
	// Later connections are closed at once.
	c2 := env.dial(t, "u", nil)
	if _, err := c2.tryNext(); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("new connection after Close: %v", err)
	}
}

func TestWSRequestContextEndCloses(t *testing.T) {
	bus := NewBus(Options{})
	h := NewWebsocketHandler(bus, WSOptions{})
	defer h.Close()
	reqCtx, endRequest := context.WithCancel(context.Background())
	defer endRequest()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeWS(w, r, "u", nil)
	}))
	// The server's base context plays the role of a shutting-down server.
	srv.Config.BaseContext = func(net.Listener) context.Context { return reqCtx }
	srv.Start()
	defer srv.Close()
	env := &wsEnv{bus: bus, h: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	c := env.dial(t, "u", nil)
	c.register("*.*.*")
	endRequest()
	if _, err := c.tryNext(); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read after request end: %v", err)
	}
	waitFor(t, "connection cleanup", func() bool { return h.Connections() == 0 && bus.Subscribers() == 0 })
}

func TestWSClientCloseCleansUp(t *testing.T) {
	env := newWSEnv(t, WSOptions{}, nil)
	c := env.dial(t, "u", nil)
	c.register("*.*.*")
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	waitFor(t, "connection cleanup", func() bool { return env.h.Connections() == 0 && env.bus.Subscribers() == 0 })
}

func TestServeHTTPAuthenticate(t *testing.T) {
	bus := NewBus(Options{})
	noAuth := NewWebsocketHandler(bus, WSOptions{})
	defer noAuth.Close()
	rec := httptest.NewRecorder()
	noAuth.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v3/ws", nil))
	var me models.Error
	if rec.Code != 500 || json.Unmarshal(rec.Body.Bytes(), &me) != nil || me.Code != 500 || len(me.Messages) == 0 {
		t.Fatalf("unconfigured: %d %s", rec.Code, rec.Body)
	}

	h := NewWebsocketHandler(bus, WSOptions{Authenticate: func(r *http.Request) (string, func(*models.Event) bool, *models.Error) {
		if r.URL.Query().Get("token") != "good" {
			return "", nil, &models.Error{Type: "AUTH", Messages: []string{"bad token"}}
		}
		return "tokenuser", nil, nil
	}})
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v3/ws?token=bad")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "bad token") {
		t.Fatalf("bad token: %d %s", resp.StatusCode, body)
	}
	env := &wsEnv{bus: bus, h: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v3/ws?token=good"}
	c := env.dial(t, "", nil)
	c.send("register machines.*.*")
	if ack := c.next(); ack.Principal != "tokenuser" || ack.Type != AckType {
		t.Fatalf("ack = %+v", ack)
	}
	pub(bus, "machines", "create", "m1")
	c.expectKeys("m1")
}

// stuckDialOptions makes a client whose socket receive buffer is tiny, so
// that a client that stops reading fills the server's TCP buffers quickly
// and deterministically (no receive-window autotuning).
func stuckDialOptions() *websocket.DialOptions {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return conn, nil
	}}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
}

// bulkPayload is incompressible so the stuck client's buffers really fill.
func bulkPayload(t testing.TB, n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf)
}

func TestWSStalledWriteClosesConnection(t *testing.T) {
	env := newWSEnv(t, WSOptions{WriteTimeout: 200 * time.Millisecond, QueueLen: 10}, nil)
	stuck := env.dial(t, "stuck", stuckDialOptions())
	stuck.register("bulk.*.*")
	payload := bulkPayload(t, 192<<10)
	sub := (*env.bus.subs.Load())[0]
	// Keep the client's queue full: publish while it has room, otherwise
	// wait until either the writer makes progress or, once the client's
	// TCP buffers are full and a write stalls, the write timeout closes
	// the connection. Bounded so a bug fails instead of looping.
	for i := 0; env.h.Connections() > 0; i++ {
		if i == 10000 {
			t.Fatal("stalled connection never closed")
		}
		env.bus.Publish(models.Event{Type: "bulk", Action: "x", Key: fmt.Sprint(i), Object: payload})
		if len(sub.envs) == cap(sub.envs) {
			waitFor(t, "queue space or connection closed", func() bool {
				return env.h.Connections() == 0 || len(sub.envs) < cap(sub.envs)
			})
		}
	}
	waitFor(t, "subscription removed", func() bool { return env.bus.Subscribers() == 0 })
}

// TestWSSlowSubscriberIsolation: one client stops reading, 100 others read.
// The stuck client's queue overflows and its drops are counted; every
// reading client still gets every event; Publish never blocks.
func TestWSSlowSubscriberIsolation(t *testing.T) {
	const (
		readers  = 100
		queueLen = 100
		bulk     = 64        // events only the stuck client wants
		bulkSize = 192 << 10 // bytes of random data per bulk event (base64: 256 KiB)
		small    = queueLen  // events every client wants: fits any queue
	)
	env := newWSEnv(t, WSOptions{QueueLen: queueLen, WriteTimeout: 5 * time.Minute}, nil)

	stuck := env.dial(t, "stuck", stuckDialOptions())
	stuck.register("bulk.*.*")
	stuck.register("small.*.*")
	// From here on the stuck client never reads.

	clients := make([]*wsClient, readers)
	for i := range clients {
		clients[i] = env.dial(t, fmt.Sprintf("reader%d", i), nil)
		clients[i].register("small.*.*")
	}

	payload := bulkPayload(t, bulkSize)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; i < bulk; i++ {
			env.bus.Publish(models.Event{Type: "bulk", Action: "fill", Key: fmt.Sprint(i), Object: payload})
		}
		for i := 0; i < small; i++ {
			pub(env.bus, "small", "tick", fmt.Sprint(i))
		}
	}()
	select {
	case <-published:
	case <-time.After(60 * time.Second):
		t.Fatal("Publish blocked behind a stuck websocket client")
	}

	errs := make(chan error, readers)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func(c *wsClient) {
			defer wg.Done()
			for i := 0; i < small; i++ {
				e, err := c.tryNext()
				if err != nil {
					errs <- err
					return
				}
				if e.Type != "small" || e.Key != fmt.Sprint(i) {
					errs <- fmt.Errorf("got %s.%s.%s, want small.tick.%d", e.Type, e.Action, e.Key, i)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("reader: %v", err)
	}

	// Only the stuck client dropped, and it dropped for certain: it wanted
	// bulk+small events but at most its queue plus what its TCP buffers
	// hold (a few MiB, far below bulk*bulkSize) could leave the server.
	if env.bus.Dropped() == 0 {
		t.Fatal("stuck client's overflow was not counted")
	}
	m := gather(t, env.reg)
	if m[MetricDropped] != float64(env.bus.Dropped()) || m[MetricPublished] != bulk+small {
		t.Fatalf("metrics %v, bus dropped %d", m, env.bus.Dropped())
	}
	if env.h.Connections() != readers+1 {
		t.Fatalf("connections = %d", env.h.Connections())
	}
	t.Logf("stuck client dropped %d of %d events", env.bus.Dropped(), bulk+small)
	// Unstick: the server's blocked write fails and the connection ends.
	_ = stuck.c.CloseNow()
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWSFrameWire checks the pre-encoded frames on the wire: every event
// is one text message whose payload is exactly json.Marshal of the event,
// at each payload-length encoding boundary of RFC 6455 (7-bit, 16-bit,
// 64-bit lengths), and batches of frames written together are still read
// as separate messages.
func TestWSFrameWire(t *testing.T) {
	env := newWSEnv(t, WSOptions{}, nil)
	c := env.dial(t, "u", nil)
	c.register("wire.*.*")
	base := models.Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: "wire", Action: "x", Principal: "p", Object: ""}
	empty, err := json.Marshal(&base)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i, size := range []int{1, 125, 126, 127, 0xffff, 0x10000, 0x10001, 300 << 10} {
		e := base
		e.Key = fmt.Sprint(i)
		pad := size - len(empty) - len(e.Key)
		if pad < 0 {
			pad = 0
		}
		e.Object = strings.Repeat("a", pad)
		buf, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, buf)
		env.bus.Publish(e)
	}
	for i, w := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		typ, got, err := c.c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if typ != websocket.MessageText || string(got) != string(w) {
			t.Fatalf("message %d: type %v, %d bytes, want text, %d bytes of json.Marshal", i, typ, len(got), len(w))
		}
	}
}

func TestEncodeFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		payload int
		header  []byte
	}{
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{0xffff, []byte{0x81, 126, 0xff, 0xff}},
		{0x10000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		e := models.Event{Type: "t", Action: "a", Key: "k", Object: ""}
		withObj, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		e.Object = strings.Repeat("b", tc.payload-len(withObj))
		frame, err := encodeFrame(&e)
		if err != nil {
			t.Fatal(err)
		}
		if got := frame[:len(tc.header)]; string(got) != string(tc.header) {
			t.Fatalf("payload %d: header % x, want % x", tc.payload, got, tc.header)
		}
		if len(frame) != len(tc.header)+tc.payload {
			t.Fatalf("payload %d: frame %d bytes", tc.payload, len(frame))
		}
	}
}
