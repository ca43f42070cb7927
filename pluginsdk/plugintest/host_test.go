package plugintest

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/pluginsdk"
)

func TestHostChecksRequests(t *testing.T) {
	sock := filepath.Join(SocketDir(t), "h.fromPlugin.2")
	h := NewHost(t, sock)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	send := func(method, path, ct, body string) int {
		req, _ := http.NewRequest(method, "http://unix"+pluginsdk.HostAPIPrefix+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := send("POST", "/log", "application/json", `{"Level":"info","Message":"hi","Seq":1}`); c != 204 {
		t.Errorf("good line: %d", c)
	}
	if c := send("POST", "/log", "text/plain", `{}`); c != 415 {
		t.Errorf("wrong content type: %d", c)
	}
	if c := send("GET", "/log", "", ""); c != 405 {
		t.Errorf("GET: %d", c)
	}
	if c := send("POST", "/log", "application/json", `{"Nope":1}`); c != 400 {
		t.Errorf("unknown field: %d", c)
	}
	if c := send("POST", "/objects/machines", "application/json", `{}`); c != 404 {
		t.Errorf("unknown path: %d", c)
	}
	if c := send("POST", "/publish", "application/json", `{"Type":"t","Action":"a","Key":"k"}`); c != 200 {
		t.Errorf("publish: %d", c)
	}
	if c := send("POST", "/leaving", "application/json", `{"Code":403,"Messages":["bye"]}`); c != 204 {
		t.Errorf("leaving: %d", c)
	}
	if l := h.WaitForMessage(t, 0, "hi"); l.Level != "info" || l.Seq != 1 {
		t.Errorf("line: %+v", l)
	}
	if len(h.Lines()) != 1 || len(h.Events()) != 1 || h.Events()[0].Key != "k" || h.WaitForLeaving(t, 0).Code != 403 {
		t.Errorf("recorded: %v %v %v", h.Lines(), h.Events(), h.Leavings())
	}
	if r := h.Rejected(); len(r) != 4 {
		t.Errorf("rejected: %v", r)
	}
}

func TestSocketPathLimit(t *testing.T) {
	to, from := socketPaths(t, SocketDir(t))
	if len(to) > maxSocketPath || len(from) > maxSocketPath {
		t.Errorf("socket paths too long: %s", from)
	}
}
