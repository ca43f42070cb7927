package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// TestLoginThrottle: failed Basic logins are throttled per source
// address and per user name with 429 + Retry-After, tokens keep working,
// and the throttle expires (the server's throttle clock is injected, so
// the test does not wait).
func TestLoginThrottle(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	ts := servertest.Start(t, servertest.Options{Now: clk.now, Config: func(c *config.Config) {
		c.LoginBurst, c.LoginWindow = 3, time.Minute
	}})
	good := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	bad := servertest.BasicAuth(servertest.AdminUser, "guess")
	local, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	mkUser(t, ts, "someone", "pw1", "readonly")

	// Successful logins cost nothing.
	for range 5 {
		if code, body, _ := do(t, local, ts, good, "GET", "/api/v3/info", ""); code != 200 {
			t.Fatalf("good login: %d %s", code, body)
		}
	}
	var tok struct{ Token string }
	if code, body, _ := do(t, local, ts, good, "GET", "/api/v3/users/"+servertest.AdminUser+"/token", ""); code != 200 {
		t.Fatalf("token: %d %s", code, body)
	} else {
		mustJSON(t, body, &tok)
	}
	for i := range 3 {
		if code, _, _ := do(t, local, ts, bad, "GET", "/api/v3/info", ""); code != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d, want 401", i+1, code)
		}
	}
	code, body, h := do(t, local, ts, bad, "GET", "/api/v3/info", "")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") != "20" {
		t.Fatalf("4th failed login: %d Retry-After %q, want 429 after 20 s", code, h.Get("Retry-After"))
	}
	wantModelsError(t, body, 429, "Too many failed logins from 127.0.0.1", "--login-burst", "RS_LOGIN_WINDOW")
	// While throttled even the right password waits (else guessing would
	// go on), but a token is not a password login.
	if code, _, _ := do(t, local, ts, good, "GET", "/api/v3/info", ""); code != http.StatusTooManyRequests {
		t.Fatalf("right password from a throttled address: %d, want 429", code)
	}
	if code, body, _ := do(t, local, ts, servertest.Bearer(tok.Token), "GET", "/api/v3/info", ""); code != 200 {
		t.Fatalf("token while throttled: %d %s", code, body)
	}
	// Another address: the guessed user name is throttled, others not.
	code, body, _ = do(t, other, ts, good, "GET", "/api/v3/info", "")
	if code != http.StatusTooManyRequests {
		t.Fatalf("guessed user from another address: %d, want 429", code)
	}
	wantModelsError(t, body, 429, `for user "rocketskates"`)
	if code, _, _ := do(t, other, ts, servertest.BasicAuth("someone", "pw1"), "GET", "/api/v3/info", ""); code != 200 {
		t.Fatalf("other user from another address: %d, want 200", code)
	}
	if n := metric(t, ts.Server.Metrics(), "provision_logins_throttled_total", nil); n != 3 {
		t.Errorf("provision_logins_throttled_total = %v, want 3", n)
	}
	// No permanent lock-out: after Retry-After one attempt is back, after
	// the window the whole burst.
	clk.add(20 * time.Second)
	if code, body, _ := do(t, local, ts, good, "GET", "/api/v3/info", ""); code != 200 {
		t.Fatalf("after Retry-After: %d %s", code, body)
	}
	clk.add(time.Minute)
	for i := range 3 {
		if code, _, _ := do(t, local, ts, bad, "GET", "/api/v3/info", ""); code != http.StatusUnauthorized {
			t.Fatalf("after the window, failed login %d: %d, want 401", i+1, code)
		}
	}
}
