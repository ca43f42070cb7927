package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
)

// DefaultWait bounds the Wait* helpers and the start-up handshake when the
// caller passes no timeout.
const DefaultWait = 30 * time.Second

// Host is an in-process fake of the host's outbound socket API (served on
// the fromPlugin socket): it records log lines, published events and
// leaving calls, and checks requests the way the host does (POST, JSON
// content type, decodable body).
type Host struct {
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	lines    []models.LogLine
	events   []models.Event
	leavings []models.Error
	rejected []string
}

// NewHost serves the fake on the unix socket at path until the test ends.
func NewHost(t testing.TB, path string) *Host {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("plugintest: host socket: %v", err)
	}
	h := &Host{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc(pluginsdk.HostAPIPrefix+"/log", func(w http.ResponseWriter, r *http.Request) {
		var l models.LogLine
		if h.decode(w, r, &l) {
			h.mu.Lock()
			h.lines = append(h.lines, l)
			h.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc(pluginsdk.HostAPIPrefix+"/publish", func(w http.ResponseWriter, r *http.Request) {
		var e models.Event
		if h.decode(w, r, &e) {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"Model":"","Key":"","Type":"","Messages":null,"Code":200}` + "\n"))
		}
	})
	mux.HandleFunc(pluginsdk.HostAPIPrefix+"/leaving", func(w http.ResponseWriter, r *http.Request) {
		var e models.Error
		if h.decode(w, r, &e) {
			h.mu.Lock()
			h.leavings = append(h.leavings, e)
			h.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.reject(w, r, http.StatusNotFound, "No route")
	})
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			_ = h.srv.Close()
		}
	})
	return h
}

func (h *Host) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.Method != http.MethodPost {
		h.reject(w, r, http.StatusMethodNotAllowed, "Method not allowed")
		return false
	}
	if ct := r.Header.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "application/json") {
		h.reject(w, r, http.StatusUnsupportedMediaType, "Invalid content type: "+ct)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		h.reject(w, r, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}

func (h *Host) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.mu.Lock()
	h.rejected = append(h.rejected, fmt.Sprintf("%s %s: %d %s", r.Method, r.URL.Path, code, msg))
	h.mu.Unlock()
	e := &models.Error{Type: r.Method, Key: r.URL.Path, Code: code, Messages: []string{msg}}
	buf, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(buf, '\n'))
}

// Lines returns the log lines received so far.
func (h *Host) Lines() []models.LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]models.LogLine(nil), h.lines...)
}

// Events returns the events published so far.
func (h *Host) Events() []models.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]models.Event(nil), h.events...)
}

// Leavings returns the reasons of the leaving calls received so far.
func (h *Host) Leavings() []models.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]models.Error(nil), h.leavings...)
}

// Rejected describes the requests the fake refused (wrong method, content
// type or body); a correct plugin causes none.
func (h *Host) Rejected() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.rejected...)
}

// WaitForLine polls until a received log line satisfies match, failing the
// test after timeout (DefaultWait when 0).
func (h *Host) WaitForLine(t testing.TB, timeout time.Duration, match func(models.LogLine) bool) models.LogLine {
	t.Helper()
	l, ok := waitFor(timeout, h.Lines, match)
	if !ok {
		t.Fatalf("plugintest: no matching log line within %v; got %d lines: %v", orDefault(timeout), len(h.Lines()), messages(h.Lines()))
	}
	return l
}

// WaitForMessage waits for a log line whose Message contains substr.
func (h *Host) WaitForMessage(t testing.TB, timeout time.Duration, substr string) models.LogLine {
	t.Helper()
	return h.WaitForLine(t, timeout, func(l models.LogLine) bool { return strings.Contains(l.Message, substr) })
}

// WaitForEvent polls until a published event satisfies match.
func (h *Host) WaitForEvent(t testing.TB, timeout time.Duration, match func(models.Event) bool) models.Event {
	t.Helper()
	e, ok := waitFor(timeout, h.Events, match)
	if !ok {
		t.Fatalf("plugintest: no matching published event within %v; got %v", orDefault(timeout), h.Events())
	}
	return e
}

// WaitForLeaving polls until a leaving call arrives and returns its reason.
func (h *Host) WaitForLeaving(t testing.TB, timeout time.Duration) models.Error {
	t.Helper()
	e, ok := waitFor(timeout, h.Leavings, func(models.Error) bool { return true })
	if !ok {
		t.Fatalf("plugintest: no leaving call within %v", orDefault(timeout))
	}
	return e
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultWait
	}
	return d
}

// pollInterval is how often the Wait* helpers and Eventually look again.
const pollInterval = 5 * time.Millisecond

// poll checks cond every pollInterval until it holds (true) or timeout
// (DefaultWait when 0) passes (false). It is the one deadline loop the
// waiting helpers share.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(orDefault(timeout))
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Eventually polls cond until it holds, failing the test with "timed out
// waiting for <what>" after timeout (DefaultWait when 0): the way tests
// wait for state that changes asynchronously, instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitFor polls get until an element matches or the deadline passes.
func waitFor[T any](timeout time.Duration, get func() []T, match func(T) bool) (T, bool) {
	var found T
	ok := poll(timeout, func() bool {
		for _, v := range get() {
			if match(v) {
				found = v
				return true
			}
		}
		return false
	})
	return found, ok
}

func messages(ls []models.LogLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Level + ": " + l.Message
	}
	return out
}

var errNotStarted = errors.New("plugintest: plugin not started")
