package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/e2etest"
	"github.com/provisionhq/provision/plugins/virtualbox-ipmi/vboxplugin"
)

// vmIDs maps the stand-in's VM names to their (upper-case) ids.
func vmIDs(t *testing.T, state string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(filepath.Join(state, "vms"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if name := vmFile(state, e.Name(), "name"); name != "" {
			out[name] = e.Name()
		}
	}
	return out
}

// machineBy returns the one machine whose param has value, or nil.
func machineBy(env *e2etest.Env, param, value string) *models.Machine {
	var ms []*models.Machine
	if err := env.Client.List(env.Ctx, "machines", &ms, param, "Eq("+value+")"); err != nil || len(ms) != 1 {
		return nil
	}
	return ms[0]
}

// TestUnderProvisiond runs the built provider under provisiond with the
// VBoxManage stand-in named by virtualbox/vboxmanage: import-existing at
// config, the machine power actions through POST
// /api/v3/machines/<uuid>/actions/<cmd>, the VM actions through POST
// /api/v3/plugins/<name>/actions/<cmd>, and a machine created for the
// instance (machine-plugin) getting a VM through the event websocket,
// destroyed again when the machine is deleted.
func TestUnderProvisiond(t *testing.T) {
	vbox, state := installVBox(t)
	if out, err := exec.Command(vbox, "createvm", "--name", "pre1", "--register").CombinedOutput(); err != nil {
		t.Fatalf("pre-create a VM: %v %s", err, out)
	}
	preID := vmIDs(t, state)["pre1"]

	env := e2etest.Start(t, e2etest.Options{Provider: vboxplugin.ProviderName})
	c, ctx := env.Client, env.Ctx
	env.WaitParam(vboxplugin.ParamVBoxManage)
	const inst = "vb"
	env.CreatePlugin(&models.Plugin{Name: inst, Provider: vboxplugin.ProviderName, Params: map[string]any{
		vboxplugin.ParamVBoxManage: vbox, vboxplugin.ParamImportExisting: true,
	}})

	// Config imported the VM as a machine of this instance.
	pre := machineBy(env, vboxplugin.ParamID, preID)
	if pre == nil || pre.Name != "pre1" || pre.Params[vboxplugin.ParamMachinePlugin] != inst || pre.Params[vboxplugin.ParamName] != "pre1" {
		t.Fatalf("imported machine %+v\nserver logs:\n%s", pre, env.Logs())
	}

	// Machine power actions change the VM's state.
	env.WaitAction("machines", pre.UUID(), vboxplugin.ActionPowerOn)
	machineAction := func(cmd string) any {
		t.Helper()
		var out any
		if err := c.RunAction(ctx, "machines", pre.UUID(), cmd, "", nil, &out); err != nil {
			t.Fatalf("%s: %v\nserver logs:\n%s", cmd, err, env.Logs())
		}
		return out
	}
	machineAction(vboxplugin.ActionPowerOn)
	if s := vmFile(state, preID, "state"); s != "running" {
		t.Fatalf("after poweron the VM is %q", s)
	}
	machineAction(vboxplugin.ActionPowerCycle)
	if n := vmFile(state, preID, "resets"); n != "1" {
		t.Fatalf("after powercycle the VM was reset %q times", n)
	}
	machineAction(vboxplugin.ActionPowerOff)
	if s := vmFile(state, preID, "state"); s != "poweroff" {
		t.Fatalf("after poweroff the VM is %q", s)
	}
	// VBoxManage's failure travels back as the plugin's 409.
	var out any
	err := c.RunAction(ctx, "machines", pre.UUID(), vboxplugin.ActionPowerOff, "", nil, &out)
	if me, ok := err.(*models.Error); !ok || me.Code != 409 || !strings.Contains(strings.Join(me.Messages, " "), "not currently running") {
		t.Fatalf("poweroff of a stopped VM: %v", err)
	}

	// Plugin actions. createVm makes the VM and its machine; the machine's
	// create event then starts the VM (as in DRP).
	pluginAction := func(cmd string, params map[string]any) any {
		t.Helper()
		var out any
		if err := c.RunAction(ctx, "plugins", inst, cmd, "", params, &out); err != nil {
			t.Fatalf("%s: %v\nserver logs:\n%s", cmd, err, env.Logs())
		}
		return out
	}
	byName := map[string]any{vboxplugin.ParamName: "made1"}
	if out := pluginAction(vboxplugin.ActionCreateVM, map[string]any{vboxplugin.ParamName: "made1", vboxplugin.ParamCPUs: 4}); out != "Created made1" {
		t.Fatalf("createVm answered %v", out)
	}
	madeID := vmIDs(t, state)["made1"]
	if madeID == "" || vmFile(state, madeID, "cpus") != "4" || vmFile(state, madeID, "memory") != "2048" {
		t.Fatalf("createVm: VM %q cpus %q memory %q", madeID, vmFile(state, madeID, "cpus"), vmFile(state, madeID, "memory"))
	}
	made := machineBy(env, vboxplugin.ParamID, madeID)
	if made == nil || made.Name != "made1" || len(made.HardwareAddrs) != 2 {
		t.Fatalf("createVm's machine %+v", made)
	}
	env.Wait("made1 to be started by its machine's create event", func() bool { return vmFile(state, madeID, "state") == "running" })
	if out := pluginAction(vboxplugin.ActionStopVM, byName); out != "Stopped made1" || vmFile(state, madeID, "state") != "poweroff" {
		t.Fatalf("stopVm: %v, VM %s", out, vmFile(state, madeID, "state"))
	}
	if out := pluginAction(vboxplugin.ActionStartVM, byName); out != "Started made1" || vmFile(state, madeID, "state") != "running" {
		t.Fatalf("startVm: %v, VM %s", out, vmFile(state, madeID, "state"))
	}
	err = c.RunAction(ctx, "plugins", inst, vboxplugin.ActionStartVM, "", byName, &out)
	if me, ok := err.(*models.Error); !ok || me.Code != 400 || !strings.Contains(strings.Join(me.Messages, " "), "already running") {
		t.Fatalf("startVm of a running VM: %v", err)
	}
	if out := pluginAction(vboxplugin.ActionDestroyVM, byName); out != "Destroy made1" {
		t.Fatalf("destroyVm: %v", out)
	}
	if _, ok := vmIDs(t, state)["made1"]; ok {
		t.Fatal("destroyVm left the VM")
	}
	if m := machineBy(env, vboxplugin.ParamID, madeID); m != nil {
		t.Fatalf("destroyVm left the machine %s", m.UUID())
	}

	// A machine created for this instance gets a VM (with the machine's
	// UUID) through the event websocket; deleting it destroys the VM.
	m := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "evt1", Params: map[string]any{vboxplugin.ParamMachinePlugin: inst}}, m); err != nil {
		t.Fatal(err)
	}
	id := strings.ToUpper(m.UUID())
	env.Wait("evt1's VM to run", func() bool { return vmFile(state, id, "state") == "running" })
	env.Wait("virtualbox/id on evt1", func() bool {
		got := &models.Machine{}
		return c.Get(ctx, "machines", m.UUID(), got) == nil && got.Params[vboxplugin.ParamID] == id && len(got.HardwareAddrs) == 2
	})
	if vmFile(state, id, "name") != "evt1" {
		t.Fatalf("VM name %q", vmFile(state, id, "name"))
	}
	// A machine for another instance is left alone.
	other := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "other1", Params: map[string]any{vboxplugin.ParamMachinePlugin: "someone-else"}}, other); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "machines", m.UUID(), nil); err != nil {
		t.Fatal(err)
	}
	env.Wait("evt1's VM to be destroyed", func() bool {
		_, err := os.Stat(filepath.Join(state, "vms", id))
		return os.IsNotExist(err)
	})
	// Events are handled in order: other1's create came before evt1's
	// delete, so by now it was seen and ignored.
	if _, ok := vmIDs(t, state)["other1"]; ok {
		t.Fatal("a VM was made for another instance's machine")
	}
	// made1's delete event (after destroyVm had removed its VM) came
	// before evt1's create, so it has been handled too: quietly.
	if logs := env.Logs(); strings.Contains(logs, "destroying the VM of a deleted machine failed") {
		t.Fatalf("a machine delete after destroyVm was logged as a failure:\n%s", logs)
	}
}
