package slackplugin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"
)

// fakeSlack wraps slacktest's server with auth.test and chat.postMessage
// handlers that check the token like Slack does and record what was posted.
type fakeSlack struct {
	*slacktest.Server
	token string

	mu          sync.Mutex
	posts       []url.Values
	rateLimited int // answer this many chat.postMessage calls with 429 first
	retryAfter  string
	authCalls   int
}

func tokenOf(r *http.Request, form url.Values) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimPrefix(h, "Bearer ")
	}
	return form.Get("token")
}

func newFakeSlack(t *testing.T, token string) *fakeSlack {
	t.Helper()
	f := &fakeSlack{token: token}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			f.mu.Lock()
			f.authCalls++
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if tokenOf(r, r.PostForm) != f.token {
				_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
				return
			}
			_, _ = io.WriteString(w, `{"ok":true,"url":"https://test.slack.com/","team":"Test Team","user":"provision","team_id":"T1","user_id":"U1"}`)
		})
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if tokenOf(r, r.PostForm) != f.token {
				_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.rateLimited > 0 {
				f.rateLimited--
				w.Header().Set("Retry-After", f.retryAfter)
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
				return
			}
			if r.PostForm.Get("channel") == "" || r.PostForm.Get("text") == "" {
				_, _ = io.WriteString(w, `{"ok":false,"error":"no_text"}`)
				return
			}
			if r.PostForm.Get("channel") == "C-UNKNOWN" {
				_, _ = io.WriteString(w, `{"ok":false,"error":"channel_not_found"}`)
				return
			}
			f.posts = append(f.posts, r.PostForm)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": "1700000000.000100"})
		})
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

func (f *fakeSlack) Posts() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

// fakeWebhook is an incoming-webhook endpoint on a TLS test server. It
// accepts only POST application/json {"text":...} on its secret path.
type fakeWebhook struct {
	*httptest.Server
	path string

	mu          sync.Mutex
	bodies      []map[string]any
	requests    int
	rateLimited int
	retryAfter  string
	failWith    int // answer every request with this status when non-zero
}

func newFakeWebhook(t *testing.T) *fakeWebhook {
	t.Helper()
	f := &fakeWebhook{path: "/services/T000/B000/secretXYZ"}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		if r.Method != http.MethodPost || r.URL.Path != f.path {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		if f.failWith != 0 {
			http.Error(w, "invalid_token", f.failWith)
			return
		}
		if f.rateLimited > 0 {
			f.rateLimited--
			w.Header().Set("Retry-After", f.retryAfter)
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		if s, _ := body["text"].(string); s == "" {
			http.Error(w, "no_text", http.StatusBadRequest)
			return
		}
		f.bodies = append(f.bodies, body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeWebhook) URL() string { return f.Server.URL + f.path }

func (f *fakeWebhook) Bodies() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.bodies...)
}

func (f *fakeWebhook) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
