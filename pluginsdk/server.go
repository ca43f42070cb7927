package pluginsdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
)

// Inbound routes (host → plugin), served on the toPlugin socket.
const (
	// ConfigPath receives the Plugin object's Params.
	ConfigPath = "/api-plugin/v4/config"
	// StopPath asks the plugin to exit.
	StopPath = "/api-plugin/v4/stop"
	// ActionPath runs one action.
	ActionPath = "/api-plugin/v4/action"
	// PublishPath delivers every event to HasPublish providers (deprecated in DRP).
	PublishPath = "/api-plugin/v4/publish"
	// PluginAPIPrefix starts the paths an APIProvider serves (any method).
	PluginAPIPrefix = "/api/v3/plugin-apis/"
)

const (
	maxRequestBody  = 64 << 20
	shutdownTimeout = 10 * time.Second
	registerTimeout = 30 * time.Second
	streamStopWait  = 10 * time.Second
)

// server is the handler of the toPlugin socket.
type server struct {
	app    *App
	host   *host
	base   context.Context // lives as long as listen; carries the host
	toPath string
	routes map[string]func(w http.ResponseWriter, r *http.Request, l *slog.Logger)
	api    http.Handler

	mu     sync.Mutex // guards the event stream
	stream *eventFeed

	stopOnce sync.Once
	stopped  chan struct{}
}

func newServer(a *App, h *host, base context.Context, toPath string) *server {
	s := &server{app: a, host: h, base: withHost(base, h), toPath: toPath, stopped: make(chan struct{})}
	s.routes = map[string]func(http.ResponseWriter, *http.Request, *slog.Logger){
		ConfigPath: s.handleConfig,
		StopPath:   s.handleStop,
	}
	_, isSel := a.impl.(EventSelector)
	if pub, ok := a.impl.(Publisher); ok && a.def.HasPublish && !isSel {
		s.routes[PublishPath] = func(w http.ResponseWriter, r *http.Request, l *slog.Logger) { s.handlePublish(w, r, l, pub) }
	}
	if act, ok := a.impl.(Actor); ok {
		s.routes[ActionPath] = func(w http.ResponseWriter, r *http.Request, l *slog.Logger) { s.handleAction(w, r, l, act) }
	}
	if ap, ok := a.impl.(APIProvider); ok {
		s.api = ap.PluginAPI()
	}
	return s
}

// statusWriter records whether and what status was written, so a panic
// after the header went out is not answered twice.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status and passes it on.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and passes the bytes on.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes flushes through (the stop answer is flushed explicitly).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP applies DRP's mux rules: passthrough for an APIProvider,
// POST-only known routes, DRP's not-found answer otherwise, per-request
// logger (X-Log-Request/X-Log-Token) and panic recovery.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	level := slog.Leveler(&s.app.logLevel)
	l := s.app.sink.logger(level, s.app.sink.nextGroup())
	if lv := r.Header.Get("X-Log-Request"); lv != "" {
		if parsed, err := ParseLevel(lv); err != nil {
			NoRepublish(l).Error("invalid X-Log-Request level", "error", err)
		} else {
			l = s.app.sink.logger(parsed, s.app.sink.nextGroup())
		}
	}
	if tok := r.Header.Get("X-Log-Token"); tok != "" {
		NoRepublish(l).Error("Log token: " + tok)
	}
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			res := &models.Error{Code: http.StatusInternalServerError, Type: r.Method, Key: r.URL.Path}
			res.Errorf("Panic recovered: %v", p)
			res.Errorf("Stack trace:")
			sc := bufio.NewScanner(bytes.NewReader(debug.Stack()))
			for sc.Scan() {
				res.Errorf("%s", sc.Text())
			}
			l.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(p))
			if sw.status == 0 {
				writeJSON(sw, res.Code, res)
			}
		}
		NoRepublish(l).Debug(fmt.Sprintf("API: st: %d lt: %13v m: %s %s", sw.status, time.Since(start), r.Method, r.URL.Path))
	}()

	ctx := withHost(r.Context(), s.host)
	if s.api != nil {
		if p, ok := s.pluginAPIPath(r.URL.Path); ok {
			r2 := r.WithContext(ctx)
			if p != r.URL.Path {
				r2 = r2.Clone(ctx)
				r2.URL.Path, r2.URL.RawPath = p, ""
			}
			s.api.ServeHTTP(sw, r2)
			return
		}
	}
	h, ok := s.routes[r.URL.Path]
	if !ok || r.Method != http.MethodPost {
		notFound(sw, r)
		return
	}
	h(sw, r.WithContext(ctx), l)
}

// pluginAPIPath recognises passthrough requests. provisiond proxies them
// with the original path; DRP's reverse proxy prefixes the toPlugin socket
// path (//var/run/x.toPlugin.7/api/v3/plugin-apis/...), which is stripped.
func (s *server) pluginAPIPath(p string) (string, bool) {
	if strings.HasPrefix(p, PluginAPIPrefix) {
		return p, true
	}
	i := strings.Index(p, PluginAPIPrefix)
	if i > 0 && strings.Trim(p[:i], "/") == strings.Trim(s.toPath, "/") {
		return p[i:], true
	}
	return "", false
}

// notFound is DRP's not-found answer, used for unknown paths and for any
// method other than POST on a known one.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, &models.Error{Code: http.StatusNotFound, Type: r.Method, Key: r.URL.Path})
}

// writeJSON answers with one JSON value plus "\n". The value is encoded
// before the header is written, so an unencodable value becomes a 500.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		b.Reset()
		_ = enc.Encode(models.NewError("plugin", code, "cannot encode the answer as JSON: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// decode reads a JSON request body into v like DRP's AssureDecode: the
// Content-Type must contain application/json, an empty body leaves v at its
// zero value, bad JSON is a 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	ct := r.Header.Get("Content-Type")
	if !strings.Contains(strings.ToLower(ct), "application/json") {
		e := &models.Error{Type: r.Method, Code: http.StatusBadRequest}
		e.Errorf("Invalid content type: %s", ct)
		writeJSON(w, e.Code, e)
		return false
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) { // empty chunked body
			return true
		}
		e := &models.Error{Type: r.Method, Code: http.StatusBadRequest}
		e.AddError(err)
		writeJSON(w, e.Code, e)
		return false
	}
	return true
}

// httpStatus returns the status to answer for a plugin's error. DRP passes
// err.Code straight to WriteHeader, so Code 0 (common in plugins) panics
// there and the host sees "Panic recovered: invalid WriteHeader code 0"
// (kb-00041). We answer 500 instead of crashing.
func httpStatus(e *models.Error) int {
	if e.Code < 100 || e.Code > 999 {
		return http.StatusInternalServerError
	}
	return e.Code
}

// doubleEncoded is how DRP answers a failed Config or Publish: a fresh
// Error whose only message is the plugin's Error JSON-encoded as a string.
// Odd, but the host and DRP tooling parse exactly this, so it stays on the
// wire (wire compatibility).
func doubleEncoded(e *models.Error) (int, *models.Error) {
	code := httpStatus(e)
	buf, err := json.Marshal(e)
	if err != nil {
		buf = []byte(e.Error())
	}
	return code, &models.Error{Code: code, Messages: []string{string(buf)}}
}

func okAnswer() *models.Error { return &models.Error{Code: http.StatusOK} }

func (s *server) handleConfig(w http.ResponseWriter, r *http.Request, l *slog.Logger) {
	var params map[string]any
	if !decode(w, r, &params) {
		return
	}
	name := s.app.def.Name
	pluginErr := func(format string, args ...any) {
		e := &models.Error{Code: http.StatusBadRequest, Model: "plugin", Key: "unknown", Type: "plugin", Messages: []string{}}
		e.Errorf(format, args...)
		writeJSON(w, e.Code, e)
	}
	token := s.app.getenv("RS_TOKEN")
	if token == "" {
		pluginErr("Must have a token specified")
		return
	}
	c, err := client.New(s.app.endpoint(), client.Options{Token: token, UserAgent: s.app.name + "/" + s.app.version})
	if err != nil {
		pluginErr("%v", err)
		return
	}
	// Event wiring is checked before Config (DRP checks after Config, which
	// leaves a plugin configured although the host is told it failed).
	// Messages are DRP's verbatim, typo included.
	sel, isSel := s.app.impl.(EventSelector)
	pub, isPub := s.app.impl.(Publisher)
	if isSel && s.app.def.HasPublish {
		pluginErr("Plugin can NOT have both HasPublish and EventSelector: %s", name)
		return
	}
	if isSel && !isPub {
		pluginErr("Plugin can has an EventSelector, but no Publish function: %s", name)
		return
	}
	// Param values may be secrets (decrypted secure params): log names only.
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	l.Info("Received Config request", "params", keys)
	if merr := s.app.cfg.Config(r.Context(), l, c, params); merr != nil {
		code, body := doubleEncoded(merr)
		writeJSON(w, code, body)
		return
	}
	if isSel {
		if e := s.startEvents(c, sel, pub, l); e != nil {
			writeJSON(w, e.Code, e)
			return
		}
	}
	writeJSON(w, http.StatusOK, okAnswer())
}

func (s *server) handleAction(w http.ResponseWriter, r *http.Request, l *slog.Logger, act Actor) {
	var a models.Action
	if !decode(w, r, &a) {
		return
	}
	ret, merr := act.Action(r.Context(), l, &a)
	if merr != nil {
		code := httpStatus(merr)
		if code != merr.Code {
			// Keep Code equal to the status it travels with (see httpStatus).
			fixed := *merr
			fixed.Code = code
			merr = &fixed
		}
		writeJSON(w, code, merr)
		return
	}
	writeJSON(w, http.StatusOK, ret)
}

func (s *server) handlePublish(w http.ResponseWriter, r *http.Request, l *slog.Logger, pub Publisher) {
	var e models.Event
	if !decode(w, r, &e) {
		return
	}
	if merr := pub.Publish(r.Context(), NoRepublish(l), &e); merr != nil {
		code, body := doubleEncoded(merr)
		writeJSON(w, code, body)
		return
	}
	writeJSON(w, http.StatusOK, okAnswer())
}

// handleStop closes the event stream, calls Stopper, writes and flushes
// the 200 answer and then tells listen to exit. The stream is closed first
// so that no SelectEvents delivery calls Publish while or after Stop runs
// (stopEvents cancels a running Publish's context and waits for it, up to
// streamStopWait). DRP calls os.Exit inside the handler, so its answer is
// usually lost; here listen exits only after the server has finished the
// response.
func (s *server) handleStop(w http.ResponseWriter, r *http.Request, l *slog.Logger) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxRequestBody))
	}
	s.stopEvents()
	if st, ok := s.app.impl.(Stopper); ok {
		st.Stop(r.Context(), l)
	}
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusOK, okAnswer())
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	l.Info("STOPPING")
	s.stopOnce.Do(func() { close(s.stopped) })
}

// listen implements the listen command: bind toPath, print READY!, serve
// until /stop or ctx ends.
func (a *App) listen(ctx context.Context, toPath, fromPath string) error {
	fail := func(err error) error {
		fmt.Fprintln(a.stdout, "Failed")
		return err
	}
	if toPath == "" || fromPath == "" {
		return fail(errors.New("listen: socket paths must not be empty"))
	}
	ctx = withDefault(ctx)
	h := newHost(fromPath)
	defer h.close()
	a.sink.start(func(ctx context.Context, l *models.LogLine) error { return h.post(ctx, "/log", l) }, 0, 0)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.sink.close(cctx)
		cancel()
	}()

	if err := os.Remove(toPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(fmt.Errorf("listen: removing stale socket %s: %w", toPath, err))
	}
	ln, err := net.Listen("unix", toPath)
	if err != nil {
		return fail(fmt.Errorf("listen: %w", err))
	}
	defer os.Remove(toPath)

	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := newServer(a, h, base, toPath)
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return srv.base },
		ErrorLog:          slog.NewLogLogger(a.sink.logger(&a.logLevel, 0).Handler(), slog.LevelError),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	// The socket is bound before READY! is printed, so the host's first
	// connection cannot race the listener.
	if _, err := fmt.Fprintln(a.stdout, "READY!"); err != nil {
		_ = hs.Close()
		return fmt.Errorf("listen: printing READY!: %w", err)
	}

	var stopRequested bool
	select {
	case <-srv.stopped:
		stopRequested = true
	case err := <-served:
		srv.stopEvents()
		return fmt.Errorf("listen: serving %s: %w", toPath, err)
	case <-ctx.Done():
	}
	// Shutdown waits for running handlers (including the stop handler,
	// whose answer is complete) and closes idle connections.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	cancel()
	srv.stopEvents()
	cancelBase()
	if stopRequested {
		// Ship the remaining log lines before the process goes away.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.sink.close(cctx)
		cancel()
		h.close()
		os.Remove(toPath)
		a.exit(0)
	}
	return nil
}
