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
//
// The request limit is set far below anything the action takes (50 ms
// against a plugin-side sleep of 500 ms) and the test sends no ordinary
// request, only actions (which the limit does not cover) and in-process
// object writes. So nothing here races the wall clock: an earlier version
// used a 2 s limit for its setup requests as well and failed once when a
// loaded machine made one of them slower than that.
func TestActionTimeoutIsNotTheRequestTimeout(t *testing.T) {
	const requestLimit = 50 * time.Millisecond
	e := startEnvConfig(t, "", "", map[string]string{"fake": "fake"}, func(c *config.Config) { c.RequestTimeout = requestLimit })
	ctx := context.Background()
	objs := e.ts.Server.Objects()
	if _, err := objs.Create(ctx, "system", "plugins", &models.Plugin{Name: "fake1", Provider: "fake"}); err != nil {
		t.Fatalf("create plugin: %v", err)
	}
	e.waitPid("fake1")
	created, err := objs.Create(ctx, "system", "machines", &models.Machine{Name: "m1"})
	if err != nil {
		t.Fatalf("create machine: %v", err)
	}
	mp := "/api/v3/machines/" + created.(*models.Machine).Uuid.String()

	// The plugin's own timer makes the action outlast the request limit
	// tenfold, however fast or slow the machine is.
	code, v := e.action(mp, "sleep?timeout=1h", map[string]any{"seconds": 10 * requestLimit.Seconds()})
	if code != 200 || v != "slept" {
		t.Fatalf("action longer than --request-timeout: %d %s", code, errText(v))
	}
	// ?timeout= still bounds it (the sleep would last a day).
	code, v = e.action(mp, "sleep?timeout=300ms", nil)
	if code != 504 || !strings.Contains(errText(v), "timed out after 300ms") {
		t.Fatalf("action timeout: %d %s", code, errText(v))
	}
	if code, v = e.action(mp, "sleep?timeout=soon", nil); code != 400 {
		t.Fatalf("bad timeout: %d %s", code, errText(v))
	}

	// The client going away cancels the action in the plugin.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, "POST", e.ts.URL+mp+"/actions/sleep?timeout=1h", bytes.NewReader([]byte("{}")))
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
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled request succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled request did not return within 30s")
	}
	waitFor(t, 20*time.Second, "the plugin to see the cancellation", func() bool { return active() == 0 })
}
