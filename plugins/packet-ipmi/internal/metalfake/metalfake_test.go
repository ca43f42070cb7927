package metalfake

import (
	"net/http"
	"strings"
	"testing"
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
