package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

// fakeClock is an injectable clock for the login throttle.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// dialerFrom dials from the loopback address src (all of 127/8 is local
// on Linux), so tests can play several client hosts.
func dialerFrom(src string) *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
}

// clientFrom is an HTTPS/1.1 client whose connections come from src.
func clientFrom(src string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     dialerFrom(src).DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // self-signed test certificate
	}}
}

// do sends one request with client hc and returns status, body and
// headers; a transport error fails the test.
func do(t *testing.T, hc *http.Client, ts *servertest.Server, authz, method, path string, body string) (int, []byte, http.Header) {
	t.Helper()
	code, out, h, err := tryDo(hc, ts, authz, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, out, h
}

func tryDo(hc *http.Client, ts *servertest.Server, authz, method, path string, body string) (int, []byte, http.Header, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header, err
}

// wantModelsError checks body is a models.Error with Code code whose
// messages contain every string in says.
func wantModelsError(t *testing.T, body []byte, code int, says ...string) models.Error {
	t.Helper()
	var me models.Error
	if err := json.Unmarshal(body, &me); err != nil || me.Code != code {
		t.Fatalf("body %s: want a models.Error with Code %d (%v)", body, code, err)
	}
	all := strings.Join(me.Messages, " ")
	for _, s := range says {
		if !strings.Contains(all, s) {
			t.Errorf("error %q does not say %q", all, s)
		}
	}
	return me
}

// mkUser creates a user with a password and roles as the admin.
func mkUser(t *testing.T, ts *servertest.Server, name, pw string, roles ...string) {
	t.Helper()
	if resp, body := ts.Do(t, "POST", "/api/v3/users", map[string]any{"Name": name, "Roles": roles}); resp.StatusCode != 201 {
		t.Fatalf("create user %s: %d %s", name, resp.StatusCode, body)
	}
	if resp, body := ts.Do(t, "PUT", "/api/v3/users/"+name+"/password", map[string]any{"Password": pw}); resp.StatusCode != 200 {
		t.Fatalf("password of %s: %d %s", name, resp.StatusCode, body)
	}
}

// metric sums the samples of a metric family on the server's registry
// whose labels include want.
func metric(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func mustJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}
