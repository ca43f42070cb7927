package vboxplugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

// TestAgainstRealServer runs the REST callbacks (param-filtered machine
// lists, create, get, JSON-patch update, aggregated params, delete) against
// an in-process provisiond instead of the fake.
func TestAgainstRealServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	api := srv.Client(t)
	vb := installFakeVBox(t)
	ctx := context.Background()
	vb.AddVM(t, "20000000-0000-4000-8000-000000000001", "imported", "poweroff", "080027000001")

	p := New(Options{Jitter: func() time.Duration { return 0 }})
	if err := p.Configure(ctx, quiet(), api, map[string]any{"Name": instance, ParamVBoxManage: vb.path, ParamImportExisting: true}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	var ms []*models.Machine
	if err := api.List(ctx, "machines", &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "imported" || ms[0].Params[ParamID] != "20000000-0000-4000-8000-000000000001" ||
		len(ms[0].HardwareAddrs) != 1 || ms[0].HardwareAddrs[0] != "08:00:27:00:00:01" {
		t.Fatalf("imported machines: %+v", ms)
	}
	// A second import finds the machine by virtualbox/id and adds nothing.
	if err := p.Configure(ctx, quiet(), api, map[string]any{"Name": instance, ParamVBoxManage: vb.path, ParamImportExisting: true}); err != nil {
		t.Fatalf("second Configure: %v", err)
	}
	ms = nil
	if err := api.List(ctx, "machines", &ms); err != nil || len(ms) != 1 {
		t.Fatalf("after second import: %d machines, %v", len(ms), err)
	}

	// A machine created for this instance gets its VM through Publish.
	m := &models.Machine{Name: "node1", Params: map[string]any{ParamMachinePlugin: instance}}
	if err := api.Create(ctx, "machines", m, m); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, quiet(), &models.Event{Type: "machines", Action: "create", Key: m.UUID(), Object: m}); err != nil {
		t.Fatal(err)
	}
	id := strings.ToUpper(m.UUID())
	if vb.VM(id, "state") != "running" {
		t.Fatalf("VM for node1 not running (calls %v)", vb.Calls(t))
	}
	got := &models.Machine{}
	if err := api.Get(ctx, "machines", m.UUID(), got); err != nil {
		t.Fatal(err)
	}
	if got.Params[ParamID] != id || len(got.HardwareAddrs) != 2 {
		t.Fatalf("node1 after create: %v %v", got.Params, got.HardwareAddrs)
	}

	// destroyVm removes the VM and finds the machine by virtualbox/id.
	if res, merr := act(t, p, ActionDestroyVM, map[string]any{ParamID: id}); merr != nil || res != "Destroy "+id {
		t.Fatalf("destroyVm: %v %v", res, merr)
	}
	if ok, err := api.Exists(ctx, "machines", m.UUID()); err != nil || ok {
		t.Fatalf("node1 still exists: %v %v", ok, err)
	}
}
