// Package logbuf keeps provisiond's most recent log records in memory as
// DRP log lines (models.LogLine, DRP's logger.Line), for GET /api/v3/logs:
// DRP's Client.Logs() and `drpcli logs get` read the server's buffered
// lines there.
//
// Handler is an slog.Handler that tees every record it is given to a
// bounded Ring and on to the handler that writes the real log, so the ring
// holds exactly what the log shows (same level filter) and never anything
// more: the server does not log secrets, so neither does the ring.
package logbuf

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/provisionhq/provision/models"
)

// DefaultLines is the ring size provisiond uses unless configured.
const DefaultLines = 1000

// DefaultService is the Service of records that name no service,
// plugin or component.
const DefaultService = "provisiond"

// Ring holds the last n log lines. It is safe for concurrent use.
type Ring struct {
	mu    sync.Mutex
	lines []models.LogLine // circular once full
	next  int              // where the next line goes
	full  bool
	seq   int64
}

// NewRing returns a ring keeping the last n lines (n <= 0 keeps none).
func NewRing(n int) *Ring {
	return &Ring{lines: make([]models.LogLine, max(n, 0))}
}

// Cap is the number of lines the ring keeps.
func (r *Ring) Cap() int { return len(r.lines) }

// Add stores l, numbering it (Seq) after every line added before,
// and drops the oldest line when the ring is full.
func (r *Ring) Add(l models.LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if len(r.lines) == 0 {
		return
	}
	l.Seq = r.seq
	r.lines[r.next] = l
	r.next++
	if r.next == len(r.lines) {
		r.next, r.full = 0, true
	}
}

// Lines returns a copy of the kept lines, oldest first (as DRP's buffer
// returns them). It is never nil.
func (r *Ring) Lines() []models.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append(make([]models.LogLine, 0, r.next), r.lines[:r.next]...)
	}
	out := make([]models.LogLine, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}

// Handler tees records into a Ring and on to another handler.
type Handler struct {
	inner  slog.Handler
	ring   *Ring
	attrs  []slog.Attr // bound with WithAttrs, keys already qualified by group
	prefix string      // open groups, "a.b."
}

// NewHandler returns a handler writing every record to inner and storing
// it in ring.
func NewHandler(inner slog.Handler, ring *Ring) *Handler {
	return &Handler{inner: inner, ring: ring}
}

// Enabled reports whether the inner handler takes records of level l: the
// ring keeps what the log shows.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle stores the record as a LogLine and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	h.ring.Add(h.line(r))
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a handler whose records carry attrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	cp := *h
	cp.inner = h.inner.WithAttrs(attrs)
	cp.attrs = append(append([]slog.Attr{}, h.attrs...), qualify(h.prefix, attrs)...)
	return &cp
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	cp := *h
	cp.inner = h.inner.WithGroup(name)
	cp.prefix = h.prefix + name + "."
	return &cp
}

// qualify flattens attrs (and nested groups) to keys under prefix.
func qualify(prefix string, attrs []slog.Attr) []slog.Attr {
	var out []slog.Attr
	for _, a := range attrs {
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindGroup {
			p := prefix
			if a.Key != "" {
				p += a.Key + "."
			}
			out = append(out, qualify(p, a.Value.Group())...)
			continue
		}
		if a.Key == "" {
			continue
		}
		a.Key = prefix + a.Key
		out = append(out, a)
	}
	return out
}

// line converts a record. Service is the record's "service" attribute
// (plugin log lines: the service the plugin logged as), else its
// "plugin", else its "component", else DefaultService; "principal" fills
// Principal and "source" (file:line) File and Line. The other attributes
// follow the message as key=value, as the text log shows them.
func (h *Handler) line(r slog.Record) models.LogLine {
	attrs := append([]slog.Attr{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, qualify(h.prefix, []slog.Attr{a})...)
		return true
	})
	l := models.LogLine{Time: r.Time, Level: models.LogLevelText(r.Level), Data: []any{}}
	named := map[string]string{}
	for _, a := range attrs {
		switch a.Key {
		case "service", "plugin", "component", "principal", "source":
			if a.Value.Kind() == slog.KindString && a.Value.String() != "" {
				named[a.Key] = a.Value.String()
			}
		}
	}
	used := map[string]bool{"principal": true}
	for _, k := range []string{"service", "plugin", "component"} {
		if v := named[k]; v != "" {
			l.Service, used[k] = v, true
			break
		}
	}
	if l.Service == "" {
		l.Service = DefaultService
	}
	l.Principal = named["principal"]
	if src := named["source"]; src != "" {
		if i := strings.LastIndexByte(src, ':'); i > 0 {
			if n, err := strconv.Atoi(src[i+1:]); err == nil {
				l.File, l.Line, used["source"] = src[:i], n, true
			}
		}
	}
	if l.File == "" && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		l.File, l.Line = f.File, f.Line
	}
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range attrs {
		if used[a.Key] {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(quote(a.Value.String()))
	}
	l.Message = b.String()
	return l
}

// quote quotes s like slog's text handler when it would not read as one
// value.
func quote(s string) string {
	if s == "" {
		return `""`
	}
	for _, c := range s {
		if unicode.IsSpace(c) || c == '"' || c == '=' || !unicode.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}
