package server_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

func apiAddr(ts *servertest.Server) string { return strings.TrimPrefix(ts.URL, "https://") }

// flood opens n idle TCP connections to addr from src (kept open until
// the test ends) and returns them.
func flood(t *testing.T, addr, src string, n int) []net.Conn {
	t.Helper()
	d := dialerFrom(src)
	out := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood dial from %s: %v", src, err)
		}
		out = append(out, c)
	}
	t.Cleanup(func() {
		for _, c := range out {
			c.Close()
		}
	})
	return out
}

func openConns(t *testing.T, ts *servertest.Server, listener string) float64 {
	return metric(t, ts.Server.Metrics(), "provision_connections_open", map[string]string{"listener": listener})
}

func refusedConns(t *testing.T, ts *servertest.Server, listener, reason string) float64 {
	return metric(t, ts.Server.Metrics(), "provision_connections_refused_total", map[string]string{"listener": listener, "reason": reason})
}

// handledConns counts the connections a listener has accepted or refused
// (evictions are of connections accepted before).
func handledConns(t *testing.T, ts *servertest.Server, listener string) float64 {
	return metric(t, ts.Server.Metrics(), "provision_connections_accepted_total", map[string]string{"listener": listener}) +
		refusedConns(t, ts, listener, "per_ip") + refusedConns(t, ts, listener, "total")
}

// TestAPIConnectionFloodAdminReserve: idle connections from one address
// beyond --api-max-conns-per-ip are closed at once; floods from several
// addresses fill --api-max-conns, yet a non-admin only gets a 503 naming
// the limit on a reserve connection while the admin reaches the API, and
// the listener never holds more than its cap.
func TestAPIConnectionFloodAdminReserve(t *testing.T) {
	const max, perIP, reserve = 40, 20, 4
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) {
		c.APIMaxConns, c.APIMaxConnsPerIP, c.AdminReserveConns = max, perIP, reserve
		c.ReadHeaderTimeout = 5 * time.Minute // the idle flood stays as long as the test
	}})
	mkUser(t, ts, "plain", "pw", "readonly")
	addr := apiAddr(ts)
	base := openConns(t, ts, "api") // servertest's own keep-alive connections

	flood(t, addr, "127.0.0.2", perIP+5)
	eventually(t, "5 per-address refusals", func() bool { return refusedConns(t, ts, "api", "per_ip") == 5 })
	flood(t, addr, "127.0.0.3", perIP)
	flood(t, addr, "127.0.0.4", perIP)
	eventually(t, "the listener full", func() bool { return openConns(t, ts, "api") == max })
	if base+3*perIP-max <= reserve {
		t.Fatalf("flood too small to fill the reserve: base %v", base)
	}

	// A non-admin gets a reserve slot (evicting an idle squatter) and a
	// clear 503; the connection is closed after it.
	code, body, h := do(t, clientFrom("127.0.0.5"), ts, servertest.BasicAuth("plain", "pw"), "GET", "/api/v3/info", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("non-admin on a full listener: %d %s, want 503", code, body)
	}
	wantModelsError(t, body, 503, "reserved for superusers", "--api-max-conns", "RS_API_MAX_CONNS", "--admin-reserve-conns")
	if h.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// The admin gets in, and keeps its connection for further requests.
	adminHC := clientFrom("127.0.0.6")
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	for i := range 3 {
		if code, body, _ := do(t, adminHC, ts, admin, "GET", "/api/v3/info", ""); code != 200 {
			t.Fatalf("admin request %d on a full listener: %d %s", i+1, code, body)
		}
	}
	// More flood: it can only evict unclaimed reserve connections.
	before := handledConns(t, ts, "api")
	flood(t, addr, "127.0.0.7", perIP)
	eventually(t, "the second flood handled", func() bool { return handledConns(t, ts, "api")-before >= perIP })
	if code, body, _ := do(t, adminHC, ts, admin, "GET", "/api/v3/machines", ""); code != 200 {
		t.Fatalf("admin after the second flood: %d %s", code, body)
	}
	if n := openConns(t, ts, "api"); n > max {
		t.Fatalf("%v connections open, cap %d", n, max)
	}
	if n := refusedConns(t, ts, "api", "reserve"); n != 1 {
		t.Errorf("reserve refusals = %v, want 1", n)
	}
}

// TestSlowBodyCutByReadTimeout: an authenticated request whose body
// trickles in is answered 408 (a models.Error naming --read-timeout) and
// its connection closed after --read-timeout, not after the much longer
// request timeout.
func TestSlowBodyCutByReadTimeout(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) {
		c.ReadTimeout, c.RequestTimeout = 2*time.Second, 10*time.Minute
	}})
	c, err := tls.DialWithDialer(dialerFrom("127.0.0.1"), "tcp", apiAddr(ts), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // self-signed test certificate
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /api/v3/machines HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Name\":",
		servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute)) // a guard only; the server must answer long before
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d %s, want 408", resp.StatusCode, body)
	}
	wantModelsError(t, body, 408, "--read-timeout", "RS_READ_TIMEOUT")
	if took := time.Since(start); took > 5*time.Minute {
		t.Fatalf("cut after %s: the request timeout, not --read-timeout, ended it", took)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && err == nil {
		t.Fatal("connection still open after the read timeout")
	}
}

// TestReadTimeoutSparesLongRequests: --read-timeout bounds bodies only. A
// long-poll and a websocket outlive it (net/http would cancel a handler
// whose connection read deadline passes), and so does an ordinary request
// on a keep-alive connection opened long before.
func TestReadTimeoutSparesLongRequests(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.ReadTimeout = time.Second }})
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	hc := clientFrom("127.0.0.1")
	ws, wsCode, wsBody := wsDial(t, ts, admin)
	if wsCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket: %d %s", wsCode, wsBody)
	}
	wsRegister(t, ws, "machines.*.*")

	code, body, _ := do(t, hc, ts, admin, "POST", "/api/v3/machines", `{"Name":"lp"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var m struct{ Uuid string }
	mustJSON(t, body, &m)
	if e := wsNext(t, ws); e.Action != "create" {
		t.Fatalf("event %+v", e)
	}
	_, _, h := do(t, hc, ts, admin, "GET", "/api/v3/machines/"+m.Uuid, "")
	etag := h.Get("ETag")
	req, _ := http.NewRequest("GET", ts.URL+"/api/v3/machines/"+m.Uuid, nil)
	req.Header.Set("Authorization", admin)
	req.Header.Set("If-None-Match", etag)
	req.Header.Set("Prefer", "wait=3s") // three read timeouts
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("long-poll: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified || time.Since(start) < 3*time.Second {
		t.Fatalf("long-poll past --read-timeout: %d after %s, want 304 after the 3 s wait", resp.StatusCode, time.Since(start))
	}
	// The websocket, idle for three read timeouts, still delivers.
	if code, body, _ := do(t, hc, ts, admin, "PUT", "/api/v3/machines/"+m.Uuid, `{"Name":"lp","Uuid":"`+m.Uuid+`","Description":"after"}`); code != 200 {
		t.Fatalf("update: %d %s", code, body)
	}
	if e := wsNext(t, ws); e.Action != "update" && e.Action != "save" {
		t.Fatalf("event after the wait %+v", e)
	}
}
