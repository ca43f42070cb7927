package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// wsDial opens a websocket as authz; on refusal it returns the status and
// the response body.
func wsDial(t *testing.T, ts *servertest.Server, authz string) (*websocket.Conn, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed test certificate
	url := strings.Replace(ts.URL, "https://", "wss://", 1) + "/api/v3/ws"
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {authz}}})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
		return c, http.StatusSwitchingProtocols, nil
	}
	if resp == nil {
		t.Fatalf("websocket dial: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, body
}

// TestWebsocketFloodCapped: one principal's websockets beyond the
// per-principal cap get 429 naming the limit and its flag, while other
// principals and the admin still get in and the API keeps answering; the
// total cap keeps its last slots for superusers (503 for others).
func TestWebsocketFloodCapped(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) {
		c.WSMaxPerPrincipal, c.WSMax, c.AdminReserveConns = 3, 6, 2
	}})
	mkUser(t, ts, "flooder", "pw1", "readonly")
	mkUser(t, ts, "other", "pw2", "readonly")
	mkUser(t, ts, "third", "pw3", "readonly")
	flooder := servertest.BasicAuth("flooder", "pw1")
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)

	for i := range 3 {
		if _, code, body := wsDial(t, ts, flooder); code != http.StatusSwitchingProtocols {
			t.Fatalf("flooder websocket %d: %d %s", i+1, code, body)
		}
	}
	for range 5 {
		_, code, body := wsDial(t, ts, flooder)
		if code != http.StatusTooManyRequests {
			t.Fatalf("flooder over its cap: %d %s, want 429", code, body)
		}
		wantModelsError(t, body, 429, "Too many websockets for flooder", "limit 3", "--ws-max-per-principal", "RS_WS_MAX_PER_PRINCIPAL")
	}
	if _, code, body := wsDial(t, ts, servertest.BasicAuth("other", "pw2")); code != http.StatusSwitchingProtocols {
		t.Fatalf("another principal: %d %s", code, body)
	}
	if resp, body := ts.Do(t, "GET", "/api/v3/info", nil); resp.StatusCode != 200 {
		t.Fatalf("API during the flood: %d %s", resp.StatusCode, body)
	}
	// 4 of 6 open: the rest is the superusers' reserve.
	_, code, body := wsDial(t, ts, servertest.BasicAuth("third", "pw3"))
	if code != http.StatusServiceUnavailable {
		t.Fatalf("non-superuser into the reserve: %d %s, want 503", code, body)
	}
	wantModelsError(t, body, 503, "reserved for superusers", "--ws-max")
	for i := range 2 {
		c, code, body := wsDial(t, ts, admin)
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("admin websocket %d in the reserve: %d %s", i+1, code, body)
		}
		if err := c.Write(context.Background(), websocket.MessageText, []byte("register machines.*.*")); err != nil {
			t.Fatal(err)
		}
	}
	_, code, body = wsDial(t, ts, admin)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("websocket over the total: %d %s, want 503", code, body)
	}
	wantModelsError(t, body, 503, "limit 6", "RS_WS_MAX")
	for reason, want := range map[string]float64{"per_principal": 5, "reserve": 1, "total": 1} {
		if got := metric(t, ts.Server.Metrics(), "provision_websockets_refused_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("provision_websockets_refused_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func wsRegister(t *testing.T, c *websocket.Conn, filter string) {
	t.Helper()
	if err := c.Write(context.Background(), websocket.MessageText, []byte("register "+filter)); err != nil {
		t.Fatal(err)
	}
	if ack := wsNext(t, c); ack.Type != "websocket" || ack.Key != filter || ack.Object != nil {
		t.Fatalf("ack %+v", ack)
	}
}

func wsNext(t *testing.T, c *websocket.Conn) models.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, buf, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	var e models.Event
	mustJSON(t, buf, &e)
	return e
}
