package client

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/models"
)

// fakeAPI is a small in-memory stand-in for the parts of /api/v3 the client
// unit tests exercise. It authenticates every request like provisiond does
// (Bearer token or Basic user:password), stores objects as JSON documents
// keyed by prefix/key and applies JSON Patches with jsonpatch2, so a wrong
// patch or a failing test op shows up as the real server would show it.
type fakeAPI struct {
	t        testing.TB
	token    string
	user     string
	password string

	mu      sync.Mutex
	objects map[string][]byte // "prefix/key" -> JSON
	headers []http.Header     // headers of every authenticated request
	// failNext makes the next n requests die at the transport level.
	failNext int
	attempts int
	// keepAlive keeps connections open (benchmarks).
	keepAlive bool
	// lastBody is the body of the last request.
	lastBody []byte
}

func newFakeAPI(t testing.TB) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, token: "good-token", user: "rocketskates", password: "s3cret", objects: map[string][]byte{}}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) put(path string, obj any) {
	buf, err := json.Marshal(obj)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.objects[path] = buf
	f.mu.Unlock()
}

func (f *fakeAPI) get(path string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[path]
}

func writeErr(w http.ResponseWriter, code int, typ, model, key, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&models.Error{Model: model, Key: key, Type: typ, Messages: []string{msg}, Code: code})
}

func (f *fakeAPI) authorized(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
		return tok == f.token
	}
	if b, ok := strings.CutPrefix(a, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(b)
		return err == nil && string(raw) == f.user+":"+f.password
	}
	return false
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.attempts++
	if f.failNext > 0 {
		f.failNext--
		f.mu.Unlock()
		// Drop the connection without an answer: a transport error.
		hj, ok := w.(http.Hijacker)
		if !ok {
			f.t.Error("response writer cannot hijack")
			return
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	f.mu.Unlock()
	// No keep-alive: net/http silently retries idempotent requests that fail
	// on a reused connection, which would blur the attempt counts.
	if !f.keepAlive {
		w.Header().Set("Connection", "close")
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.lastBody = body
	f.mu.Unlock()
	if !f.authorized(r) {
		writeErr(w, http.StatusForbidden, "AUTH", "", "", "Forbidden")
		return
	}
	f.mu.Lock()
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v3/")
	if !ok {
		writeErr(w, http.StatusNotFound, r.Method, "", r.URL.Path, "No route")
		return
	}
	switch {
	case path == "plain-error":
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "upstream exploded")
		return
	case path == "echo" || strings.HasSuffix(path, "/actions/echo"):
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "query": r.URL.RawQuery, "contentType": r.Header.Get("Content-Type"),
			"body": string(body), "length": r.ContentLength,
		})
		return
	case path == "binary":
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte{0, 1, 2, 3})
		return
	}
	prefix, key, _ := strings.Cut(path, "/")
	f.mu.Lock()
	obj, found := f.objects[path]
	f.mu.Unlock()
	switch r.Method {
	case http.MethodHead:
		if !found {
			w.WriteHeader(http.StatusNotFound)
		}
	case http.MethodGet:
		if !found {
			writeErr(w, http.StatusNotFound, "GET", prefix, key, "Not Found")
			return
		}
		_, _ = w.Write(obj)
	case http.MethodPatch:
		if !found {
			writeErr(w, http.StatusNotFound, "PATCH", prefix, key, "Not Found")
			return
		}
		p, err := jsonpatch2.NewPatch(body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "PATCH", prefix, key, err.Error())
			return
		}
		res, err, loc := p.Apply(obj)
		if err != nil {
			writeErr(w, http.StatusConflict, "PATCH", prefix, key, fmt.Sprintf("patch op %d failed: %v", loc, err))
			return
		}
		f.mu.Lock()
		f.objects[path] = res
		f.mu.Unlock()
		_, _ = w.Write(res)
	default:
		writeErr(w, http.StatusMethodNotAllowed, r.Method, prefix, key, "Method not allowed")
	}
}
