package hostmodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/pluginhost"
	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
	"github.com/provisionhq/provision/server/servertest"
)

func TestMain(m *testing.M) {
	// Plugins started by these tests run through the real sandbox
	// helper: this test binary.
	sandbox.Main()
	code := m.Run()
	testplugins.Cleanup()
	os.Exit(code)
}

// env is one real provisiond with the plugin host.
type env struct {
	t   testing.TB
	ts  *servertest.Server
	mod *Module

	clientOnce sync.Once
	client     *http.Client // see benchClient
}

// tune gives the host short limits so failures show quickly.
func tune(c *pluginhost.Config) {
	c.ReadyTimeout = 5 * time.Second
	c.StopGrace = 2 * time.Second
	c.DrainTimeout = 10 * time.Second
	c.HealthInterval = 500 * time.Millisecond
	c.BackoffMin = 100 * time.Millisecond
	c.BackoffMax = time.Second
}

// startEnv starts provisiond (reusing base/password when given) after
// pre-installing the named fake variants into its plugin root.
func startEnv(t testing.TB, base, password string, preinstall map[string]string) *env {
	t.Helper()
	return startEnvConfig(t, base, password, preinstall, nil)
}

// startEnvConfig is startEnv with a change of the server configuration.
func startEnvConfig(t testing.TB, base, password string, preinstall map[string]string, change func(*config.Config)) *env {
	t.Helper()
	if base == "" {
		base = t.TempDir()
	}
	for name, variant := range preinstall {
		testplugins.Install(t, base+"/plugins", variant, name)
	}
	mod := New(Options{Tune: tune})
	ts := servertest.Start(t, servertest.Options{Modules: []server.Module{mod}, BaseRoot: base, AdminPassword: password,
		Config: func(c *config.Config) {
			c.LogLevel = "info"
			if change != nil {
				change(c)
			}
		}})
	if err := mod.WaitReady(t.Context()); err != nil {
		t.Fatalf("plugin host not ready: %v", err)
	}
	return &env{t: t, ts: ts, mod: mod}
}

// do sends a JSON request as the admin and decodes the answer into out
// (when not nil); it returns the status and raw body.
func (e *env) do(method, path string, body, out any) (int, []byte) {
	e.t.Helper()
	resp, raw := e.ts.Do(e.t, method, path, body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// doRaw sends body with contentType and an optional bearer token ("" =
// admin Basic auth).
func (e *env) doRaw(method, path, contentType string, body []byte, token string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", servertest.Bearer(token))
	} else {
		req.Header.Set("Authorization", servertest.BasicAuth(servertest.AdminUser, e.ts.AdminPassword))
	}
	resp, err := servertest.HTTPClient().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// upload POSTs a fake variant as a provider.
func (e *env) upload(name, variant, query string) (int, []byte) {
	e.t.Helper()
	bin, err := os.ReadFile(testplugins.Path(e.t, variant))
	if err != nil {
		e.t.Fatal(err)
	}
	return e.doRaw("POST", "/api/v3/plugin_providers/"+name+query, "application/octet-stream", bin, "")
}

// action runs POST <path>/actions/<cmd> with params and returns status and
// decoded answer (a models.Error's fields on failure).
func (e *env) action(path, cmd string, params map[string]any) (int, any) {
	e.t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	code, raw := e.do("POST", path+"/actions/"+cmd, params, nil)
	var v any
	_ = json.Unmarshal(raw, &v)
	return code, v
}

func errText(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	e := &models.Error{}
	_ = models.Remarshal(m, e)
	return e.Error()
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createPlugin creates a Plugin object and waits until it answers the
// system action "pid" through the REST API; it returns the pid.
func (e *env) createPlugin(name, provider string, params map[string]any) {
	e.t.Helper()
	code, raw := e.do("POST", "/api/v3/plugins", map[string]any{"Name": name, "Provider": provider, "Params": params}, nil)
	if code != 201 {
		e.t.Fatalf("create plugin: %d %s", code, raw)
	}
}

func (e *env) waitPid(plugin string) float64 {
	e.t.Helper()
	var pid float64
	waitFor(e.t, 20*time.Second, "plugin "+plugin+" answering", func() bool {
		code, v := e.action("/api/v3/system", "pid?plugin="+plugin, nil)
		if code == 200 {
			pid, _ = v.(float64)
			return true
		}
		return false
	})
	return pid
}

func (e *env) pluginErrors(name string) []string {
	e.t.Helper()
	var p models.Plugin
	code, raw := e.do("GET", "/api/v3/plugins/"+name, nil, &p)
	if code != 200 {
		e.t.Fatalf("get plugin %s: %d %s", name, code, raw)
	}
	return p.PluginErrors
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// sleepsInFlight starts n concurrent "sleep" actions of the given seconds
// on the object at path and waits (up to limit) until the plugin reports
// all n running. The returned func waits up to its timeout for every caller
// to be answered (failing with msg otherwise) and returns their statuses.
func (e *env) sleepsInFlight(path string, n int, seconds float64, limit time.Duration) func(timeout time.Duration, msg string) []int {
	e.t.Helper()
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			code, _ := e.action(path, "sleep", map[string]any{"seconds": seconds})
			codes <- code
		}()
	}
	waitFor(e.t, limit, fmt.Sprintf("%d actions in flight", n), func() bool {
		_, v := e.action("/api/v3/system", "active", nil)
		return v == float64(n)
	})
	return func(timeout time.Duration, msg string) []int {
		e.t.Helper()
		got := make([]int, 0, n)
		deadline := time.After(timeout)
		for len(got) < n {
			select {
			case c := <-codes:
				got = append(got, c)
			case <-deadline:
				e.t.Fatalf("%s: %d of %d answered", msg, len(got), n)
			}
		}
		return got
	}
}
