package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/drpfake"
	"github.com/provisionhq/provision/plugins/virtualbox-ipmi/vboxplugin"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
)

func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }

func TestDefine(t *testing.T) {
	def := plugintest.FromPackage(t, ".").Define(t)
	if def.Name != "virtualbox-ipmi" || def.PluginVersion != 4 || def.HasPublish || len(def.AvailableActions) != 9 {
		t.Fatalf("definition: %+v", def)
	}
	c, err := content.Unmarshal([]byte(def.Content), ".yaml")
	if err != nil {
		t.Fatalf("content: %v", err)
	}
	for section, keys := range map[string][]string{
		"params": {"virtualbox/cpus", "virtualbox/disk-size-mb", "virtualbox/id", "virtualbox/mem-size-mb", "virtualbox/name",
			"virtualbox/user", "virtualbox/vm-path", "virtualbox/vram-size-mb", "virtualbox/vboxmanage", "virtualbox/import-existing"},
		"stages":    {"virtualbox-discover", "virtualbox-other-nics"},
		"tasks":     {"virtualbox-discover-uuid", "virtualbox-other-nics"},
		"workflows": {"discover-virtualbox"},
		"templates": {"virtualbox-discover-uuid.sh.tmpl", "virtualbox-other-nics.sh.tmpl"},
	} {
		for _, k := range keys {
			if _, ok := c.Sections[section][k]; !ok {
				t.Errorf("content lacks %s/%s", section, k)
			}
		}
	}
	id := c.Sections["params"]["virtualbox/id"].(map[string]any)
	if id["Meta"].(map[string]any)["readonly"] != "yes" {
		t.Errorf("virtualbox/id not readonly: %v", id)
	}
	cpus := c.Sections["params"]["virtualbox/cpus"].(map[string]any)["Schema"].(map[string]any)
	if cpus["default"] != 2 && cpus["default"] != 2.0 {
		t.Errorf("virtualbox/cpus default %v", cpus["default"])
	}
	if c.Meta.Order != "2001" || c.Meta.DisplayName != "VirtualBox IPMI" {
		t.Errorf("meta %+v", c.Meta)
	}
}

// installVBox writes the VBoxManage stand-in of package vboxplugin.
func installVBox(t *testing.T) (path, state string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("vboxplugin", "testdata", "fake-vboxmanage.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	path = filepath.Join(dir, "VBoxManage")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(script), "@STATE@", "'"+state+"'")), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, state
}

func vmFile(state, id, f string) string {
	b, _ := os.ReadFile(filepath.Join(state, "vms", strings.ToUpper(id), f))
	return strings.TrimSpace(string(b))
}

// TestThroughSDK: config over the socket protocol, a machine create event
// from the API's websocket builds and starts the VM and records it on the
// machine, power actions work on it, and the delete event destroys it.
func TestThroughSDK(t *testing.T) {
	api := drpfake.New(t)
	vbox, state := installVBox(t)
	pl := plugintest.StartApp(t, newApp(vboxplugin.Options{Jitter: func() time.Duration { return 0 }}), api.Env())

	res := pl.Config(t, map[string]any{"Name": "vb", "virtualbox/vboxmanage": filepath.Join(t.TempDir(), "missing")})
	if inner := res.ConfigError(); res.Status != 404 || inner == nil || !strings.Contains(inner.Messages[0], "Failed to find VBoxManage") {
		t.Fatalf("missing VBoxManage: %d %s", res.Status, res.Body)
	}
	res = pl.Config(t, map[string]any{"Name": "vb", "virtualbox/vboxmanage": vbox})
	if res.Status != 200 {
		t.Fatalf("config: %d %s", res.Status, res.Body)
	}

	m := api.AddMachine(t, &models.Machine{Name: "node1", Params: map[string]any{"machine-plugin": "vb"}})
	ev := models.Event{Type: "machines", Action: "create", Key: m.UUID(), Object: m}
	plugintest.Eventually(t, 20*time.Second, "the plugin's subscription", func() bool { return api.Subscribers(&ev) == 1 })
	if api.Publish(ev) != 1 {
		t.Fatal("event not delivered")
	}
	plugintest.Eventually(t, 20*time.Second, "the VM to run", func() bool { return vmFile(state, m.UUID(), "state") == "running" })
	var saved *models.Machine
	plugintest.Eventually(t, 20*time.Second, "virtualbox/id on the machine", func() bool {
		saved = api.Machines(t)["node1"]
		return saved.Params["virtualbox/id"] == strings.ToUpper(m.UUID())
	})
	id := saved.Params["virtualbox/id"].(string)

	act := func(cmd string) (*plugintest.Response, *models.Error) {
		r := pl.Action(t, &models.Action{Model: saved, Plugin: "vb", Command: cmd, Params: map[string]any{"virtualbox/id": id}})
		if r.Status != 200 {
			return r, r.Error()
		}
		return r, nil
	}
	if r, err := act("poweroff"); err != nil || vmFile(state, id, "state") != "poweroff" {
		t.Fatalf("poweroff: %v %s", err, r.Body)
	}
	if r, err := act("poweron"); err != nil || vmFile(state, id, "state") != "running" {
		t.Fatalf("poweron: %v %s", err, r.Body)
	}
	if r, err := act("nextbootpxe"); err != nil || strings.TrimSpace(string(r.Body)) != `"Success"` {
		t.Fatalf("nextbootpxe: %v %s", err, r.Body)
	}
	if _, err := act("getBios"); err == nil || err.Code != 404 || err.Key != "vb" {
		t.Fatalf("unknown action: %v", err)
	}

	del := models.Event{Type: "machines", Action: "delete", Key: saved.UUID(), Object: saved}
	if api.Publish(del) != 1 {
		t.Fatal("delete event not delivered")
	}
	plugintest.Eventually(t, 20*time.Second, "the VM to be destroyed", func() bool {
		_, err := os.Stat(filepath.Join(state, "vms", id))
		return os.IsNotExist(err)
	})
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("virtualbox/id %q is not a UUID", id)
	}
	pl.Stop(t)
}
