package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// runBounded runs provctl and fails the test if it has not returned within
// bound: the point of --timeout is that provctl gives up on its own.
func runBounded(t *testing.T, c *cli, bound time.Duration, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- c.run(args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(bound):
		t.Fatalf("provctl %s still waiting after %s", strings.Join(args, " "), bound)
		return result{}
	}
}

// silentTCP accepts connections and never sends a byte (no TLS handshake).
func silentTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				<-stop
				_ = conn.Close()
			}()
		}
	}()
	return "https://" + l.Addr().String()
}

// silentHTTPS completes TLS and reads requests but never answers them.
func silentHTTPS(t *testing.T) string {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		panic(http.ErrAbortHandler) // no answer at all, not an empty 200
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL
}

// TestTimeoutBoundsAServerThatNeverAnswers: a listener that accepts but
// never completes TLS, or completes TLS but never answers, makes provctl
// fail after --timeout (or RS_TIMEOUT) instead of hanging for minutes.
func TestTimeoutBoundsAServerThatNeverAnswers(t *testing.T) {
	for name, endpoint := range map[string]string{"tcp only": silentTCP(t), "tls, no http answer": silentHTTPS(t)} {
		t.Run(name, func(t *testing.T) {
			c := &cli{t: t, env: map[string]string{"RS_ENDPOINT": endpoint, "RS_PASSWORD": "x"}}
			r := runBounded(t, c, 30*time.Second, "--timeout", "1s", "info")
			if r.code != 1 || !strings.Contains(r.err, "no answer within --timeout 1s") {
				t.Fatalf("--timeout 1s: exit %d, stderr %q", r.code, r.err)
			}
			c.env["RS_TIMEOUT"] = "1"
			r = runBounded(t, c, 30*time.Second, "machines", "list")
			if r.code != 1 || !strings.Contains(r.err, "no answer within --timeout 1s") {
				t.Fatalf("RS_TIMEOUT=1: exit %d, stderr %q", r.code, r.err)
			}
		})
	}
}

func TestTimeoutFlagValues(t *testing.T) {
	c, _ := newFakeCLI(t)
	for _, bad := range []string{"soon", "-5s", "1x"} {
		if e := c.fails("--timeout", bad, "info"); !strings.Contains(e, "--timeout must") {
			t.Fatalf("--timeout %s: %q", bad, e)
		}
	}
	c.env["RS_TIMEOUT"] = "later"
	if e := c.fails("info"); !strings.Contains(e, "RS_TIMEOUT must be a duration") {
		t.Fatalf("bad RS_TIMEOUT: %q", e)
	}
	// The flag beats the environment; 30, 30s and 0 (no limit) are fine.
	for _, ok := range []string{"30", "30s", "0", "2m"} {
		c.ok(nil, "--timeout", ok, "info")
	}
	delete(c.env, "RS_TIMEOUT")
	c.ok(nil, "machines", "create", `{"Name":"m1"}`)
	if e := c.fails("machines", "runaction", "Name:m1", "echo", "--action-timeout", "0"); !strings.Contains(e, "--action-timeout must be positive") {
		t.Fatalf("--action-timeout 0: %q", e)
	}
}

// TestRunActionOutlastsTimeout: an action may run for its own time limit,
// so runaction waits max(--timeout, that limit + 30s) and tells the server
// the limit it asked for.
func TestRunActionOutlastsTimeout(t *testing.T) {
	c, f := newFakeCLI(t)
	c.ok(nil, "machines", "create", `{"Name":"m1"}`)
	c.ok(nil, "--timeout", "1s", "machines", "runaction", "Name:m1", "echo", "--action-timeout", "20m", "k", "v")
	c.ok(nil, "--timeout", "1s", "system", "runaction", "echo", "--plugin", "p1")
	f.mu.Lock()
	got := []string{f.actions[0]["timeout"].(string), f.actions[1]["timeout"].(string), f.actions[1]["plugin"].(string)}
	f.mu.Unlock()
	if got[0] != "1200" || got[1] != "" || got[2] != "p1" {
		t.Fatalf("server saw timeout %q and %q (plugin %q), want 1200 and none", got[0], got[1], got[2])
	}

	a := &app{getenv: func(string) string { return "" }, requestTimeout: time.Second}
	cl, err := a.client()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		timeout, limit, want time.Duration
	}{
		{time.Second, 0, defaultActionTimeout + actionMargin},
		{time.Second, 20 * time.Minute, 20*time.Minute + actionMargin},
		{time.Hour, 20 * time.Minute, time.Hour},
		{-1, 20 * time.Minute, -1},
	} {
		if got := a.forAction(cl.WithRequestTimeout(tc.timeout), tc.limit).RequestTimeout(); got != tc.want {
			t.Fatalf("timeout %s, action limit %s: request bound %s, want %s", tc.timeout, tc.limit, got, tc.want)
		}
	}
	if got := cl.RequestTimeout(); got != time.Second {
		t.Fatalf("forAction changed the shared client's bound to %s", got)
	}
}
