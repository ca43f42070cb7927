package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/servertest"
)

// TestE2EProvctlPlugins drives a real plugin through provctl: upload the
// incrementer provider to a provisiond running the plugin host, start an
// instance, run machine and system actions, download the binary back and
// remove the provider.
func TestE2EProvctlPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "incrementer")
	build := exec.Command("go", "build", "-o", bin, "github.com/provisionhq/provision/plugins/incrementer")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the incrementer: %v\n%s", err, out)
	}
	ts := servertest.Start(t, servertest.Options{Modules: []server.Module{hostmodule.New(hostmodule.Options{})}})
	c := &cli{t: t, env: map[string]string{"RS_ENDPOINT": ts.URL, "RS_PASSWORD": ts.AdminPassword}}
	var tok struct{ Token string }
	c.ok(&tok, "users", "token", servertest.AdminUser)
	c.env = map[string]string{"RS_ENDPOINT": ts.URL, "RS_TOKEN": tok.Token}

	var up map[string]any
	c.ok(&up, "plugin_providers", "upload", bin, "as", "incrementer")
	if up["path"] != "incrementer" {
		t.Fatalf("upload = %v", up)
	}
	var pp map[string]any
	c.ok(&pp, "plugin_providers", "show", "incrementer")
	if pp["Name"] != "incrementer" {
		t.Fatalf("provider = %v", pp)
	}
	c.ok(nil, "plugins", "create", `{"Name":"incr","Provider":"incrementer"}`)
	var m map[string]any
	c.ok(&m, "machines", "create", "m1")

	// The actions appear once the instance is configured.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(c.ok(nil, "machines", "actions", "Name:m1"), `"increment"`) {
		if time.Now().After(deadline) {
			t.Fatalf("increment never became available; server logs:\n%s", ts.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n float64
	c.ok(&n, "machines", "runaction", "Name:m1", "increment", "incrementer/step", "2")
	if n != 2 {
		t.Fatalf("first increment = %v", n)
	}
	c.ok(&n, "machines", "runaction", "Name:m1", "increment", "--plugin", "incr")
	if n != 3 {
		t.Fatalf("second increment = %v", n)
	}
	if e := c.fails("machines", "runaction", "Name:m1", "increment", "--plugin", "nope"); !strings.Contains(e, "INVOKE") {
		t.Fatalf("unknown plugin: %q", e)
	}
	var status string
	c.ok(&status, "system", "runaction", "incrstatus")
	if status != "Running" {
		t.Fatalf("incrstatus = %q", status)
	}

	dest := filepath.Join(dir, "downloaded")
	c.ok(nil, "plugin_providers", "download", "incrementer", "to", dest)
	want, _ := os.ReadFile(bin)
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("downloaded binary differs from the upload (%d vs %d bytes, %v)", len(got), len(want), err)
	}

	c.ok(nil, "plugins", "destroy", "incr")
	c.ok(nil, "plugin_providers", "destroy", "incrementer")
	c.fails("plugin_providers", "show", "incrementer")
}
