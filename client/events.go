package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/provisionhq/provision/models"
)

// Event stream defaults; StreamOptions overrides them per stream.
const (
	// DefaultEventBuffer is the capacity of EventStream.C.
	DefaultEventBuffer = 1000
	// DefaultAckTimeout bounds how long Register/Deregister wait for the
	// server's acknowledgement.
	DefaultAckTimeout = 10 * time.Second
	// DefaultReconnectMin is the first reconnection backoff.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax caps the reconnection backoff.
	DefaultReconnectMax = 5 * time.Second
	// DefaultPingInterval is how often an idle-looking stream checks that
	// the server still answers: a half-open connection (server gone
	// without a FIN) is otherwise noticed only by TCP keepalive, minutes
	// later or never.
	DefaultPingInterval = 30 * time.Second
	// DefaultPingTimeout bounds the wait for the server's pong.
	DefaultPingTimeout = 10 * time.Second
	// dialTimeout bounds one websocket handshake.
	dialTimeout = 15 * time.Second
	// writeTimeout bounds sending one register/deregister frame.
	writeTimeout = 10 * time.Second
	// maxEventSize bounds one event frame (events carry whole objects).
	maxEventSize = 64 << 20
)

// StreamOptions tunes an EventStream; zero values select the defaults.
type StreamOptions struct {
	// Buffer is the capacity of the event channel. When it is full new
	// events are dropped (and counted) rather than stalling the stream.
	Buffer int
	// AckTimeout bounds the wait for register/deregister acknowledgements.
	AckTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential reconnect backoff.
	ReconnectMin, ReconnectMax time.Duration
	// PingInterval is how often the stream pings the server; a ping not
	// answered within PingTimeout drops the connection and reconnects.
	// Negative PingInterval disables pings.
	PingInterval, PingTimeout time.Duration
}

// EventStream is a websocket subscription to /api/v3/ws that reconnects
// with backoff and re-registers its filters after a reconnect.
//
// The server acknowledges each register/deregister with an event of Type
// "websocket", Action "register"/"deregister" and Key = the filter; those
// acknowledgements are consumed by the stream and not delivered on C.
type EventStream struct {
	c      *Client
	opts   StreamOptions
	ctx    context.Context
	cancel context.CancelFunc
	events chan models.Event
	done   chan struct{}

	mu      sync.Mutex
	conn    *websocket.Conn // nil while reconnecting
	filters map[string]bool // registered (or being registered) filters
	waiters map[string][]chan error

	dropped    atomic.Uint64
	reconnects atomic.Uint64
	closing    atomic.Bool
	closeOnce  sync.Once
}

// closed reports whether the stream is shutting down.
func (s *EventStream) closed() bool { return s.closing.Load() || s.ctx.Err() != nil }

// Events opens an event stream. It stays open until ctx ends or Close.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	return c.EventsWith(ctx, StreamOptions{})
}

// EventsWith is Events with explicit stream options.
func (c *Client) EventsWith(ctx context.Context, opts StreamOptions) (*EventStream, error) {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultEventBuffer
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = DefaultReconnectMin
	}
	if opts.ReconnectMax <= 0 {
		opts.ReconnectMax = DefaultReconnectMax
	}
	opts.ReconnectMax = max(opts.ReconnectMax, opts.ReconnectMin)
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = DefaultPingTimeout
	}
	conn, err := c.dialWS(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &EventStream{
		c: c, opts: opts, ctx: sctx, cancel: cancel,
		events:  make(chan models.Event, opts.Buffer),
		done:    make(chan struct{}),
		conn:    conn,
		filters: map[string]bool{},
		waiters: map[string][]chan error{},
	}
	// The stream ends with the caller's context.
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	go func() {
		defer stop()
		s.run(conn)
	}()
	return s, nil
}

// wsURL is the websocket URL of the endpoint (scheme ws/wss).
func (c *Client) wsURL() string {
	u := c.url("ws", nil)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.String()
}

// dialWS opens one websocket connection with the client's credentials.
func (c *Client) dialWS(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	h := http.Header{}
	if a := c.authHeader(); a != "" {
		h.Set("Authorization", a)
	}
	h.Set("User-Agent", c.opts.UserAgent)
	conn, resp, err := websocket.Dial(dctx, c.wsURL(), &websocket.DialOptions{HTTPClient: c.wsHC, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			if resp.Body == nil {
				resp.Body = io.NopCloser(bytes.NewReader(nil))
			}
			return nil, decodeError(resp, http.MethodGet, "ws")
		}
		return nil, fmt.Errorf("client: opening event stream %s: %w", c.wsURL(), err)
	}
	conn.SetReadLimit(maxEventSize)
	return conn, nil
}

// C delivers received events. It is closed when the stream is closed.
func (s *EventStream) C() <-chan models.Event { return s.events }

// Dropped is how many events were discarded because C was full.
func (s *EventStream) Dropped() uint64 { return s.dropped.Load() }

// Reconnects is how many times the stream has re-established its socket.
func (s *EventStream) Reconnects() uint64 { return s.reconnects.Load() }

// Done is closed once the stream has stopped for good.
func (s *EventStream) Done() <-chan struct{} { return s.done }

// run reads from the socket, delivering events and acknowledgements, and
// reconnects when the socket fails, until the stream is closed.
func (s *EventStream) run(conn *websocket.Conn) {
	defer close(s.done)
	defer close(s.events)
	for {
		stopPing := s.keepAlive(conn)
		err := s.readLoop(conn)
		stopPing()
		_ = conn.CloseNow()
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		if s.closed() {
			return
		}
		s.c.log.Warn("event stream lost, reconnecting", "err", err)
		conn = s.reconnect()
		if conn == nil {
			return
		}
	}
}

// keepAlive pings the server over conn every PingInterval and drops conn
// (so that run reconnects) when a pong does not come within PingTimeout.
// The pong is read by readLoop. It returns a function that stops it.
func (s *EventStream) keepAlive(conn *websocket.Conn) func() {
	if s.opts.PingInterval < 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.opts.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(ctx, s.opts.PingTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				s.c.log.Warn("event stream server did not answer a ping, reconnecting", "err", err)
				_ = conn.CloseNow()
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func (s *EventStream) readLoop(conn *websocket.Conn) error {
	for {
		typ, data, err := conn.Read(s.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		var e models.Event
		if err := json.Unmarshal(data, &e); err != nil {
			s.c.log.Warn("ignoring undecodable event", "err", err)
			continue
		}
		if e.Type == "websocket" && (e.Action == "register" || e.Action == "deregister") {
			s.ack(e.Action, e.Key, ackRefusal(e.Object))
			continue
		}
		select {
		case s.events <- e:
		default:
			s.dropped.Add(1)
			s.c.log.Warn("event stream buffer full, dropping event", "type", e.Type, "action", e.Action, "key", e.Key)
		}
	}
}

// reconnect dials with capped exponential backoff until it succeeds (and
// re-registers every filter) or the stream is closed (nil).
func (s *EventStream) reconnect() *websocket.Conn {
	delay := s.opts.ReconnectMin
	for {
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		conn, err := s.c.dialWS(s.ctx)
		if err != nil {
			s.c.log.Debug("event stream reconnect failed", "err", err, "next", delay)
			delay = min(delay*2, s.opts.ReconnectMax)
			continue
		}
		s.mu.Lock()
		if s.closed() {
			s.mu.Unlock()
			_ = conn.CloseNow()
			return nil
		}
		// Snapshot and install under one lock: a concurrent Register either
		// sees the new conn (and sends itself) or is in the snapshot.
		s.conn = conn
		filters := make([]string, 0, len(s.filters))
		for f := range s.filters {
			filters = append(filters, f)
		}
		s.mu.Unlock()
		s.reconnects.Add(1)
		for _, f := range filters {
			if err := s.send(conn, "register", f); err != nil {
				s.c.log.Warn("re-registering filter failed", "filter", f, "err", err)
			}
		}
		return conn
	}
}

func (s *EventStream) send(conn *websocket.Conn, verb, filter string) error {
	ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, []byte(verb+" "+filter))
}

// ackRefusal returns the models.Error a server put in an acknowledgement's
// Object when it refused the request (an invalid filter, too many
// filters), or nil for an applied request (DRP's acknowledgements carry no
// Object).
func ackRefusal(obj any) error {
	if obj == nil {
		return nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	var me models.Error
	if json.Unmarshal(raw, &me) != nil || me.Code < 400 {
		return nil
	}
	return &me
}

// ack wakes whoever waits for the acknowledgement of verb+filter with the
// server's refusal, or nil.
func (s *EventStream) ack(verb, filter string, refusal error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := verb + " " + filter
	for _, ch := range s.waiters[k] {
		ch <- refusal // buffered, one send per waiter
	}
	delete(s.waiters, k)
}

// addWaiter registers interest in the ack of verb+filter.
func (s *EventStream) addWaiter(verb, filter string) chan error {
	ch := make(chan error, 1)
	k := verb + " " + filter
	s.waiters[k] = append(s.waiters[k], ch)
	return ch
}

func (s *EventStream) dropWaiter(verb, filter string, ch chan error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := verb + " " + filter
	ws := s.waiters[k]
	for i, w := range ws {
		if w == ch {
			s.waiters[k] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(s.waiters[k]) == 0 {
		delete(s.waiters, k)
	}
}

// waitAck waits for ch, the stream's end, ctx or the ack timeout.
func (s *EventStream) waitAck(ctx context.Context, verb, filter string, ch chan error) error {
	t := time.NewTimer(s.opts.AckTimeout)
	defer t.Stop()
	select {
	case refusal := <-ch:
		if refusal != nil {
			return fmt.Errorf("client: %s %q refused by the server: %w", verb, filter, refusal)
		}
		return nil
	case <-ctx.Done():
		s.dropWaiter(verb, filter, ch)
		return fmt.Errorf("client: %s %q: %w", verb, filter, ctx.Err())
	case <-s.ctx.Done():
		s.dropWaiter(verb, filter, ch)
		return fmt.Errorf("client: %s %q: event stream closed", verb, filter)
	case <-t.C:
		s.dropWaiter(verb, filter, ch)
		return fmt.Errorf("client: %s %q: no acknowledgement from the server within %s", verb, filter, s.opts.AckTimeout)
	}
}

// validFilter checks the type.action.key shape of a filter.
func validFilter(f string) error {
	if strings.ContainsAny(f, " \t\r\n") {
		return fmt.Errorf("client: bad event filter %q: must not contain whitespace", f)
	}
	if len(strings.SplitN(f, ".", 3)) != 3 {
		return fmt.Errorf("client: bad event filter %q: want <type>.<action>.<key>", f)
	}
	return nil
}

// Register adds filters (type.action.key, §5.8 syntax) and waits for the
// server's acknowledgements.
func (s *EventStream) Register(ctx context.Context, filters ...string) error {
	for _, f := range filters {
		if err := validFilter(f); err != nil {
			return err
		}
	}
	var errs []error
	for _, f := range filters {
		if err := s.register(ctx, f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *EventStream) register(ctx context.Context, f string) error {
	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		return fmt.Errorf("client: register %q: event stream closed", f)
	}
	if s.filters[f] {
		s.mu.Unlock()
		return nil
	}
	s.filters[f] = true
	ch := s.addWaiter("register", f)
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		if err := s.send(conn, "register", f); err != nil {
			// The socket is failing; the reconnect re-registers f and its
			// acknowledgement wakes us.
			s.c.log.Debug("register send failed, waiting for reconnect", "filter", f, "err", err)
		}
	}
	if err := s.waitAck(ctx, "register", f, ch); err != nil {
		s.mu.Lock()
		delete(s.filters, f)
		s.mu.Unlock()
		return err
	}
	return nil
}

// Deregister removes filters.
func (s *EventStream) Deregister(ctx context.Context, filters ...string) error {
	var errs []error
	for _, f := range filters {
		s.mu.Lock()
		if !s.filters[f] || s.closed() {
			s.mu.Unlock()
			continue
		}
		delete(s.filters, f)
		conn := s.conn
		if conn == nil {
			// Not connected: the next connection simply won't register f.
			s.mu.Unlock()
			continue
		}
		ch := s.addWaiter("deregister", f)
		s.mu.Unlock()
		if err := s.send(conn, "deregister", f); err != nil {
			// The socket is failing; a new one will not carry f.
			s.dropWaiter("deregister", f, ch)
			continue
		}
		if err := s.waitAck(ctx, "deregister", f, ch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Filters returns the currently registered filters.
func (s *EventStream) Filters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := make([]string, 0, len(s.filters))
	for f := range s.filters {
		res = append(res, f)
	}
	return res
}

// Close ends the stream.
func (s *EventStream) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing.Store(true)
		conn := s.conn
		s.mu.Unlock()
		defer s.cancel()
		if conn != nil {
			// Say goodbye politely, but never wait long for the peer.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = conn.Close(websocket.StatusNormalClosure, "")
			}()
			select {
			case <-done:
			case <-ctx.Done():
				_ = conn.CloseNow()
			}
		}
	})
	<-s.done
	return nil
}
