package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server/servertest"
)

// TestActionsAgainstRealServer points the plugin's RS_ENDPOINT at a real
// in-process provisiond: the increment/reset_count REST round trips go
// through the server's machine params API.
func TestActionsAgainstRealServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var m models.Machine
	if err := c.Create(ctx, "machines", &models.Machine{Name: "john"}, &m); err != nil {
		t.Fatalf("creating machine: %v", err)
	}
	tok, err := c.UserToken(ctx, servertest.AdminUser, time.Hour)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	p := plugintest.FromPackage(t, ".")
	p.Env["RS_ENDPOINT"] = srv.URL
	p.Env["RS_TOKEN"] = tok.Token
	pl := p.Start(t)
	if res := pl.Config(t, map[string]any{}); res.Status != 200 {
		t.Fatalf("config: %d %s", res.Status, res.Body)
	}
	model := map[string]any{"Uuid": m.Uuid.String(), "Name": "john"}
	for _, want := range []string{"3", "6"} {
		res := pl.Action(t, &models.Action{Model: model, Command: "increment",
			Params: map[string]any{"incrementer/step": 3, "incrementer/parameter": "parm5"}})
		if res.Status != 200 || strings.TrimSpace(string(res.Body)) != want {
			t.Fatalf("increment: %d %s, want %s", res.Status, res.Body, want)
		}
	}
	var v any
	if err := c.GetParam(ctx, "machines", m.Uuid.String(), "parm5", false, &v); err != nil || v != 6.0 {
		t.Errorf("parm5 on the server = %v, %v", v, err)
	}
	if err := c.GetParam(ctx, "machines", m.Uuid.String(), "incrementer/touched", false, &v); err != nil || v != 2.0 {
		t.Errorf("incrementer/touched on the server = %v, %v", v, err)
	}
	res := pl.Action(t, &models.Action{Model: model, Command: "reset_count"})
	if res.Status != 200 || strings.TrimSpace(string(res.Body)) != `"Success"` {
		t.Fatalf("reset_count: %d %s", res.Status, res.Body)
	}
	v = "unset"
	if err := c.GetParam(ctx, "machines", m.Uuid.String(), "incrementer/touched", false, &v); err != nil || v != nil {
		t.Errorf("incrementer/touched after reset = %v, %v", v, err)
	}
	pl.Stop(t)
}
