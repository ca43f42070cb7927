package hostmodule

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
	"github.com/provisionhq/provision/server/servertest"
)

// webhook is a TLS stand-in for a Slack incoming webhook: it accepts JSON
// {"text": ...} POSTs on its secret path only and keeps the texts.
type webhook struct {
	*httptest.Server
	mu    sync.Mutex
	texts []string
}

const webhookPath = "/services/T0/B0/hostmodule-secret"

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct{ Text string }
		if r.Method != http.MethodPost || r.URL.Path != webhookPath {
			http.Error(rw, "no_service", http.StatusNotFound)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil || body.Text == "" {
			http.Error(rw, "invalid_payload", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.texts = append(w.texts, body.Text)
		w.mu.Unlock()
		rw.Write([]byte("ok"))
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) Texts() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.texts...)
}

// certFile writes the webhook's certificate where SSL_CERT_FILE can name
// it: world-readable, because sandboxed plugins run as another user (the
// sandbox lets them read the file SSL_CERT_FILE names).
func (w *webhook) certFile(t *testing.T) string {
	dir, err := os.MkdirTemp("", "webhook-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "webhook.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.Certificate().Raw})
	if err := os.WriteFile(f, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// pluginProcess finds the `<plugin root>/<provider> listen ...` process
// and returns its pid and environment.
func pluginProcess(t *testing.T, exe string) (int, map[string]string, bool) {
	t.Helper()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) < 2 || args[0] != exe || args[1] != "listen" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil {
			continue
		}
		env := map[string]string{}
		for _, kv := range strings.Split(string(raw), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		return pid, env, true
	}
	return 0, nil, false
}

// TestSelectEventsPluginUnderProvisiond runs the real slack provider (an
// EventSelector, not HasPublish) under provisiond: it opens its own
// websocket with its RS_TOKEN, receives the machines.create events it
// selected and posts them; once the Plugin is deleted its process is gone
// and its RS_TOKEN no longer works.
func TestSelectEventsPluginUnderProvisiond(t *testing.T) {
	wh := newWebhook(t)
	// The plugin inherits provisiond's environment: trust the webhook.
	t.Setenv("SSL_CERT_FILE", wh.certFile(t))
	e := startEnv(t, "", "", nil)
	bin, err := os.ReadFile(testplugins.Package(t, "github.com/provisionhq/provision/plugins/slack"))
	if err != nil {
		t.Fatal(err)
	}
	if code, raw := e.doRaw("POST", "/api/v3/plugin_providers/slack", "application/octet-stream", bin, ""); code != 201 {
		t.Fatalf("upload: %d %s", code, raw)
	}
	var pp models.PluginProviderInfo
	if code, raw := e.do("GET", "/api/v3/plugin_providers/slack", nil, &pp); code != 200 || pp.HasPublish {
		t.Fatalf("slack must get events through its own websocket, not /publish: %d %s", code, raw)
	}
	configed := e.ts.Server.Bus().Subscribe("test", 16, func(ev *models.Event) bool {
		return ev.Type == "plugins" && ev.Action == "configed" && ev.Key == "slack"
	})
	defer configed.Close()
	e.createPlugin("slack", "slack", map[string]any{
		"slack/webhook-url": wh.URL + webhookPath,
		"slack/events":      []string{"machines.create.*"},
	})
	select {
	case <-configed.C():
	case <-time.After(30 * time.Second):
		t.Fatalf("slack not configured; PluginErrors %v", e.pluginErrors("slack"))
	}

	// The SDK registers the filters before answering /config, so the
	// create below is delivered; the update is not selected.
	var m models.Machine
	if code, raw := e.do("POST", "/api/v3/machines", map[string]any{"Name": "ws-node"}, &m); code != 201 {
		t.Fatalf("create machine: %d %s", code, raw)
	}
	e.do("POST", "/api/v3/machines/"+m.Uuid.String()+"/params/x", 1, nil)
	var m2 models.Machine
	if code, raw := e.do("POST", "/api/v3/machines", map[string]any{"Name": "ws-node2"}, &m2); code != 201 {
		t.Fatalf("create machine: %d %s", code, raw)
	}
	waitFor(t, 30*time.Second, "both machine creates posted", func() bool { return len(wh.Texts()) >= 2 })
	texts := wh.Texts()
	if len(texts) != 2 || !strings.Contains(texts[0], m.Uuid.String()) || !strings.Contains(texts[1], m2.Uuid.String()) ||
		!strings.Contains(texts[0], "machines create") {
		t.Fatalf("posted %q", texts)
	}

	// The plugin's own token, from its environment.
	exe := filepath.Join(e.ts.BaseRoot, "plugins", "slack")
	pid, env, ok := pluginProcess(t, exe)
	if !ok || env["RS_TOKEN"] == "" || !strings.HasPrefix(env["RS_ENDPOINT"], "https://") {
		t.Fatalf("slack process %s not found or without RS_TOKEN/RS_ENDPOINT", exe)
	}
	token := env["RS_TOKEN"]
	info := func() int {
		resp, _ := servertest.DoAs(t, e.ts.URL, servertest.Bearer(token), "GET", "/api/v3/info", nil)
		return resp.StatusCode
	}
	if code := info(); code != 200 {
		t.Fatalf("plugin token refused while it runs: %d", code)
	}

	if code, raw := e.do("DELETE", "/api/v3/plugins/slack", nil, nil); code != 200 {
		t.Fatalf("delete plugin: %d %s", code, raw)
	}
	waitFor(t, 30*time.Second, "the slack process to exit", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
	waitFor(t, 10*time.Second, "the stopped plugin's token to stop working", func() bool { return info() == 401 })
}
