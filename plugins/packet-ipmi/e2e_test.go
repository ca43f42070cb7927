package main

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metalfake"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/packet"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/servertest"
)

// TestEndToEndUnderProvisiond uploads the built provider to a provisiond
// running the plugin host, creates a packet-ipmi Plugin object pointing at
// the Metal fake, and checks import, a machine action through
// POST /api/v3/machines/<id>/actions/poweroff, and a device created for a
// new machine through the event websocket.
func TestEndToEndUnderProvisiond(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and runs it under provisiond")
	}
	mf := metalfake.NewPlain(apiKey)
	t.Cleanup(mf.Close)
	mf.AddProject(project)
	addDevice(mf)

	bin := plugintest.Build(t, ".")
	ts := servertest.Start(t, servertest.Options{Modules: []server.Module{hostmodule.New(hostmodule.Options{})}})
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.UploadPluginProvider(ctx, "packet-ipmi", f); err != nil {
		t.Fatalf("upload: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; server logs:\n%s", what, ts.Logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("the content pack", func() bool {
		var p models.Param
		return c.Get(ctx, "params", packet.ParamAPIKey, &p) == nil && p.Secure
	})
	pl := &models.Plugin{Name: inst, Provider: "packet-ipmi", Params: map[string]any{
		packet.ParamAPIKey: apiKey, packet.ParamAPIURL: mf.URL(), packet.ParamImportExisting: true, packet.ParamPollInterval: 0.01,
	}}
	if err := c.Create(ctx, "plugins", pl, nil); err != nil {
		t.Fatalf("create plugin: %v", err)
	}

	// Config imported the device as a machine named after the instance.
	var imported *models.Machine
	wait("the import", func() bool {
		var ms []*models.Machine
		if err := c.List(ctx, "machines", &ms, packet.ParamUUID, "Eq("+device+")"); err != nil || len(ms) != 1 {
			return false
		}
		imported = ms[0]
		return true
	})
	if imported.Name != "web1" || imported.Params[packet.ParamMachinePlugin] != inst || !slices.Contains(imported.Profiles, packet.ConsoleProfile) {
		t.Fatalf("imported machine %+v", imported)
	}
	wait("poweroff to be available", func() bool {
		acts, err := c.Actions(ctx, "machines", imported.UUID(), "")
		return err == nil && slices.ContainsFunc(acts, func(a models.AvailableAction) bool { return a.Command == "poweroff" })
	})
	var out any
	if err := c.RunAction(ctx, "machines", imported.UUID(), "poweroff", "", nil, &out); err != nil || out != "Success" {
		t.Fatalf("poweroff: %v %v\nserver logs:\n%s", out, err, ts.Logs())
	}
	if d, _ := mf.Device(device); d.Powered {
		t.Fatal("POST .../actions/poweroff did not power the device off")
	}

	// A new machine for this instance gets a device through the event websocket.
	m := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "db1", Params: map[string]any{packet.ParamMachinePlugin: inst}}, m); err != nil {
		t.Fatal(err)
	}
	var id string
	wait("the new machine's device", func() bool {
		got := &models.Machine{}
		if err := c.Get(ctx, "machines", m.UUID(), got); err != nil {
			return false
		}
		id, _ = got.Params[packet.ParamUUID].(string)
		return id != "" && len(got.HardwareAddrs) > 0
	})
	if d, _ := mf.Device(id); d.Hostname != "db1" || d.Plan != "baremetal_0" || d.Facility != "ewr1" {
		t.Fatalf("device %+v", d)
	}
	if d, _ := mf.Device(id); d.IPXEScriptURL == "" {
		t.Fatalf("device has no iPXE script URL (RS_FILESERVER default): %+v", d)
	}
}
