package main

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/servertest"
)

// TestEndToEndUnderProvisiond uploads the built provider to a provisiond
// running the plugin host (AutoStart creates the "ipmi" instance and loads
// the content pack), gives a machine its BMC params and powers it on with
// POST /api/v3/machines/<id>/actions/poweron.
func TestEndToEndUnderProvisiond(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and runs it under provisiond")
	}
	bin := plugintest.Build(t, ".")
	ts := servertest.Start(t, servertest.Options{Modules: []server.Module{hostmodule.New(hostmodule.Options{})}})
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.UploadPluginProvider(ctx, "ipmi", f); err != nil {
		t.Fatalf("upload: %v", err)
	}
	// AutoStart: the instance appears and its content pack defines the params.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var p models.Param
		if err := c.Get(ctx, "params", "ipmi/password", &p); err == nil && p.Secure {
			var pl models.Plugin
			if c.Get(ctx, "plugins", "ipmi", &pl) == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ipmi plugin never came up; server logs:\n%s", ts.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}

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
	for {
		var acts []models.AvailableAction
		if err := c.Do(ctx, "GET", "machines/"+m.UUID()+"/actions", nil, nil, &acts); err == nil &&
			slices.ContainsFunc(acts, func(a models.AvailableAction) bool { return a.Command == "poweron" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("poweron never became available; server logs:\n%s", ts.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out any
	err = c.RunAction(ctx, "machines", m.UUID(), "poweron", "", nil, &out)
	if err != nil {
		t.Fatalf("poweron: %v\nserver logs:\n%s", err, ts.Logs())
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
