package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metalfake"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/packet"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server/servertest"
)

func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }

const (
	apiKey  = "metal-secret-key-0123456789"
	project = "11111111-2222-3333-4444-555555555555"
	device  = "aaaaaaaa-0000-0000-0000-000000000001"
	inst    = "packet1"
)

// drpParams are the ten params of DRP's packet-ipmi pack.
func drpParams() []string {
	return []string{"packet/always-pxe", "packet/api-key", "packet/facility", "packet/import-existing",
		"packet/ipxe-script-url", "packet/name", "packet/plan", "packet/project-id", "packet/sos", "packet/uuid"}
}

func pack(t *testing.T) *models.Content {
	t.Helper()
	c, err := content.FromFS(content.Root(contentFS))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDefine runs the built binary's define, as the host does.
func TestDefine(t *testing.T) {
	def := plugintest.FromPackage(t, ".").Define(t)
	if def.Name != "packet-ipmi" || def.PluginVersion != 4 || def.HasPublish || def.AutoStart || len(def.AvailableActions) != 10 {
		t.Fatalf("definition: %+v", def)
	}
	c, err := content.Unmarshal([]byte(def.Content), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Name != "packet-ipmi" || c.Meta.Type != "plugin" || c.Meta.Order != "2001" || c.Meta.Icon != "rocket" {
		t.Fatalf("content meta %+v", c.Meta)
	}
	for _, name := range append(drpParams(), "packet/api-url", "packet/delete-missing", "packet/poll-interval",
		"packet/create-timeout", "packet/api-timeout", "packet/metadata-url") {
		if plugintest.ParamSchema(t, c, name)["type"] == nil {
			t.Fatalf("%s has no schema type", name)
		}
	}
	defaults := map[string]any{"packet/always-pxe": true, "packet/facility": "ewr1", "packet/plan": "baremetal_0",
		"packet/api-url": "https://api.equinix.com/metal/v1", "packet/delete-missing": false, "packet/poll-interval": 5,
		"packet/create-timeout": 900}
	for name, want := range defaults {
		if got := plugintest.ParamSchema(t, c, name)["default"]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s default = %v, want %v", name, got, want)
		}
	}
	key := c.Sections["params"]["packet/api-key"].(map[string]any)
	if key["Secure"] != true || key["Meta"].(map[string]any)["password"] != "hideme" {
		t.Fatalf("packet/api-key must be Secure with password: hideme: %v", key)
	}
	for _, ro := range []string{"packet/sos", "packet/uuid"} {
		if c.Sections["params"][ro].(map[string]any)["Meta"].(map[string]any)["readonly"] != "yes" {
			t.Fatalf("%s is not readonly", ro)
		}
	}
	prof := c.Sections["profiles"]["packet-console"].(map[string]any)
	if prof["Params"].(map[string]any)["kernel-console"] != "console=ttyS1,115200" {
		t.Fatalf("packet-console profile %v", prof)
	}
	for _, s := range []string{"packet-discover", "packet-ssh-keys"} {
		if _, ok := c.Sections["stages"][s]; !ok {
			t.Fatalf("stage %s missing", s)
		}
	}
	if _, ok := c.Sections["workflows"]["discover-packet"]; !ok {
		t.Fatal("workflow discover-packet missing")
	}
	for name, tk := range c.Sections["tasks"] {
		for _, tm := range tk.(map[string]any)["Templates"].([]any) {
			id := tm.(map[string]any)["ID"].(string)
			tmpl, ok := c.Sections["templates"][id]
			if !ok {
				t.Fatalf("task %s uses missing template %s", name, id)
			}
			if strings.Contains(fmt.Sprint(tmpl), "packet.net") {
				t.Fatalf("template %s still uses the retired packet.net endpoints", id)
			}
		}
	}
}

// startServer starts a real provisiond with the pack's params and profile and
// returns it, an admin client and the plugin environment.
func startServer(t *testing.T) (*servertest.Server, *client.Client, map[string]string) {
	t.Helper()
	ts := servertest.Start(t, servertest.Options{})
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := pack(t)
	for name, obj := range p.Sections["params"] {
		var param models.Param
		if err := models.Remarshal(obj, &param); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, "params", &param, nil); err != nil {
			t.Fatalf("server refused param %s: %v", name, err)
		}
	}
	var prof models.Profile
	if err := models.Remarshal(p.Sections["profiles"]["packet-console"], &prof); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "profiles", &prof, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := c.UserToken(ctx, servertest.AdminUser, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ts, c, map[string]string{"RS_ENDPOINT": ts.URL, "RS_TOKEN": tok.Token}
}

func addDevice(f *metalfake.Server) {
	f.AddDevice(metalfake.Device{ID: device, Hostname: "web1", State: "active", Plan: "c3.small.x86", Facility: "da11",
		ProjectID: project, OperatingSystem: "custom_ipxe", BillingCycle: "hourly", Powered: true,
		PublicIPv4: "147.75.1.2", MACs: []string{"b8:ce:f6:00:00:01"}})
}

// TestUnderTheSDK runs the plugin in-process through the SDK's listen
// command, against a real provisiond (REST callbacks and the event
// websocket) and the Metal fake.
func TestUnderTheSDK(t *testing.T) {
	_, c, env := startServer(t)
	mf := metalfake.New(apiKey)
	t.Cleanup(mf.Close)
	mf.AddProject(project)
	addDevice(mf)
	ctx := context.Background()
	stale := &models.Machine{Name: "stale", Params: map[string]any{packet.ParamUUID: "gone", packet.ParamMachinePlugin: inst}}
	if err := c.Create(ctx, "machines", stale, stale); err != nil {
		t.Fatal(err)
	}

	pl := plugintest.StartApp(t, newApp(packet.Options{FileServer: "http://fs.example:8091", Transport: mf.Client().Transport}), env)
	r := pl.Config(t, map[string]any{"Name": inst, packet.ParamAPIKey: apiKey, packet.ParamAPIURL: mf.URL(),
		packet.ParamPollInterval: 0.01, packet.ParamImportExisting: true, packet.ParamDeleteMissing: true})
	if r.Status != 200 {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}
	// delete-missing went through the SDK's Publish to the host.
	ev := pl.Host.WaitForEvent(t, 10*time.Second, func(e models.Event) bool { return e.Action == packet.EventDeleteMissing })
	if ev.Type != "packet-ipmi" || ev.Key != stale.UUID() {
		t.Fatalf("published %+v", ev)
	}
	if ok, _ := c.Exists(ctx, "machines", stale.UUID()); ok {
		t.Fatal("stale machine not deleted")
	}
	var ms []*models.Machine
	if err := c.List(ctx, "machines", &ms, packet.ParamUUID, "Eq("+device+")"); err != nil || len(ms) != 1 || ms[0].Name != "web1" {
		t.Fatalf("import: %v %+v", err, ms)
	}

	r = pl.Action(t, &models.Action{Model: ms[0], Plugin: inst, Command: "poweroff", Params: map[string]any{packet.ParamUUID: device}})
	var res string
	if r.Status != 200 || r.Decode(&res) != nil || res != "Success" {
		t.Fatalf("poweroff: %d %s", r.Status, r.Body)
	}
	if d, _ := mf.Device(device); d.Powered {
		t.Fatal("device still powered")
	}
	r = pl.Action(t, &models.Action{Model: ms[0], Plugin: inst, Command: "warp", Params: map[string]any{packet.ParamUUID: device}})
	if e := r.Error(); r.Status != 404 || e == nil || e.Model != "plugin" || e.Key != inst || e.Type != "rpc" || e.Code != 404 {
		t.Fatalf("unknown command: %d %s", r.Status, r.Body)
	}

	// A machine created for this instance gets a device through the event
	// websocket; deleting it deletes the device.
	m := &models.Machine{Name: "db1", Params: map[string]any{packet.ParamMachinePlugin: inst, packet.ParamPlan: "m3.large.x86"}}
	if err := c.Create(ctx, "machines", m, m); err != nil {
		t.Fatal(err)
	}
	var id string
	plugintest.Eventually(t, 20*time.Second, "the machine's device to be ready and recorded", func() bool {
		got := &models.Machine{}
		if err := c.Get(ctx, "machines", m.UUID(), got); err != nil {
			t.Fatal(err)
		}
		id, _ = got.Params[packet.ParamUUID].(string)
		return id != "" && len(got.HardwareAddrs) > 0
	})
	d, _ := mf.Device(id)
	if d.Hostname != "db1" || d.Plan != "m3.large.x86" || d.OperatingSystem != "custom_ipxe" || d.IPXEScriptURL != "http://fs.example:8091/default.ipxe" {
		t.Fatalf("device %+v", d)
	}
	if err := c.Delete(ctx, "machines", m.UUID(), nil); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 20*time.Second, "the device of the deleted machine to be deleted", func() bool { d, _ := mf.Device(id); return d.Deleted })

	if r := pl.Stop(t); r.Status != 200 {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
	for _, l := range pl.Host.Lines() {
		if strings.Contains(l.Message, apiKey) {
			t.Fatalf("API key logged: %s", l.Message)
		}
	}
	if strings.Contains(pl.Stderr(), apiKey) {
		t.Fatal("API key on stderr")
	}
}

// TestBinary runs the built provider as the host does (listen on unix
// sockets, READY!) with a plain-http Metal fake on loopback.
func TestBinary(t *testing.T) {
	_, _, env := startServer(t)
	mf := metalfake.NewPlain(apiKey)
	t.Cleanup(mf.Close)
	mf.AddProject(project)
	addDevice(mf)
	p := plugintest.FromPackage(t, ".")
	p.Env = env
	pl := p.Start(t)
	r := pl.Config(t, map[string]any{"Name": inst, packet.ParamAPIKey: "wrong-key", packet.ParamAPIURL: mf.URL()})
	if e := r.ConfigError(); r.Status != 502 || e == nil || e.Key != inst || !strings.Contains(strings.Join(e.Messages, " "), "get projects") {
		t.Fatalf("config with a wrong key: %d %s", r.Status, r.Body)
	}
	r = pl.Config(t, map[string]any{"Name": inst, packet.ParamAPIKey: apiKey, packet.ParamAPIURL: mf.URL()})
	if r.Status != 200 {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}
	r = pl.Action(t, &models.Action{Plugin: inst, Command: "powercycle", Params: map[string]any{packet.ParamUUID: device}})
	var res string
	if r.Status != 200 || json.Unmarshal(r.Body, &res) != nil || res != "Success" {
		t.Fatalf("powercycle: %d %s", r.Status, r.Body)
	}
	if d, _ := mf.Device(device); d.Reboots != 1 || !slices.Equal(d.Actions, []string{"reboot"}) {
		t.Fatalf("device %+v", d)
	}
	if r := pl.Stop(t); r.Status != 200 {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
	if err := pl.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(pl.Stderr()+pl.Stdout(), apiKey) {
		t.Fatal("API key printed")
	}
}
