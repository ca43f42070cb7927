package vboxplugin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/drpfake"
	"github.com/provisionhq/provision/plugins/internal/fakewait"
)

// quiet is a logger that drops everything, for tests that do not look at logs.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

const instance = "vbox1"

// setup returns a configured plugin using the stand-in VBoxManage (by its
// path) and the fake API.
func setup(t *testing.T, extra map[string]any) (*Plugin, *fakeVBox, *drpfake.Server, *fakewait.Recorder) {
	t.Helper()
	vb := installFakeVBox(t)
	api := drpfake.New(t)
	w := &fakewait.Recorder{}
	p := New(Options{Jitter: func() time.Duration { return 0 }, VBox: VBoxOptions{Wait: w.Wait}})
	params := map[string]any{"Name": instance, ParamVBoxManage: vb.path}
	for k, v := range extra {
		params[k] = v
	}
	if err := p.Configure(context.Background(), quiet(), api.Client(t), params); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	vb.ResetCalls(t)
	return p, vb, api, w
}

func act(t *testing.T, p *Plugin, cmd string, params map[string]any) (any, *models.Error) {
	t.Helper()
	return p.Action(context.Background(), quiet(), &models.Action{Plugin: instance, Command: cmd, Params: params})
}

func args(s string) []string { return strings.Split(s, "|") }

func TestDefinitionKeepsDRPNames(t *testing.T) {
	d := Definition("v1")
	if d.Name != "virtualbox-ipmi" || d.PluginVersion != 4 || d.HasPublish {
		t.Fatalf("definition %+v", d)
	}
	var got []string
	for _, a := range d.AvailableActions {
		got = append(got, a.Model+":"+a.Command)
	}
	want := []string{"plugins:createVm", "plugins:startVm", "plugins:stopVm", "plugins:destroyVm", "machines:poweron",
		"machines:poweroff", "machines:powercycle", "machines:nextbootpxe", "machines:nextbootdisk"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("actions %v", got)
	}
	if a := d.AvailableActions[0]; !reflect.DeepEqual(a.OptionalParams, []string{ParamUser, ParamName, ParamCPUs, ParamDiskSizeMB, ParamMemSizeMB, ParamVRAMSizeMB, ParamID}) {
		t.Fatalf("createVm optional params %v", a.OptionalParams)
	}
	for _, a := range d.AvailableActions[4:] {
		if !reflect.DeepEqual(a.RequiredParams, []string{ParamID}) {
			t.Fatalf("%s required %v", a.Command, a.RequiredParams)
		}
	}
}

func TestConfigFindsVBoxManageOnPATH(t *testing.T) {
	vb := installFakeVBox(t)
	t.Setenv("PATH", vb.dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	p := New(Options{})
	if err := p.Configure(context.Background(), quiet(), nil, map[string]any{"Name": instance}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if c := vb.Calls(t); !reflect.DeepEqual(c, [][]string{{"list", "vms"}}) {
		t.Fatalf("calls %v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	p := New(Options{})
	ctx := context.Background()
	err := p.Configure(ctx, quiet(), nil, map[string]any{"Name": instance})
	if err == nil || err.Code != 404 || err.Key != instance || !strings.Contains(err.Messages[0], "Failed to find VBoxManage/vboxmanage") ||
		!strings.Contains(err.Messages[0], ParamVBoxManage) {
		t.Fatalf("missing VBoxManage: %v", err)
	}
	err = p.Configure(ctx, quiet(), nil, map[string]any{ParamVBoxManage: filepath.Join(empty, "nope")})
	if err == nil || err.Code != 404 || err.Key != "unknown" {
		t.Fatalf("bad vboxmanage path: %v", err)
	}
	vb := installFakeVBox(t)
	vb.Set(t, "fail-list", "VBoxManage: error: Failed to create the VirtualBox object!")
	err = p.Configure(ctx, quiet(), nil, map[string]any{"Name": instance, ParamVBoxManage: vb.path})
	if err == nil || err.Code != 400 || !strings.Contains(err.Messages[0], "Failed to list vms") ||
		!strings.Contains(err.Messages[0], "Failed to create the VirtualBox object") {
		t.Fatalf("list failure: %v", err)
	}
	for _, bad := range []map[string]any{
		{ParamVBoxManage: vb.path, ParamUser: 5.0},
		{ParamVBoxManage: vb.path, ParamImportExisting: "yes"},
		{ParamVBoxManage: vb.path, ParamUser: "-oops"},
	} {
		if err := p.Configure(ctx, quiet(), nil, bad); err == nil || err.Code != 400 {
			t.Fatalf("%v accepted: %v", bad, err)
		}
	}
	// Nothing was configured by the failures.
	if _, merr := act(t, p, ActionPowerOn, map[string]any{ParamID: "X"}); merr == nil || merr.Code != 409 {
		t.Fatalf("action on an unconfigured plugin: %v", merr)
	}
}

func TestSudoWhenUserIsSet(t *testing.T) {
	vb := installFakeVBox(t)
	sudoDir := t.TempDir()
	log := filepath.Join(sudoDir, "sudo.log")
	sudo := "#!/bin/bash\n( IFS='|'; echo \"$*\" ) >>'" + log + "'\n" +
		"[ \"$1\" = -n ] && [ \"$2\" = -u ] && [ \"$3\" = vboxuser ] || { echo 'sudo: bad arguments' >&2; exit 1; }\n" +
		"shift 3\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(sudoDir, "sudo"), []byte(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", sudoDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	p := New(Options{Jitter: func() time.Duration { return 0 }})
	if err := p.Configure(context.Background(), quiet(), nil, map[string]any{"Name": instance, ParamUser: "vboxuser", ParamVBoxManage: vb.path}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	vb.AddVM(t, "11111111-2222-3333-4444-555555555555", "web", "poweroff")
	if _, err := act(t, p, ActionPowerOn, map[string]any{ParamID: "11111111-2222-3333-4444-555555555555"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	want := "-n|-u|vboxuser|" + vb.path + "|list|vms\n-n|-u|vboxuser|" + vb.path + "|startvm|11111111-2222-3333-4444-555555555555\n"
	if string(b) != want {
		t.Fatalf("sudo argv:\n%s\nwant:\n%s", b, want)
	}
	if vb.VM("11111111-2222-3333-4444-555555555555", "state") != "running" {
		t.Fatal("VM not started through sudo")
	}
}

func TestCreateStartStopDestroyVM(t *testing.T) {
	p, vb, api, _ := setup(t, map[string]any{ParamVMPath: "/srv/vms"})
	res, err := act(t, p, ActionCreateVM, map[string]any{
		ParamName: "web1", ParamCPUs: 4.0, ParamMemSizeMB: 4096.0, ParamDiskSizeMB: 10240.0, ParamUser: "ignored-here",
	})
	if err != nil || res != "Created web1" {
		t.Fatalf("createVm: %v %v", res, err)
	}
	ids := vb.VMs()
	if len(ids) != 1 {
		t.Fatalf("VMs %v", ids)
	}
	id := ids[0]
	wantCalls := [][]string{
		args("createvm|--name|web1|--register"),
		args("storagectl|web1|--name|SATA Controller|--add|sata|--controller|IntelAHCI"),
		args("createmedium|disk|--filename|/srv/vms/web1/web1.vdi|--size|10240"),
		args("storageattach|web1|--storagectl|SATA Controller|--port|0|--device|0|--type|hdd|--medium|/srv/vms/web1/web1.vdi"),
		args("modifyvm|web1|--ioapic|on|--cpus|4|--boot1|net|--boot2|disk|--boot3|none|--boot4|none|--memory|4096|--vram|128|" +
			"--nic1|hostonly|--hostonlyadapter1|vboxnet0|--nictype1|82545EM|--nic2|nat|--nictype2|82545EM"),
		args("showvminfo|" + id + "|--machinereadable"),
	}
	if got := vb.Calls(t); !reflect.DeepEqual(got, wantCalls) {
		t.Fatalf("calls:\n%v\nwant:\n%v", got, wantCalls)
	}
	if vb.VM(id, "cpus") != "4" || vb.VM(id, "memory") != "4096" || vb.VM(id, "disk") != "/srv/vms/web1/web1.vdi" {
		t.Fatal("VM not built as asked")
	}
	m := api.Machines(t)["web1"]
	if m == nil {
		t.Fatal("no machine web1")
	}
	hex := strings.ToLower(strings.ReplaceAll(id, "-", ""))
	mac := func(s string) string {
		return s[0:2] + ":" + s[2:4] + ":" + s[4:6] + ":" + s[6:8] + ":" + s[8:10] + ":" + s[10:12]
	}
	if m.Params[ParamID] != id || m.Params[ParamName] != "web1" || m.Params[ParamMachinePlugin] != instance ||
		!reflect.DeepEqual(m.HardwareAddrs, []string{mac("080027" + hex[0:6]), mac("080027" + hex[6:12])}) {
		t.Fatalf("machine %+v %v", m.Params, m.HardwareAddrs)
	}

	vb.ResetCalls(t)
	if res, err := act(t, p, ActionStartVM, map[string]any{ParamName: "web1"}); err != nil || res != "Started web1" {
		t.Fatalf("startVm: %v %v", res, err)
	}
	if vb.VM(id, "state") != "running" {
		t.Fatal("not running")
	}
	if _, err := act(t, p, ActionStartVM, map[string]any{ParamName: "web1"}); err == nil || err.Code != 400 ||
		err.Messages[0] != "startvm failed: Machine is already running" {
		t.Fatalf("second startVm: %v", err)
	}
	if res, err := act(t, p, ActionStopVM, map[string]any{ParamName: "web1"}); err != nil || res != "Stopped web1" {
		t.Fatalf("stopVm: %v %v", res, err)
	}
	if vb.VM(id, "state") != "poweroff" {
		t.Fatal("not stopped")
	}
	if _, err := act(t, p, ActionStopVM, map[string]any{ParamName: "web1"}); err == nil || err.Code != 409 {
		t.Fatalf("stopVm on a stopped VM: %v", err)
	}
	wantCalls = [][]string{
		args("showvminfo|web1|--machinereadable"), args("startvm|web1"),
		args("showvminfo|web1|--machinereadable"),
		args("controlvm|web1|poweroff"), args("controlvm|web1|poweroff"),
	}
	if got := vb.Calls(t); !reflect.DeepEqual(got, wantCalls) {
		t.Fatalf("calls:\n%v\nwant:\n%v", got, wantCalls)
	}

	// createVm of an existing name fails cleanly and leaves the first VM.
	if _, err := act(t, p, ActionCreateVM, map[string]any{ParamName: "web1"}); err == nil || err.Code != 400 {
		t.Fatalf("duplicate createVm: %v", err)
	}
	if len(vb.VMs()) != 1 || len(api.Machines(t)) != 1 {
		t.Fatal("duplicate createVm changed state")
	}

	lower := strings.ToLower(id)
	if res, err := act(t, p, ActionDestroyVM, map[string]any{ParamID: lower}); err != nil || res != "Destroy "+lower {
		t.Fatalf("destroyVm: %v %v", res, err)
	}
	if len(vb.VMs()) != 0 || len(vb.Media()) != 0 {
		t.Fatalf("VM or disk left: %v %v", vb.VMs(), vb.Media())
	}
	if len(api.Machines(t)) != 0 {
		t.Fatal("machine not deleted")
	}
}

func TestCreateVMRollsBackOnFailure(t *testing.T) {
	p, vb, api, _ := setup(t, nil)
	vb.Set(t, "fail-modifyvm", "VBoxManage: error: Host-only adapter 'vboxnet0' not found")
	_, err := act(t, p, ActionCreateVM, map[string]any{ParamName: "web2"})
	if err == nil || err.Code != 400 || !strings.Contains(err.Messages[0], "vboxnet0") {
		t.Fatalf("createVm: %v", err)
	}
	if len(vb.VMs()) != 0 || len(vb.Media()) != 0 || len(api.Machines(t)) != 0 {
		t.Fatalf("not rolled back: vms %v media %v", vb.VMs(), vb.Media())
	}
	// A disk that cannot be attached is closed and deleted.
	vb.Set(t, "fail-storageattach", "VBoxManage: error: Could not attach")
	if err := os.Remove(filepath.Join(vb.state, "fail-modifyvm")); err != nil {
		t.Fatal(err)
	}
	vb.ResetCalls(t)
	if _, err := act(t, p, ActionCreateVM, map[string]any{ParamName: "web3"}); err == nil {
		t.Fatal("createVm succeeded")
	}
	calls := vb.Calls(t)
	if !reflect.DeepEqual(calls[4], args("closemedium|disk|web3.vdi|--delete")) || len(vb.Media()) != 0 || len(vb.VMs()) != 0 {
		t.Fatalf("calls %v media %v", calls, vb.Media())
	}
}

func TestPowerActions(t *testing.T) {
	p, vb, _, _ := setup(t, nil)
	const id = "0A1B2C3D-0000-4000-8000-00000000ABCD"
	vb.AddVM(t, id, "pxe1", "poweroff")
	res, err := act(t, p, ActionPowerOn, map[string]any{ParamID: id})
	if err != nil || !strings.Contains(res.(string), "successfully started") {
		t.Fatalf("poweron: %v %v", res, err)
	}
	if vb.VM(id, "state") != "running" {
		t.Fatal("not running")
	}
	if _, err := act(t, p, ActionPowerCycle, map[string]any{ParamID: id}); err != nil || vb.VM(id, "resets") != "1" {
		t.Fatalf("powercycle: %v resets=%s", err, vb.VM(id, "resets"))
	}
	if _, err := act(t, p, ActionPowerOff, map[string]any{ParamID: id}); err != nil || vb.VM(id, "state") != "poweroff" {
		t.Fatalf("poweroff: %v", err)
	}
	_, err = act(t, p, ActionPowerOff, map[string]any{ParamID: id})
	if err == nil || err.Code != 409 || !strings.HasPrefix(err.Messages[0], "Command failed: poweroff: ") ||
		!strings.Contains(err.Messages[0], "not currently running") || err.Key != instance || err.Model != "plugin" {
		t.Fatalf("poweroff when off: %v", err)
	}
	for _, cmd := range []string{ActionNextBootPXE, ActionNextBootDisk} {
		if res, err := act(t, p, cmd, map[string]any{ParamID: id}); err != nil || res != "Success" {
			t.Fatalf("%s: %v %v", cmd, res, err)
		}
	}
	want := [][]string{args("startvm|" + id), args("controlvm|" + id + "|reset"), args("controlvm|" + id + "|poweroff"), args("controlvm|" + id + "|poweroff")}
	if got := vb.Calls(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v", got)
	}
	if _, err := act(t, p, "identify", map[string]any{ParamID: id}); err == nil || err.Code != 404 || err.Messages[0] != "Unknown command: identify" {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := act(t, p, ActionPowerOn, map[string]any{}); err == nil || err.Code != 400 || err.Messages[0] != "Missing virtualbox id or name" {
		t.Fatalf("no id: %v", err)
	}
	if _, err := act(t, p, ActionPowerOn, map[string]any{ParamID: "--help"}); err == nil || err.Code != 400 {
		t.Fatalf("option-like id: %v", err)
	}
	if _, err := act(t, p, ActionPowerOn, map[string]any{ParamID: 12.0}); err == nil || err.Code != 400 {
		t.Fatalf("numeric id: %v", err)
	}
}

func TestDestroyRetriesWhileLocked(t *testing.T) {
	p, vb, _, w := setup(t, nil)
	const id = "AAAAAAAA-0000-4000-8000-000000000001"
	vb.AddVM(t, id, "locked1", "running")
	vb.Set(t, "vms/"+id+"/locked", "3")
	if res, err := act(t, p, ActionDestroyVM, map[string]any{ParamID: id}); err != nil || res != "Destroy "+id {
		t.Fatalf("destroy: %v %v", res, err)
	}
	if got := w.Waits(); !reflect.DeepEqual(got, []time.Duration{time.Second, time.Second, time.Second}) {
		t.Fatalf("waits between locked retries: %v (DRP's were 1µs)", got)
	}
	calls := vb.Calls(t)
	if !reflect.DeepEqual(calls[1], args("controlvm|"+id+"|poweroff")) || len(calls) != 6 || len(vb.VMs()) != 0 {
		t.Fatalf("calls %v", calls)
	}

	vb.AddVM(t, id, "locked2", "poweroff")
	vb.Set(t, "vms/"+id+"/locked", "50")
	_, err := act(t, p, ActionDestroyVM, map[string]any{ParamID: id})
	if err == nil || err.Code != 400 || err.Messages[0] != "Failed to destroy VM because it is locked: "+id {
		t.Fatalf("always locked: %v", err)
	}
	if n := len(w.Waits()); n != 3+9 {
		t.Fatalf("want 9 more waits (10 tries), got %d", n-3)
	}
}

func TestJitterIsSerialisedAndCancellable(t *testing.T) {
	vb := installFakeVBox(t)
	entered := make(chan struct{}, 10)
	var mu sync.Mutex
	calls := 0
	p := New(Options{Jitter: func() time.Duration {
		mu.Lock()
		calls++
		mu.Unlock()
		entered <- struct{}{}
		return time.Hour
	}})
	if err := p.Configure(context.Background(), quiet(), nil, map[string]any{ParamVBoxManage: vb.path}); err != nil {
		t.Fatal(err)
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA() // on an early t.Fatal, A stops sleeping too
	doneA := make(chan *models.Error, 1)
	go func() {
		_, err := p.Action(ctxA, quiet(), &models.Action{Command: ActionPowerOn, Params: map[string]any{ParamID: "A"}})
		doneA <- err
	}()
	select { // A holds the slot and sleeps
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("A did not reach the jitter delay within 10s")
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	cancelB()
	_, errB := p.Action(ctxB, quiet(), &models.Action{Command: ActionPowerCycle, Params: map[string]any{ParamID: "B"}})
	if errB == nil || errB.Code != 409 || !strings.Contains(errB.Messages[0], "context canceled") {
		t.Fatalf("B: %v", errB)
	}
	mu.Lock()
	n := calls
	mu.Unlock()
	if n != 1 {
		t.Fatalf("B got past the serialisation: %d jitter calls", n)
	}
	cancelA()
	select {
	case errA := <-doneA:
		if errA == nil || !strings.Contains(errA.Messages[0], "context canceled") {
			t.Fatalf("A: %v", errA)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A did not return within 10s of its ctx being cancelled")
	}
	for _, c := range vb.Calls(t) {
		if c[0] != "list" {
			t.Fatalf("a cancelled power action ran %v", c)
		}
	}
}

func TestPublishCreateAndDelete(t *testing.T) {
	p, vb, api, _ := setup(t, nil)
	api.SetGlobal(ParamMemSizeMB, 1024.0)
	m := api.AddMachine(t, &models.Machine{Name: "node1", Params: map[string]any{ParamMachinePlugin: instance, ParamCPUs: 1.0},
		HardwareAddrs: []string{"52:54:00:00:00:01"}})
	ctx := context.Background()

	// Another instance's machine and other events are ignored.
	other := &models.Machine{Name: "x", Uuid: uuid.New(), Params: map[string]any{ParamMachinePlugin: "vbox2"}}
	for _, e := range []*models.Event{
		{Type: "machines", Action: "create", Key: other.UUID(), Object: other},
		{Type: "machines", Action: "update", Key: m.UUID(), Object: m},
		{Type: "profiles", Action: "create", Key: "p", Object: map[string]any{"Name": "p"}},
		{Type: "machines", Action: "create", Key: "junk", Object: "not a machine"},
	} {
		if err := p.Publish(ctx, quiet(), e); err != nil {
			t.Fatal(err)
		}
	}
	if c := vb.Calls(t); len(c) != 0 {
		t.Fatalf("ignored events ran %v", c)
	}

	if err := p.Publish(ctx, quiet(), &models.Event{Type: "machines", Action: "create", Key: m.UUID(), Object: m}); err != nil {
		t.Fatal(err)
	}
	id := strings.ToUpper(m.UUID())
	if vb.VM(id, "name") != "node1" || vb.VM(id, "state") != "running" || vb.VM(id, "cpus") != "1" || vb.VM(id, "memory") != "1024" {
		t.Fatalf("VM: name %q state %q cpus %q mem %q", vb.VM(id, "name"), vb.VM(id, "state"), vb.VM(id, "cpus"), vb.VM(id, "memory"))
	}
	if c := vb.Calls(t); !reflect.DeepEqual(c[1], args("createvm|--name|node1|--register|--uuid|"+m.UUID())) {
		t.Fatalf("createvm call %v", c)
	}
	got := api.Machines(t)["node1"]
	if got.Params[ParamID] != id || got.Params[ParamName] != "node1" || len(got.HardwareAddrs) != 3 || got.HardwareAddrs[0] != "52:54:00:00:00:01" {
		t.Fatalf("machine after create: %v %v", got.Params, got.HardwareAddrs)
	}

	vb.ResetCalls(t)
	if err := p.Publish(ctx, quiet(), &models.Event{Type: "machines", Action: "delete", Key: m.UUID(), Object: got}); err != nil {
		t.Fatal(err)
	}
	if len(vb.VMs()) != 0 {
		t.Fatal("VM not destroyed")
	}
	want := [][]string{args("showvminfo|" + id + "|--machinereadable"), args("controlvm|" + id + "|poweroff"), args("unregistervm|" + id + "|--delete")}
	if c := vb.Calls(t); !reflect.DeepEqual(c, want) {
		t.Fatalf("delete calls %v", c)
	}

	// The VM already being gone (destroyVm deletes the machine after the
	// VM) is not an error.
	var logs bytes.Buffer
	if err := p.Publish(ctx, slog.New(slog.NewTextHandler(&logs, nil)), &models.Event{Type: "machines", Action: "delete", Key: m.UUID(), Object: got}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "already gone") {
		t.Fatalf("second delete logged %s", logs.String())
	}
}

func TestPublishCreateRollsBackVMWhenStartFails(t *testing.T) {
	p, vb, api, _ := setup(t, nil)
	vb.Set(t, "fail-startvm", "VBoxManage: error: The virtual machine has terminated unexpectedly")
	m := api.AddMachine(t, &models.Machine{Name: "node2", Params: map[string]any{ParamMachinePlugin: instance}})
	if err := p.Publish(context.Background(), quiet(), &models.Event{Type: "machines", Action: "create", Key: m.UUID(), Object: m}); err != nil {
		t.Fatal(err)
	}
	if len(vb.VMs()) != 0 || len(vb.Media()) != 0 {
		t.Fatalf("VM left behind: %v", vb.VMs())
	}
	if api.Machines(t)["node2"] == nil {
		t.Fatal("the machine must stay (as in DRP)")
	}
}

func TestImportExisting(t *testing.T) {
	vb := installFakeVBox(t)
	api := drpfake.New(t)
	vb.Set(t, "garbage", "1")
	vb.AddVM(t, "10000000-0000-4000-8000-000000000001", "known vm", "running")
	vb.AddVM(t, "10000000-0000-4000-8000-000000000002", "new vm", "poweroff", "080027AABBCC", "nonsense", "080027ddeeff")
	api.AddMachine(t, &models.Machine{Name: "known", Params: map[string]any{ParamID: "10000000-0000-4000-8000-000000000001"}})
	ctx := context.Background()

	p := New(Options{})
	if err := p.Configure(ctx, quiet(), api.Client(t), map[string]any{"Name": instance, ParamVBoxManage: vb.path}); err != nil {
		t.Fatal(err)
	}
	if len(api.Machines(t)) != 1 {
		t.Fatal("imported without virtualbox/import-existing")
	}
	if err := p.Configure(ctx, quiet(), api.Client(t), map[string]any{"Name": instance, ParamVBoxManage: vb.path, ParamImportExisting: true}); err != nil {
		t.Fatal(err)
	}
	ms := api.Machines(t)
	m := ms["new vm"]
	if len(ms) != 2 || m == nil {
		t.Fatalf("machines after import: %v", ms)
	}
	if m.Params[ParamID] != "10000000-0000-4000-8000-000000000002" || m.Params[ParamName] != "new vm" || m.Params[ParamMachinePlugin] != instance ||
		!reflect.DeepEqual(m.HardwareAddrs, []string{"08:00:27:aa:bb:cc", "08:00:27:dd:ee:ff"}) {
		t.Fatalf("imported machine %v %v", m.Params, m.HardwareAddrs)
	}
	// Importing again changes nothing.
	if err := p.Configure(ctx, quiet(), api.Client(t), map[string]any{"Name": instance, ParamVBoxManage: vb.path, ParamImportExisting: true}); err != nil {
		t.Fatal(err)
	}
	if len(api.Machines(t)) != 2 {
		t.Fatal("second import duplicated machines")
	}
}

func TestParsersNeverPanic(t *testing.T) {
	info := ParseVMInfo("junk without equals\n\n=\n\"quoted key\"=\"v=1\"\nname=\"a\"\nUUID=\"abc-def\"\nVMState=\"running\"\nmacaddress1=\"zz\"\nmacaddressX=\"080027000001\"\nmacaddress2=080027000002\n")
	if info.Name != "a" || info.UUID != "ABC-DEF" || !info.Running() || info.Raw["quoted key"] != "v=1" ||
		!reflect.DeepEqual(info.MACs, []string{"08:00:27:00:00:02"}) {
		t.Fatalf("%+v", info)
	}
	if info := ParseVMInfo(""); info.UUID != "" || len(info.MACs) != 0 {
		t.Fatalf("empty: %+v", info)
	}
	for in, want := range map[string]string{"080027C8A5B1": "08:00:27:c8:a5:b1", "08002": "", "080027C8A5BG": ""} {
		got, ok := FormatMAC(in)
		if got != want || ok != (want != "") {
			t.Errorf("FormatMAC(%q) = %q %v", in, got, ok)
		}
	}
}

func TestCommandTimeout(t *testing.T) {
	dir := t.TempDir()
	hang := filepath.Join(dir, "VBoxManage")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := NewExecRunner(hang, "", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Run(context.Background(), "list", "vms")
	var ce *CommandError
	if !errors.As(err, &ce) || !IsTimeout(err) {
		t.Fatalf("want a timeout CommandError, got %v", err)
	}
}
