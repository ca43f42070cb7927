package main

import (
	"slices"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/e2etest"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metalfake"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/packet"
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

	env := e2etest.Start(t, e2etest.Options{Provider: "packet-ipmi"})
	c, ctx, wait := env.Client, env.Ctx, env.Wait
	if p := env.WaitParam(packet.ParamAPIKey); !p.Secure {
		t.Fatalf("%s is not Secure", packet.ParamAPIKey)
	}
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
	env.WaitAction("machines", imported.UUID(), "poweroff")
	var out any
	if err := c.RunAction(ctx, "machines", imported.UUID(), "poweroff", "", nil, &out); err != nil || out != "Success" {
		t.Fatalf("poweroff: %v %v\nserver logs:\n%s", out, err, env.Logs())
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
