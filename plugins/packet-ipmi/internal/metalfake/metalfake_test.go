package metalfake

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRejectsWhatTheAPIRejects sends raw requests the plugin never sends.
func TestRejectsWhatTheAPIRejects(t *testing.T) {
	f := New("key")
	defer f.Close()
	f.AddProject("p1")
	f.AddDevice(Device{ID: "d1", Hostname: "h", State: "active", ProjectID: "p1", Powered: true})
	hc := f.Client()
	do := func(method, path, token, ctype, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, f.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		method, path, token, ctype, body string
		want                             int
	}{
		{"GET", "/projects", "", "", "", 401},
		{"GET", "/projects", "other", "", "", 401},
		{"GET", "/devices/nope", "key", "", "", 404},
		{"POST", "/devices/d1/actions", "key", "application/json", `{"type":"explode"}`, 422},
		{"POST", "/devices/d1/actions", "key", "application/json", `{"type":`, 400},
		{"POST", "/devices/d1/actions", "key", "text/plain", `{"type":"reboot"}`, 415},
		{"POST", "/projects/p1/devices", "key", "application/json", `{"hostname":"x","facility":["ewr1"],"operating_system":"custom_ipxe"}`, 422},
		{"POST", "/projects/nope/devices", "key", "application/json", `{"plan":"p","facility":["ewr1"],"operating_system":"ubuntu"}`, 404},
		{"POST", "/devices/d1/actions", "key", "application/json", `{"type":"power_off"}`, 202},
	}
	for _, c := range cases {
		if got := do(c.method, c.path, c.token, c.ctype, c.body); got != c.want {
			t.Errorf("%s %s (token %q, %s %s): %d, want %d", c.method, c.path, c.token, c.ctype, c.body, got, c.want)
		}
	}
	d, _ := f.Device("d1")
	if d.Powered || len(d.Actions) != 1 || d.Actions[0] != "power_off" {
		t.Fatalf("only the valid action may change the device: %+v", d)
	}
	if n := len(f.Devices()); n != 1 {
		t.Fatalf("rejected creates made devices: %d", n)
	}
}

// TestStalledRequestGetsNoResponse pins that a stalled request ends with the
// connection dropped, never with a response: an implicit empty 200 after
// the client gave up could still be read as success (the flake in
// packet's TestAPIFailuresGetHonestCodes).
func TestStalledRequestGetsNoResponse(t *testing.T) {
	f := NewPlain("key")
	defer f.Close()
	f.StallNext(1)
	conn, err := net.Dial("tcp", f.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "POST " + BasePath + "/devices/d1/actions HTTP/1.1\r\nHost: x\r\nX-Auth-Token: key\r\n" +
		"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	// Give up as a client whose timeout fired: the server sees EOF and
	// cancels the request context, but the read side stays open.
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the stalled request was never released after the client gave up")
	}
	if len(got) != 0 {
		t.Fatalf("a stalled request got a response: %q", got)
	}
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].Status != 0 || reqs[0].Method != http.MethodPost {
		t.Fatalf("request log %+v, want the one stalled POST with Status 0", reqs)
	}
}
