package pluginsdk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provisionhq/provision/models"
)

// LevelTrace is DRP's "trace" level, below slog.LevelDebug. Loggers handed
// to a plugin record it when the host asks for tracing (X-Log-Request).
const LevelTrace = slog.LevelDebug - 4

// ParseLevel turns DRP's level names (as sent in X-Log-Request) into an
// slog level. fatal, panic and audit map to slog.LevelError.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic", "audit":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want trace, debug, info, warn, error, fatal, panic or audit)", s)
}

// Log shipping defaults.
const (
	defaultLogQueue   = 1024
	defaultLogTimeout = 5 * time.Second
)

// logSink turns records into LogLines and ships them to the host from one
// goroutine through a bounded queue. Logging never blocks: when the queue
// is full the line is written to the fallback writer instead and counted.
// Before the host connection exists (define, unpack, early listen) lines
// go to the fallback writer as "local log: <line>", as DRP's library does.
type logSink struct {
	service  string
	fallback io.Writer
	fbMu     sync.Mutex

	seq     atomic.Int64
	group   atomic.Int64
	dropped atomic.Int64

	mu      sync.Mutex
	post    func(ctx context.Context, l *models.LogLine) error
	queue   chan *models.LogLine
	timeout time.Duration
	done    chan struct{}
	closed  bool
}

func newLogSink(service string, fallback io.Writer) *logSink {
	if fallback == nil {
		fallback = io.Discard
	}
	return &logSink{service: service, fallback: fallback, timeout: defaultLogTimeout}
}

// start begins shipping lines through post. It may be called once.
func (s *logSink) start(post func(ctx context.Context, l *models.LogLine) error, queueLen int, timeout time.Duration) {
	if queueLen <= 0 {
		queueLen = defaultLogQueue
	}
	if timeout <= 0 {
		timeout = defaultLogTimeout
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue != nil || s.closed {
		return
	}
	s.post, s.timeout = post, timeout
	s.queue = make(chan *models.LogLine, queueLen)
	s.done = make(chan struct{})
	go s.run(s.queue, s.done)
}

func (s *logSink) run(q <-chan *models.LogLine, done chan<- struct{}) {
	defer close(done)
	for l := range q {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := s.post(ctx, l)
		cancel()
		if err != nil {
			s.local(fmt.Sprintf("failed to ship log line to host: %v: %s", err, l.Message))
		}
	}
}

// emit queues a line without ever blocking.
func (s *logSink) emit(l *models.LogLine) {
	l.Seq = s.seq.Add(1)
	s.mu.Lock()
	if s.queue == nil || s.closed {
		s.mu.Unlock()
		s.local(l.Level + ": " + l.Message)
		return
	}
	select {
	case s.queue <- l:
		s.mu.Unlock()
	default:
		s.mu.Unlock()
		n := s.dropped.Add(1)
		s.local(fmt.Sprintf("log queue full (%d lines not shipped): %s: %s", n, l.Level, l.Message))
	}
}

func (s *logSink) local(msg string) {
	s.fbMu.Lock()
	defer s.fbMu.Unlock()
	fmt.Fprintf(s.fallback, "local log: %s\n", strings.TrimRight(msg, "\n"))
}

// close stops accepting lines and waits (until ctx ends) for the queued
// ones to be shipped.
func (s *logSink) close(ctx context.Context) {
	s.mu.Lock()
	if s.closed || s.queue == nil {
		s.closed = true
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.queue)
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// logHandler is the slog.Handler of every logger the SDK hands out. It
// renders attributes like slog's text handler after the message and feeds
// the sink.
type logHandler struct {
	sink          *logSink
	minLevel      slog.Leveler
	group         int64
	ignorePublish bool
	// ops replays WithAttrs/WithGroup calls, in order, on the text renderer.
	ops []func(slog.Handler) slog.Handler
}

// Enabled implements slog.Handler: records below the logger's level are skipped.
func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.minLevel.Level()
}

// Handle implements slog.Handler: it renders the record as a LogLine and queues it.
func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var attrs bytes.Buffer
	var th slog.Handler = slog.NewTextHandler(&attrs, &slog.HandlerOptions{Level: LevelTrace, ReplaceAttr: dropBuiltins})
	for _, op := range h.ops {
		th = op(th)
	}
	plain := slog.NewRecord(time.Time{}, r.Level, "", 0)
	r.Attrs(func(a slog.Attr) bool { plain.AddAttrs(a); return true })
	if err := th.Handle(context.Background(), plain); err != nil {
		return err
	}
	msg := r.Message
	if s := strings.TrimSpace(attrs.String()); s != "" {
		msg += " " + s
	}
	line := &models.LogLine{
		Group:         h.group,
		Time:          r.Time,
		Service:       h.sink.service,
		Level:         models.LogLevelText(r.Level),
		Message:       msg,
		Data:          []any{},
		IgnorePublish: h.ignorePublish,
	}
	if line.Time.IsZero() {
		line.Time = time.Now()
	}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		line.File, line.Line = f.File, f.Line
	}
	h.sink.emit(line)
	return nil
}

// dropBuiltins removes time, level and message from the attribute text.
func dropBuiltins(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
		return slog.Attr{}
	}
	return a
}

func (h *logHandler) with(op func(slog.Handler) slog.Handler) *logHandler {
	n := *h
	n.ops = append(append([]func(slog.Handler) slog.Handler{}, h.ops...), op)
	return &n
}

// WithAttrs implements slog.Handler.
func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(func(t slog.Handler) slog.Handler { return t.WithAttrs(as) })
}

// WithGroup implements slog.Handler.
func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(t slog.Handler) slog.Handler { return t.WithGroup(name) })
}

// logger returns a logger on this sink for one request group.
func (s *logSink) logger(min slog.Leveler, group int64) *slog.Logger {
	return slog.New(&logHandler{sink: s, minLevel: min, group: group})
}

// nextGroup returns a fresh group number for a request's log lines.
func (s *logSink) nextGroup() int64 { return s.group.Add(1) }

// NoRepublish returns a logger whose lines reach the host marked
// IgnorePublish, so the host does not turn them into events. The SDK hands
// such a logger to Publish; use it in any code that runs because of an
// event. Loggers not made by the SDK are returned unchanged.
func NoRepublish(l *slog.Logger) *slog.Logger {
	if h, ok := l.Handler().(*logHandler); ok {
		n := *h
		n.ignorePublish = true
		return slog.New(&n)
	}
	return l
}
