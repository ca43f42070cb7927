package hostmodule

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// TestActionTimeoutIsNotTheRequestTimeout: an action is bounded by the
// host's action timeout (or ?timeout=), not by the server's global request
// time limit, and it still ends when the client goes away.
func TestActionTimeoutIsNotTheRequestTimeout(t *testing.T) {
	e := startEnvConfig(t, "", "", map[string]string{"fake": "fake"}, func(c *config.Config) { c.RequestTimeout = 2 * time.Second })
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	var m models.Machine
	if code, raw := e.do("POST", "/api/v3/machines", map[string]any{"Name": "m1"}, &m); code != 201 {
		t.Fatalf("create machine: %d %s", code, raw)
	}
	mp := "/api/v3/machines/" + m.Uuid.String()

	// Longer than the request time limit, within the action's own.
	code, v := e.action(mp, "sleep?timeout=1m", map[string]any{"seconds": 4})
	if code != 200 || v != "slept" {
		t.Fatalf("action longer than --request-timeout: %d %s", code, errText(v))
	}
	// ?timeout= still bounds it.
	code, v = e.action(mp, "sleep?timeout=300ms", nil)
	if code != 504 || !strings.Contains(errText(v), "timed out after 300ms") {
		t.Fatalf("action timeout: %d %s", code, errText(v))
	}
	if code, v = e.action(mp, "sleep?timeout=soon", nil); code != 400 {
		t.Fatalf("bad timeout: %d %s", code, errText(v))
	}

	// The client going away cancels the action in the plugin.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.ts.URL+mp+"/actions/sleep?timeout=1h", bytes.NewReader([]byte("{}")))
	req.Header.Set("Authorization", servertest.BasicAuth(servertest.AdminUser, e.ts.AdminPassword))
	done := make(chan error, 1)
	go func() {
		resp, err := servertest.HTTPClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	active := func() float64 {
		_, v := e.action("/api/v3/system", "active?plugin=fake1", nil)
		n, _ := v.(float64)
		return n
	}
	waitFor(t, 20*time.Second, "the action to run in the plugin", func() bool { return active() == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled request succeeded")
	}
	waitFor(t, 20*time.Second, "the plugin to see the cancellation", func() bool { return active() == 0 })
}
