package events

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/provisionhq/provision/models"
)

// Defaults for WSOptions fields left zero.
const (
	// DefaultWSQueueLen is the default per-connection event queue length.
	DefaultWSQueueLen = 1000
	// DefaultWSWriteTimeout is the default bound on one write.
	DefaultWSWriteTimeout = 10 * time.Second
	// DefaultWSMaxFilters is the default cap on filters per connection.
	DefaultWSMaxFilters = 1000
	// DefaultWSReadLimit is the default cap on one client frame (bytes).
	DefaultWSReadLimit = 32 << 10
)

// AckType is the Type of the acknowledgement event the websocket sends for
// every register/deregister request. DRP's Go client counts events of this
// type to know its registrations were applied (drp-protocol §5.8).
const AckType = "websocket"

// WSOptions configures a WebsocketHandler.
type WSOptions struct {
	// QueueLen bounds each connection's queue of pending events
	// (default DefaultWSQueueLen). Events that do not fit are dropped and
	// counted on the bus.
	QueueLen int
	// WriteTimeout bounds one write to the connection (default
	// DefaultWSWriteTimeout): a batch of frames of at most 64 KiB, or one
	// larger frame. A connection whose write stalls longer is closed, so
	// a client that stops reading loses its connection instead of
	// pinning resources.
	WriteTimeout time.Duration
	// MaxFilters bounds the filters one connection may register
	// (default DefaultWSMaxFilters); further registers are refused with
	// an error acknowledgement.
	MaxFilters int
	// ReadLimit bounds one client frame in bytes (default
	// DefaultWSReadLimit); a larger frame closes the connection.
	ReadLimit int64
	// Authenticate, when set, lets the handler serve requests directly
	// through ServeHTTP: it returns the principal name and the
	// per-connection rights check, or a *models.Error (with Code set to
	// the HTTP status) to refuse the request. Without it ServeHTTP refuses
	// every request; the API layer normally authenticates itself and
	// calls ServeWS.
	Authenticate func(r *http.Request) (principal string, allow func(*models.Event) bool, err *models.Error)
	// Limits cap open websockets (per principal, in total); zero fields
	// do not limit.
	Limits WSLimits
	// Logger receives connection warnings (default slog.Default()).
	Logger *slog.Logger
}

// WebsocketHandler serves DRP's event websocket (/api/v3/ws): clients send
// text frames "register <filter>" and "deregister <filter>" and receive one
// JSON models.Event per text frame for every published event that matches
// one of their filters and that their rights allow. Each connection has its
// own bounded queue on the bus, so a client that reads slowly or not at all
// only loses its own events.
type WebsocketHandler struct {
	bus  *Bus
	opts WSOptions
	log  *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  atomic.Int64
	admit  *wsAdmission
	// batches holds the connections' batch buffers (*[]byte of capacity
	// maxBatch), so that only connections with a batch in progress hold
	// one.
	batches sync.Pool
}

// NewWebsocketHandler returns a handler that streams events from bus.
func NewWebsocketHandler(bus *Bus, opts WSOptions) *WebsocketHandler {
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultWSQueueLen
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWSWriteTimeout
	}
	if opts.MaxFilters <= 0 {
		opts.MaxFilters = DefaultWSMaxFilters
	}
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = DefaultWSReadLimit
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &WebsocketHandler{bus: bus, opts: opts, log: log, ctx: ctx, cancel: cancel, admit: newWSAdmission(opts.Limits)}
}

// ServeHTTP authenticates the request with WSOptions.Authenticate and then
// serves it like ServeWS. Without Authenticate it answers 500, so that an
// unconfigured handler never streams events to anonymous clients.
func (h *WebsocketHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opts.Authenticate == nil {
		writeError(w, models.NewError("API_ERROR", http.StatusInternalServerError,
			"websocket authentication is not configured on this server"))
		return
	}
	principal, allow, merr := h.opts.Authenticate(r)
	if merr != nil {
		if merr.Code == 0 {
			merr.Code = http.StatusUnauthorized
		}
		writeError(w, merr)
		return
	}
	h.ServeWS(w, r, principal, allow)
}

func writeError(w http.ResponseWriter, e *models.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code)
	_ = json.NewEncoder(w).Encode(e)
}

// Connections is the number of websocket connections being served.
func (h *WebsocketHandler) Connections() int { return int(h.conns.Load()) }

// Close ends every connection (with a "going away" close frame) and makes
// later connections end at once. Use it at server shutdown:
// http.Server.Shutdown does not track hijacked websocket connections. It
// does not wait for the connections to finish.
func (h *WebsocketHandler) Close() { h.cancel() }

// ServeWS upgrades an already authenticated request to a websocket and
// streams events until the client closes, the request context ends, the
// handler is closed or a write stalls beyond WSOptions.WriteTimeout.
// principal names the client in acknowledgements and logs; allow is the
// connection's rights check, applied to every event before it is sent (nil
// allows everything). allow runs on the connection's own goroutine, never
// inside Bus.Publish, so a slow check cannot slow the bus.
func (h *WebsocketHandler) ServeWS(w http.ResponseWriter, r *http.Request, principal string, allow func(*models.Event) bool) {
	h.ServeClient(w, r, WSClient{Principal: principal, Allow: allow})
}

// WSClient is the authenticated peer of a websocket.
type WSClient struct {
	// Principal names the client in acknowledgements, logs and the
	// per-principal cap.
	Principal string
	// Allow is the connection's rights check (nil allows everything).
	Allow func(*models.Event) bool
	// Superuser lets the client use the reserve of WSLimits.Total.
	Superuser bool
}

// ServeClient is ServeWS for a client that may be a superuser. A client
// over a WSLimits cap gets the refusal (429 or 503, a models.Error naming
// the limit) instead of an upgrade.
func (h *WebsocketHandler) ServeClient(w http.ResponseWriter, r *http.Request, cl WSClient) {
	principal, allow := cl.Principal, cl.Allow
	release, refusal := h.admit.admit(principal, cl.Superuser)
	if refusal != nil {
		h.log.Warn("websocket: refused", "principal", principal, "remote", r.RemoteAddr, "error", refusal.Messages[0])
		w.Header().Set("Retry-After", "1")
		writeError(w, refusal)
		return
	}
	defer release()
	hw := &hijackWriter{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		// Any Origin is accepted on purpose: clients are CLIs and plugins,
		// not browsers carrying ambient cookies, and every connection has
		// already been authenticated by token/credentials in the request
		// itself, so a cross-origin page gains nothing it could not do by
		// presenting the token directly.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has already written an HTTP error response.
		h.log.Warn("websocket: upgrade failed", "principal", principal, "remote", r.RemoteAddr, "error", err)
		return
	}
	c.SetReadLimit(h.opts.ReadLimit)
	h.conns.Add(1)
	defer h.conns.Add(-1)

	if hw.fc == nil {
		// Cannot happen: Accept succeeds only after hijacking through hw.
		h.log.Error("websocket: connection was not hijacked through the frame writer", "principal", principal)
		_ = c.CloseNow()
		return
	}
	conn := &wsConn{
		h:          h,
		c:          c,
		fc:         hw.fc,
		principal:  principal,
		remoteAddr: r.RemoteAddr,
		allow:      allow,
		acks:       make(chan models.Event, 16),
		log:        h.log.With("principal", principal, "remote", r.RemoteAddr),
	}
	conn.run(r.Context())
}

// wsConn is one websocket connection.
type wsConn struct {
	h          *WebsocketHandler
	c          *websocket.Conn
	fc         *frameConn // c's byte stream; event frames are written here
	principal  string
	remoteAddr string
	allow      func(*models.Event) bool
	filters    FilterSet
	acks       chan models.Event
	log        *slog.Logger

	// batch collects the frames of one drained batch (a buffer from
	// h.batches while a batch is open, nil between batches).
	batch *[]byte
}

// run serves the connection until it ends. The reader goroutine handles
// register/deregister requests; this goroutine is the only writer.
func (w *wsConn) run(reqCtx context.Context) {
	// life ends the stream: request context done or handler closed.
	life, stopLife := context.WithCancel(reqCtx)
	defer stopLife()
	stopOnClose := context.AfterFunc(w.h.ctx, stopLife)
	defer stopOnClose()

	// ioCtx governs reads and writes. It is deliberately not derived from
	// life's cancellation: cancelling a read or write context makes
	// coder/websocket drop the TCP connection, and on shutdown we want to
	// send a proper close frame first.
	ioCtx, stopIO := context.WithCancel(context.WithoutCancel(reqCtx))
	defer stopIO()

	sub := w.h.bus.subscribeEnvelopes("websocket "+w.principal+"@"+w.remoteAddr, w.h.opts.QueueLen, w.filters.Match)
	defer sub.Close()

	readerDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(readerDone)
		w.readLoop(ioCtx)
	}()
	defer wg.Wait()
	defer stopIO() // runs before wg.Wait: unblocks the reader

	for {
		select {
		case <-life.Done():
			// Clean close; coder/websocket bounds the handshake (5 s
			// each way) so a stuck client cannot hold us forever.
			_ = w.c.Close(websocket.StatusGoingAway, "server closing event stream")
			return
		case <-readerDone:
			// Client closed, sent something invalid, or went away.
			_ = w.c.CloseNow()
			return
		case ack := <-w.acks:
			if !w.queueEvent(&ack) {
				return
			}
		case env, ok := <-sub.envs:
			if !ok {
				_ = w.c.Close(websocket.StatusGoingAway, "event stream closed")
				return
			}
			if !w.queueEnvelope(env) {
				return
			}
		}
		// Drain whatever else is already queued into the same batch, so
		// a busy connection costs one write per batch, not per event.
		ok, subClosed := w.drain(sub.envs)
		if !ok || !w.flush() {
			return
		}
		if subClosed {
			_ = w.c.Close(websocket.StatusGoingAway, "event stream closed")
			return
		}
	}
}

// drain moves the events and acknowledgements already waiting into the
// batch without blocking, at most one queue's worth, so that under a
// sustained stream run still sees shutdown and client close between
// drains. ok is false when the connection failed; subClosed reports that
// the subscription's queue was closed.
func (w *wsConn) drain(envs <-chan *envelope) (ok, subClosed bool) {
	for range cap(envs) + cap(w.acks) {
		select {
		case env, open := <-envs:
			if !open {
				return true, true
			}
			if !w.queueEnvelope(env) {
				return false, false
			}
		case ack := <-w.acks:
			if !w.queueEvent(&ack) {
				return false, false
			}
		default:
			return true, false
		}
	}
	return true, false
}

// queueEnvelope adds a published event's shared frame to the batch if the
// connection's rights allow the event. It returns false if the connection
// failed.
func (w *wsConn) queueEnvelope(env *envelope) bool {
	if !w.permitted(&env.ev) {
		return true
	}
	if env.err != nil {
		w.log.Warn("websocket: cannot encode event, skipping it", "type", env.ev.Type, "action", env.ev.Action, "key", env.ev.Key, "error", env.err)
		return true
	}
	return w.queueFrame(env.frame)
}

// queueEvent encodes e (an acknowledgement, for this connection only)
// and adds it to the batch. It returns false if the connection failed.
func (w *wsConn) queueEvent(e *models.Event) bool {
	frame, err := encodeFrame(e)
	if err != nil {
		w.log.Warn("websocket: cannot encode event, skipping it", "type", e.Type, "action", e.Action, "key", e.Key, "error", err)
		return true
	}
	return w.queueFrame(frame)
}

// permitted applies the connection's rights check, treating a panic as a
// denial.
func (w *wsConn) permitted(e *models.Event) (ok bool) {
	if w.allow == nil {
		return true
	}
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("websocket: rights check panicked", "panic", r)
			ok = false
		}
	}()
	return w.allow(e)
}

// maxBatch is the size of a batch buffer: frames are collected up to this
// many bytes per write; a larger frame is written on its own.
const maxBatch = 64 << 10

// queueFrame adds one complete frame to the batch, writing the batch
// first if the frame does not fit. It returns false if the connection
// failed.
func (w *wsConn) queueFrame(frame []byte) bool {
	if w.batch != nil && len(*w.batch)+len(frame) > maxBatch {
		if !w.flush() {
			return false
		}
	}
	if len(frame) > maxBatch {
		return w.write(frame)
	}
	if w.batch == nil {
		w.batch, _ = w.h.batches.Get().(*[]byte)
		if w.batch == nil {
			b := make([]byte, 0, maxBatch)
			w.batch = &b
		}
	}
	*w.batch = append(*w.batch, frame...)
	return true
}

// flush writes the batch, if any, and returns its buffer to the pool. It
// returns false if the connection failed.
func (w *wsConn) flush() bool {
	if w.batch == nil {
		return true
	}
	ok := len(*w.batch) == 0 || w.write(*w.batch)
	*w.batch = (*w.batch)[:0]
	w.h.batches.Put(w.batch)
	w.batch = nil
	return ok
}

// write sends complete frames in one write bounded by WriteTimeout. On
// failure it closes the connection and returns false.
func (w *wsConn) write(frames []byte) bool {
	err := w.fc.writeFrames(frames, w.h.opts.WriteTimeout)
	if err == nil {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.log.Warn("websocket: client not reading, closing connection", "timeout", w.h.opts.WriteTimeout)
	} else {
		w.log.Debug("websocket: write failed", "error", err)
	}
	_ = w.c.CloseNow()
	return false
}

// readLoop handles client requests until the connection fails or ioCtx ends.
func (w *wsConn) readLoop(ioCtx context.Context) {
	for {
		typ, data, err := w.c.Read(ioCtx)
		if err != nil {
			if s := websocket.CloseStatus(err); s != websocket.StatusNormalClosure && s != websocket.StatusGoingAway && ioCtx.Err() == nil {
				w.log.Debug("websocket: read ended", "error", err)
			}
			return
		}
		if typ != websocket.MessageText {
			w.log.Warn("websocket: ignoring non-text frame", "type", typ.String())
			continue
		}
		if !w.handle(ioCtx, string(data)) {
			return
		}
	}
}

// handle applies one client request and queues its acknowledgement. It
// returns false when ioCtx ended while waiting to queue.
//
// Every request gets exactly one acknowledgement of Type AckType with the
// request's command as Action and its argument as Key, so DRP's client,
// which waits for one "websocket" event per register it sends, never
// hangs. An applied request's acknowledgement has no Object (as before and
// as DRP sends it); a refused one (unknown command, invalid filter, too
// many filters) carries a *models.Error in Object saying what to fix.
func (w *wsConn) handle(ioCtx context.Context, msg string) bool {
	cmd, arg, _ := strings.Cut(strings.TrimSpace(msg), " ")
	arg = strings.TrimSpace(arg)
	ack := models.Event{Time: time.Now().UTC(), Type: AckType, Action: truncate(cmd, 32), Key: truncate(arg, 256), Principal: w.principal}
	if refusal := w.apply(cmd, arg); refusal != nil {
		w.log.Warn("websocket: refusing request", "request", truncate(msg, 80), "error", refusal.Messages[0])
		ack.Object = refusal
	}
	select {
	case w.acks <- ack:
		return true
	case <-ioCtx.Done():
		return false
	}
}

// apply performs one register/deregister request, or returns why it
// cannot.
func (w *wsConn) apply(cmd, arg string) *models.Error {
	refuse := func(format string, args ...any) *models.Error {
		e := models.NewError("ValidationError", http.StatusBadRequest, format, args...)
		e.Model, e.Key = AckType, truncate(arg, 256)
		return e
	}
	switch cmd {
	case "register", "deregister":
	default:
		return refuse("unknown request %q: send \"register <filter>\" or \"deregister <filter>\"", truncate(cmd, 32))
	}
	f, err := models.ParseEventFilter(arg)
	if err != nil {
		return refuse("invalid filter %q: %v (a filter is <type>.<action>.<key>, each part * or a comma list)", truncate(arg, 80), err)
	}
	if cmd == "deregister" {
		w.filters.Deregister(f)
		return nil
	}
	if w.filters.Len() >= w.h.opts.MaxFilters {
		return refuse("too many filters on this connection: limit %d; deregister some first", w.h.opts.MaxFilters)
	}
	w.filters.Register(f)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
