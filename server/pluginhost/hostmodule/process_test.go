package hostmodule

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost"
	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
	"github.com/provisionhq/provision/server/servertest"
)

// procCall is one request to a provisiond subprocess, safe to use from any
// goroutine (errors are returned, not reported).
func procCall(p *servertest.Process, method, path string, body any) (int, []byte, error) {
	buf, _ := json.Marshal(body)
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(string(buf)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", servertest.BasicAuth(servertest.AdminUser, p.AdminPassword))
	req.Header.Set("Content-Type", "application/json")
	resp, err := servertest.HTTPClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// mustCall is procCall on the test goroutine.
func mustCall(t *testing.T, p *servertest.Process, method, path string, body, out any) int {
	t.Helper()
	code, raw, err := procCall(p, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && code < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return code
}

// gone reports whether no process pid exists any more.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// TestSIGTERMDrainsActionsInFlight sends SIGTERM to a real provisiond
// process while actions run on a plugin: the host stops taking new actions
// (503 naming why), lets the running ones finish, every caller gets its
// answer, the plugin process is stopped and provisiond exits 0.
func TestSIGTERMDrainsActionsInFlight(t *testing.T) {
	base := t.TempDir()
	testplugins.Install(t, filepath.Join(base, "plugins"), "fake", "fake")
	p := servertest.StartProcess(t, servertest.ProcessOptions{BaseRoot: base})
	if code := mustCall(t, p, "POST", "/api/v3/plugins", map[string]any{"Name": "fake1", "Provider": "fake"}, nil); code != 201 {
		t.Fatalf("create plugin: %d", code)
	}
	var pid float64
	waitFor(t, 30*time.Second, "plugin fake1 answering", func() bool {
		return mustCall(t, p, "POST", "/api/v3/system/actions/pid?plugin=fake1", map[string]any{}, &pid) == 200
	})
	var m models.Machine
	if code := mustCall(t, p, "POST", "/api/v3/machines", map[string]any{"Name": "m1"}, &m); code != 201 {
		t.Fatalf("create machine: %d", code)
	}

	// The trigger lies in the plugin's scratch directory: the sandbox
	// keeps it out of everything else.
	_, scratch := pluginhost.PluginDirsFor(base, pluginhost.Sandbox{Enabled: true, User: "nobody"}.SwitchesUser())
	trigger := filepath.Join(scratch, "fake1", "finish")
	const n = 8
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, n)
	for i := 0; i < n; i++ {
		go func() {
			code, raw, err := procCall(p, "POST", "/api/v3/machines/"+m.Uuid.String()+"/actions/sleep", map[string]any{"until-file": trigger})
			answers <- answer{code, string(raw), err}
		}()
	}
	waitFor(t, 30*time.Second, "the actions in flight", func() bool {
		var active float64
		mustCall(t, p, "POST", "/api/v3/system/actions/active", map[string]any{}, &active)
		return active == n
	})

	p.Signal(t, syscall.SIGTERM)
	// The drain has begun once new actions are refused, saying why.
	waitFor(t, 30*time.Second, "new actions refused during the drain", func() bool {
		code, raw, err := procCall(p, "POST", "/api/v3/system/actions/status", map[string]any{})
		if err != nil {
			t.Fatalf("provisiond stopped answering while actions were in flight: %v", err)
		}
		if code == 503 && !strings.Contains(string(raw), "plugin fake1 is not running: provisiond is stopping") {
			t.Fatalf("refusal during the drain: %s", raw)
		}
		return code == 503
	})
	select {
	case a := <-answers:
		t.Fatalf("an action in flight was answered before it finished: %+v", a)
	case <-p.Exited():
		t.Fatalf("provisiond exited with actions in flight:\n%s", p.Logs())
	default:
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case a := <-answers:
			if a.err != nil || a.code != 200 || strings.TrimSpace(a.body) != `"slept"` {
				t.Errorf("caller %d: %d %q %v", i, a.code, a.body, a.err)
			}
		case <-time.After(servertest.StopTimeout):
			t.Fatalf("a caller was left without an answer")
		}
	}
	if status := p.Wait(t); status != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0\n%s", status, p.Logs())
	}
	waitFor(t, 10*time.Second, "the plugin process gone", func() bool { return gone(int(pid)) })
	if logs := p.Logs(); !strings.Contains(logs, "provisiond stopped") || strings.Contains(logs, "stopping with actions still running") {
		t.Fatalf("shutdown did not drain cleanly:\n%s", logs)
	}
}

// TestSIGHUPReloadsProviders drops a new provider executable into the
// plugin root of a real provisiond process and sends SIGHUP: it is
// defined and listed in plugin_providers, and the running plugin is
// untouched.
func TestSIGHUPReloadsProviders(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "plugins")
	testplugins.Install(t, root, "fake", "fake")
	p := servertest.StartProcess(t, servertest.ProcessOptions{BaseRoot: base})
	if code := mustCall(t, p, "POST", "/api/v3/plugins", map[string]any{"Name": "fake1", "Provider": "fake"}, nil); code != 201 {
		t.Fatalf("create plugin: %d", code)
	}
	var pid float64
	waitFor(t, 30*time.Second, "plugin fake1 answering", func() bool {
		return mustCall(t, p, "POST", "/api/v3/system/actions/pid?plugin=fake1", map[string]any{}, &pid) == 200
	})
	if code := mustCall(t, p, "GET", "/api/v3/plugin_providers/needparam", nil, nil); code != 404 {
		t.Fatalf("needparam known before it was installed: %d", code)
	}

	testplugins.Install(t, root, "needparam", "needparam")
	p.Signal(t, syscall.SIGHUP)
	var pp models.PluginProviderInfo
	waitFor(t, 30*time.Second, "needparam in plugin_providers", func() bool {
		return mustCall(t, p, "GET", "/api/v3/plugin_providers/needparam", nil, &pp) == 200
	})
	if pp.Name != "needparam" || len(pp.Errors) != 0 {
		t.Fatalf("reloaded provider: %+v", pp)
	}
	if !strings.Contains(p.Logs(), "SIGHUP: reloading plugin providers") {
		t.Fatalf("no reload logged:\n%s", p.Logs())
	}
	var again float64
	if code := mustCall(t, p, "POST", "/api/v3/system/actions/pid?plugin=fake1", map[string]any{}, &again); code != 200 || again != pid {
		t.Fatalf("the running plugin was disturbed by the reload: %d pid %v, was %v", code, again, pid)
	}
	if err := p.Stop(t); err != nil {
		t.Fatalf("SIGTERM after the reload: %v\n%s", err, p.Logs())
	}
}
