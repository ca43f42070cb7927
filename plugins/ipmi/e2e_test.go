package main

import (
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/e2etest"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
)

// TestEndToEndUnderProvisiond uploads the built provider to a provisiond
// running the plugin host (AutoStart creates the "ipmi" instance and loads
// the content pack), gives a machine its BMC params and powers it on with
// POST /api/v3/machines/<id>/actions/poweron.
func TestEndToEndUnderProvisiond(t *testing.T) {
	env := e2etest.Start(t, e2etest.Options{Provider: "ipmi"})
	c, ctx := env.Client, env.Ctx
	// AutoStart: the instance appears and its content pack defines the params.
	env.Wait("the ipmi plugin to come up", func() bool {
		var p models.Param
		var pl models.Plugin
		return c.Get(ctx, "params", "ipmi/password", &p) == nil && p.Secure && c.Get(ctx, "plugins", "ipmi", &pl) == nil
	})

	sim, err := bmcsim.Start(bmcsim.Options{Password: "e2e-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	m := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "e2e", Params: map[string]any{
		"ipmi/address": sim.Host, "ipmi/port-ipmitool": sim.Port, "ipmi/username": "ADMIN", "ipmi/password": "e2e-secret",
	}}, m); err != nil {
		t.Fatal(err)
	}
	if m.Params["ipmi/password"] == "e2e-secret" {
		t.Fatal("ipmi/password stored in plain text")
	}
	// ipmi/mode is not set on the machine: the pack's default (native) applies.
	// The machine actions are registered once the instance is configured.
	env.WaitAction("machines", m.UUID(), "poweron")
	var out any
	err = c.RunAction(ctx, "machines", m.UUID(), "poweron", "", nil, &out)
	if err != nil {
		t.Fatalf("poweron: %v\nserver logs:\n%s", err, env.Logs())
	}
	if !sim.Chassis.On() {
		t.Fatal("POST .../actions/poweron did not power the BMC on")
	}
	var st map[string]string
	if err := c.RunAction(ctx, "machines", m.UUID(), "powerstatus", "", nil, &st); err != nil || st["power"] != "on" {
		t.Fatalf("powerstatus = %v %v", st, err)
	}
	// An error code travels through the host to the REST caller.
	err = c.RunAction(ctx, "machines", m.UUID(), "identify", "", map[string]any{"ipmi/identify-duration": "soon"}, &out)
	if me, ok := err.(*models.Error); !ok || me.Code != 400 {
		t.Fatalf("bad identify-duration: %v", err)
	}
}
