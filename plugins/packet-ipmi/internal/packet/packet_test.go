package packet

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metalfake"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server/servertest"
)

const (
	apiKey    = "metal-secret-key-0123456789"
	instName  = "packet1"
	project   = "11111111-2222-3333-4444-555555555555"
	fileSrv   = "http://fs.example:8091"
	deviceOne = "aaaaaaaa-0000-0000-0000-000000000001"
)

// published records the plugin's own events.
type published struct {
	mu     sync.Mutex
	events []models.Event
}

func (p *published) publish(ctx context.Context, typ, action, key string, obj any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, models.Event{Type: typ, Action: action, Key: key, Object: obj})
	return nil
}

func (p *published) list() []models.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]models.Event(nil), p.events...)
}

type env struct {
	t      *testing.T
	metal  *metalfake.Server
	srv    *servertest.Server
	api    *client.Client
	plugin *Plugin
	pub    *published
	logs   *plugintest.SyncBuffer
	log    *slog.Logger
}

// newEnv starts a Metal fake and a real provisiond (in-process, loopback,
// temp base dir) and a plugin wired to both.
func newEnv(t *testing.T) *env {
	t.Helper()
	mf := metalfake.New(apiKey)
	t.Cleanup(mf.Close)
	mf.AddProject(project)
	ts := servertest.Start(t, servertest.Options{})
	e := &env{t: t, metal: mf, srv: ts, api: ts.Client(t), pub: &published{}, logs: &plugintest.SyncBuffer{}}
	// The content pack provides this profile; mapped machines reference it.
	console := &models.Profile{Name: ConsoleProfile, Params: map[string]any{"kernel-console": "console=ttyS1,115200"}}
	if err := e.api.Create(context.Background(), "profiles", console, nil); err != nil {
		t.Fatal(err)
	}
	e.log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.plugin = New(Options{Version: "v-test", FileServer: fileSrv, Publish: e.pub.publish, Transport: mf.Client().Transport})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.plugin.Stop(ctx, e.log)
		if strings.Contains(e.logs.String(), apiKey) {
			t.Errorf("the API key appears in the log:\n%s", e.logs.String())
		}
	})
	return e
}

// createMachine stores a machine in provisiond and returns it.
func (e *env) createMachine(m models.Machine) models.Machine {
	e.t.Helper()
	out := models.Machine{}
	if err := e.api.Create(context.Background(), "machines", &m, &out); err != nil {
		e.t.Fatalf("create machine %s: %v", m.Name, err)
	}
	return out
}

// machine reads a machine; ok is false when it does not exist.
func (e *env) machine(id string) (models.Machine, bool) {
	e.t.Helper()
	ok, err := e.api.Exists(context.Background(), "machines", id)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return models.Machine{}, false
	}
	m := models.Machine{}
	if err := e.api.Get(context.Background(), "machines", id, &m); err != nil {
		e.t.Fatal(err)
	}
	return m, true
}

// machines lists all machines, oldest first.
func (e *env) machines() []models.Machine {
	e.t.Helper()
	var ms []models.Machine
	if err := e.api.List(context.Background(), "machines", &ms); err != nil {
		e.t.Fatal(err)
	}
	slices.SortStableFunc(ms, func(a, b models.Machine) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// event delivers a machine event to Publish as the SDK's event stream would.
func (e *env) event(action string, m models.Machine) {
	e.t.Helper()
	ev := &models.Event{Time: time.Now(), Type: "machines", Action: action, Key: m.UUID(), Object: m}
	if err := e.plugin.Publish(context.Background(), e.log, ev); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
}

// params are Config params with fast polling; extra overrides them.
func (e *env) params(extra map[string]any) map[string]any {
	p := map[string]any{
		"Name": instName, ParamAPIKey: apiKey, ParamAPIURL: e.metal.URL(),
		ParamPollInterval: 0.01, ParamCreateTimeout: 10.0, ParamAPITimeout: 5.0,
	}
	for k, v := range extra {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	return p
}

func (e *env) configure(extra map[string]any) *models.Error {
	e.t.Helper()
	return e.plugin.Configure(context.Background(), e.log, e.api, e.params(extra))
}

func (e *env) mustConfigure(extra map[string]any) {
	e.t.Helper()
	if err := e.configure(extra); err != nil {
		e.t.Fatalf("Config: %v", err)
	}
}

func (e *env) action(cmd string, model any, params map[string]any) (any, *models.Error) {
	return e.plugin.Action(context.Background(), e.log, &models.Action{Model: model, Plugin: instName, Command: cmd, Params: params})
}

func (e *env) activeDevice(id, host string) {
	e.metal.AddDevice(metalfake.Device{ID: id, Hostname: host, State: "active", Plan: "c3.small.x86", Facility: "da11",
		ProjectID: project, OperatingSystem: "custom_ipxe", BillingCycle: "hourly", Powered: true, AlwaysPXE: true,
		IPXEScriptURL: "http://old/boot.ipxe", PublicIPv4: "147.75.1.2", MACs: []string{"b8:ce:f6:00:00:01", "b8:ce:f6:00:00:02"}})
}

func wantErr(t *testing.T, err *models.Error, code int, msgPart string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %d error containing %q, got success", code, msgPart)
	}
	if err.Code != code || err.Model != "plugin" || err.Type != "rpc" || !strings.Contains(strings.Join(err.Messages, "\n"), msgPart) {
		t.Fatalf("want %d plugin/rpc error containing %q, got %+v", code, msgPart, err)
	}
}

func TestDefinitionKeepsDRPNames(t *testing.T) {
	def := Definition("v1")
	if def.Name != "packet-ipmi" || def.PluginVersion != 4 || def.HasPublish || def.AutoStart {
		t.Fatalf("provider fields %+v", def)
	}
	want := []struct{ cmd, model, req, opt string }{
		{"createVm", "plugins", "packet/api-key", "packet/name,packet/facility,packet/plan,packet/project-id"},
		{"startVm", "plugins", "packet/api-key", "packet/uuid"},
		{"stopVm", "plugins", "packet/api-key", "packet/uuid"},
		{"destroyVm", "plugins", "packet/api-key", "packet/uuid"},
		{"poweron", "machines", "packet/uuid", ""},
		{"poweroff", "machines", "packet/uuid", ""},
		{"powercycle", "machines", "packet/uuid", ""},
		{"nextbootpxe", "machines", "packet/uuid", ""},
		{"nextbootdisk", "machines", "packet/uuid", ""},
		{"updatepxe", "machines", "packet/uuid", "packet/ipxe-script-url,packet/always-pxe"},
	}
	if len(def.AvailableActions) != len(want) {
		t.Fatalf("%d actions", len(def.AvailableActions))
	}
	for i, w := range want {
		a := def.AvailableActions[i]
		if a.Command != w.cmd || a.Model != w.model || strings.Join(a.RequiredParams, ",") != w.req || strings.Join(a.OptionalParams, ",") != w.opt {
			t.Errorf("action %d = %+v, want %+v", i, a, w)
		}
	}
	if strings.Join(def.RequiredParams, ",") != "packet/api-key" ||
		!slices.Contains(def.OptionalParams, "packet/project-id") || !slices.Contains(def.OptionalParams, "packet/import-existing") {
		t.Fatalf("plugin params %v / %v", def.RequiredParams, def.OptionalParams)
	}
	if got := strings.Join(New(Options{}).SelectEvents(context.Background(), slog.New(slog.DiscardHandler)), " "); got != "machines.create.* machines.delete.*" {
		t.Fatalf("SelectEvents = %q", got)
	}
}

func TestConfigRejectsBadParamsAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	ghost := e.createMachine(models.Machine{Name: "ghost", Params: map[string]any{ParamUUID: "gone", ParamMachinePlugin: instName}})
	cases := []struct {
		extra map[string]any
		code  int
		msg   string
	}{
		{map[string]any{ParamAPIKey: nil}, 400, "Must specify packet/api-key"},
		{map[string]any{ParamAPIKey: 42.0}, 400, "packet/api-key must be a string"},
		{map[string]any{ParamAPIURL: "ftp://nowhere"}, 400, "packet/api-url"},
		{map[string]any{ParamPollInterval: "fast"}, 400, "packet/poll-interval must be a number"},
		{map[string]any{ParamCreateTimeout: -1.0}, 400, "packet/create-timeout"},
		{map[string]any{ParamImportExisting: "yes"}, 400, "packet/import-existing must be a boolean"},
		{map[string]any{ParamAPIKey: "wrong-key", ParamDeleteMissing: true}, 502, "get projects"},
	}
	for _, c := range cases {
		err := e.configure(c.extra)
		wantErr(t, err, c.code, c.msg)
		if err.Key != instName {
			t.Errorf("error key %q, want the instance name", err.Key)
		}
	}
	if _, ok := e.machine(ghost.UUID()); !ok {
		t.Fatal("a failed Config deleted a machine")
	}
	if _, err := e.action(CmdPowerOn, nil, map[string]any{ParamUUID: deviceOne}); err == nil || err.Code != http.StatusServiceUnavailable {
		t.Fatalf("action before a successful Config: %v", err)
	}
}

func TestConfigReadsAggregatedAPIKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.api.Create(ctx, "plugins", &models.Plugin{Name: instName, Provider: ProviderName}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.api.SetParam(ctx, "profiles", "global", ParamAPIKey, apiKey); err != nil {
		t.Fatal(err)
	}
	e.activeDevice(deviceOne, "web1")
	// The API key is not in the config body: it comes from the instance's aggregated params.
	e.mustConfigure(map[string]any{ParamAPIKey: nil, ParamImportExisting: true})
	if _, err := e.action(CmdPowerOff, nil, map[string]any{ParamUUID: deviceOne}); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.metal.Device(deviceOne); d.Powered {
		t.Fatal("device still powered")
	}
	if ms := e.machines(); len(ms) != 1 || ms[0].Params[ParamMachinePlugin] != instName {
		t.Fatalf("machine not marked with the instance name from the config: %+v", ms)
	}
}

func TestConfigWithoutNameIsUnknown(t *testing.T) {
	e := newEnv(t)
	// Even with exactly one packet-ipmi Plugin object, a body without Name
	// is not guessed at: the instance is "unknown", as in DRP.
	if err := e.api.Create(context.Background(), "plugins", &models.Plugin{Name: instName, Provider: ProviderName}, nil); err != nil {
		t.Fatal(err)
	}
	e.activeDevice(deviceOne, "web1")
	e.mustConfigure(map[string]any{"Name": nil, ParamImportExisting: true})
	if ms := e.machines(); len(ms) != 1 || ms[0].Params[ParamMachinePlugin] != "unknown" {
		t.Fatalf("want the machine marked with instance \"unknown\", got %+v", ms)
	}
}

func TestImportExistingMapsDevices(t *testing.T) {
	e := newEnv(t)
	e.metal.SetMaxPerPage(1)
	e.activeDevice(deviceOne, "web1")
	e.activeDevice("aaaaaaaa-0000-0000-0000-000000000002", "web2")

	e.mustConfigure(nil)
	if n := len(e.machines()); n != 0 {
		t.Fatalf("import-existing off but %d machines created", n)
	}
	e.mustConfigure(map[string]any{ParamImportExisting: true})
	ms := e.machines()
	if len(ms) != 2 {
		t.Fatalf("want 2 imported machines, got %d", len(ms))
	}
	m := ms[0]
	if m.Name != "web1" || m.Address.String() != "147.75.1.2" ||
		strings.Join(m.HardwareAddrs, ",") != "b8:ce:f6:00:00:01,b8:ce:f6:00:00:02" || !slices.Contains(m.Profiles, ConsoleProfile) {
		t.Fatalf("imported machine %+v", m)
	}
	wantParams := map[string]any{
		ParamUUID: deviceOne, ParamPlan: "c3.small.x86", ParamFacility: "da11", ParamProjectID: project,
		ParamSOS: deviceOne + "@sos.da11.platformequinix.com", ParamAlwaysPXE: true,
		ParamIPXEScriptURL: "http://old/boot.ipxe", ParamMachinePlugin: instName,
	}
	for k, v := range wantParams {
		if m.Params[k] != v {
			t.Errorf("param %s = %v, want %v", k, m.Params[k], v)
		}
	}
	// A second Config imports nothing twice.
	e.mustConfigure(map[string]any{ParamImportExisting: true})
	if n := len(e.machines()); n != 2 {
		t.Fatalf("re-import duplicated machines: %d", n)
	}
}

func TestDeleteMissingOnlyWhenAsked(t *testing.T) {
	e := newEnv(t)
	e.activeDevice(deviceOne, "web1")
	kept := e.createMachine(models.Machine{Name: "web1", Params: map[string]any{ParamUUID: deviceOne, ParamMachinePlugin: instName}})
	ghost := e.createMachine(models.Machine{Name: "ghost", Params: map[string]any{ParamUUID: "gone-device", ParamMachinePlugin: instName}})
	other := e.createMachine(models.Machine{Name: "other", Params: map[string]any{ParamUUID: "gone-too", ParamMachinePlugin: "packet2"}})
	plain := e.createMachine(models.Machine{Name: "plain"})

	e.mustConfigure(nil)
	if n := len(e.machines()); n != 4 {
		t.Fatalf("delete-missing off but machines were deleted: %d left", n)
	}
	e.mustConfigure(map[string]any{ParamDeleteMissing: true})
	for _, id := range []string{kept.UUID(), other.UUID(), plain.UUID()} {
		if _, ok := e.machine(id); !ok {
			t.Errorf("machine %s deleted but it should be kept", id)
		}
	}
	if _, ok := e.machine(ghost.UUID()); ok {
		t.Fatal("machine whose device is gone was not deleted")
	}
	evs := e.pub.list()
	if len(evs) != 1 || evs[0].Type != EventType || evs[0].Action != EventDeleteMissing || evs[0].Key != ghost.UUID() {
		t.Fatalf("published %+v", evs)
	}
	if !strings.Contains(e.logs.String(), "deleted machine whose Metal device is gone") {
		t.Fatal("deletion not logged")
	}
}

func TestPowerActions(t *testing.T) {
	e := newEnv(t)
	e.activeDevice(deviceOne, "web1")
	e.mustConfigure(nil)
	p := map[string]any{ParamUUID: deviceOne}
	steps := []struct {
		cmd     string
		powered bool
		reboots int
	}{
		{CmdPowerOff, false, 0}, {CmdPowerOn, true, 0}, {CmdPowerCycle, true, 1},
		{CmdStopVM, false, 1}, {CmdStartVM, true, 1}, {CmdPowerCycle, true, 2},
	}
	for _, s := range steps {
		res, err := e.action(s.cmd, nil, p)
		if err != nil || res != "Success" {
			t.Fatalf("%s: %v %v", s.cmd, res, err)
		}
		d, _ := e.metal.Device(deviceOne)
		if d.Powered != s.powered || d.Reboots != s.reboots {
			t.Fatalf("after %s: powered=%v reboots=%d", s.cmd, d.Powered, d.Reboots)
		}
	}
	before := len(e.metal.Requests())
	for _, cmd := range []string{CmdNextBootPXE, CmdNextBootDisk} {
		if res, err := e.action(cmd, nil, p); err != nil || res != "Complete" {
			t.Fatalf("%s: %v %v", cmd, res, err)
		}
	}
	if len(e.metal.Requests()) != before {
		t.Fatal("nextboot commands called the API")
	}

	_, err := e.action(CmdPowerOn, nil, map[string]any{})
	wantErr(t, err, 400, "Missing packet uuid")
	_, err = e.action(CmdStartVM, nil, map[string]any{ParamUUID: 7.0})
	wantErr(t, err, 400, "packet/uuid must be a string")
	_, err = e.action(CmdPowerOn, nil, map[string]any{ParamUUID: "no-such-device"})
	wantErr(t, err, 404, "Command failed: poweron")
	_, err = e.action("explode", nil, p)
	wantErr(t, err, 404, "Unknown command: explode")
}

func TestAPIFailuresGetHonestCodes(t *testing.T) {
	e := newEnv(t)
	e.activeDevice(deviceOne, "web1")
	// The generous default API timeout (e.params) for all but the stall, so
	// a slow TLS handshake or call on a loaded machine cannot turn the
	// expected 502 into a 504 or fail Configure.
	e.mustConfigure(nil)
	p := map[string]any{ParamUUID: deviceOne}
	e.metal.FailNext(http.StatusInternalServerError)
	_, err := e.action(CmdPowerOff, nil, p)
	wantErr(t, err, 502, "injected failure")
	// A short packet/api-timeout only for the stalled call. The reconfigure
	// reuses the transport's warm connection, so its two listing calls are
	// local round trips well inside 1 s; the stall waits the whole timeout.
	e.mustConfigure(map[string]any{ParamAPITimeout: 1.0})
	e.metal.StallNext(1)
	_, err = e.action(CmdPowerOff, nil, p)
	wantErr(t, err, 504, "Command failed: poweroff")
	if d, _ := e.metal.Device(deviceOne); !d.Powered {
		t.Fatal("failed calls changed the device")
	}
}

func TestUpdatePXE(t *testing.T) {
	e := newEnv(t)
	e.activeDevice(deviceOne, "web1")
	e.mustConfigure(map[string]any{ParamImportExisting: true})
	m := e.machines()[0]

	res, err := e.action(CmdUpdatePXE, m, map[string]any{ParamUUID: deviceOne, ParamIPXEScriptURL: "http://new/x.ipxe", ParamAlwaysPXE: false})
	if err != nil || res != "Success" {
		t.Fatalf("updatepxe: %v %v", res, err)
	}
	d, _ := e.metal.Device(deviceOne)
	if d.IPXEScriptURL != "http://new/x.ipxe" || d.AlwaysPXE {
		t.Fatalf("device not updated: %+v", d)
	}
	got, _ := e.machine(m.UUID())
	if got.Params[ParamIPXEScriptURL] != "http://new/x.ipxe" || got.Params[ParamAlwaysPXE] != false {
		t.Fatalf("machine not refreshed: %v", got.Params)
	}

	_, err = e.action(CmdUpdatePXE, m, map[string]any{ParamUUID: deviceOne})
	wantErr(t, err, 400, "Nothing to update")
	_, err = e.action(CmdUpdatePXE, m, map[string]any{ParamUUID: deviceOne, ParamAlwaysPXE: "yes"})
	wantErr(t, err, 400, "packet/always-pxe must be a boolean")
	_, err = e.action(CmdUpdatePXE, "not a machine", map[string]any{ParamUUID: deviceOne, ParamAlwaysPXE: true})
	wantErr(t, err, 400, "Invalid machine")
	if d2, _ := e.metal.Device(deviceOne); d2.IPXEScriptURL != d.IPXEScriptURL || d2.AlwaysPXE != d.AlwaysPXE {
		t.Fatal("rejected updatepxe changed the device")
	}
}

func TestCreateVMAndDestroyVM(t *testing.T) {
	e := newEnv(t)
	e.metal.SetActivateAfter(3)
	e.mustConfigure(nil)
	res, err := e.action(CmdCreateVM, nil, map[string]any{ParamName: "vm1", ParamPlan: "c3.small.x86", ParamFacility: "da11", ParamAPIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	devs := e.metal.Devices()
	if len(devs) != 1 || res != "Created "+devs[0].ID {
		t.Fatalf("result %v, devices %+v", res, devs)
	}
	d := devs[0]
	if d.Hostname != "vm1" || d.Plan != "c3.small.x86" || d.Facility != "da11" || d.ProjectID != project ||
		d.OperatingSystem != "custom_ipxe" || d.BillingCycle != "hourly" || !d.AlwaysPXE || d.IPXEScriptURL != fileSrv+"/default.ipxe" || d.State != "active" {
		t.Fatalf("created device %+v", d)
	}
	ms := e.machines()
	if len(ms) != 1 || ms[0].Name != "vm1" || ms[0].Params[ParamUUID] != d.ID || ms[0].Address == nil || len(ms[0].HardwareAddrs) != 2 {
		t.Fatalf("machines %+v", ms)
	}

	// Defaults: name fred, plan baremetal_0, facility ewr1.
	if _, err := e.action(CmdCreateVM, nil, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	fred := e.metal.Devices()[1]
	if fred.Hostname != "fred" || fred.Plan != "baremetal_0" || fred.Facility != "ewr1" {
		t.Fatalf("defaults not applied: %+v", fred)
	}

	res, err = e.action(CmdDestroyVM, nil, map[string]any{ParamUUID: d.ID})
	if err != nil || res != "Destroyed "+d.ID {
		t.Fatalf("destroyVm: %v %v", res, err)
	}
	if st, _ := e.metal.Device(d.ID); !st.Deleted {
		t.Fatal("device not deleted")
	}
	if _, ok := e.machine(ms[0].UUID()); ok {
		t.Fatal("machine not deleted")
	}
	// Destroying again is harmless: the device and machine are gone.
	if res, err = e.action(CmdDestroyVM, nil, map[string]any{ParamUUID: d.ID}); err != nil || res != "Destroyed "+d.ID {
		t.Fatalf("second destroyVm: %v %v", res, err)
	}
}

func TestCreateVMTimeoutDeletesDevice(t *testing.T) {
	e := newEnv(t)
	e.metal.SetActivateAfter(-1)
	e.mustConfigure(map[string]any{ParamCreateTimeout: 0.2})
	_, err := e.action(CmdCreateVM, nil, map[string]any{ParamName: "slow"})
	wantErr(t, err, 504, "still not active after timeout")
	devs := e.metal.Devices()
	if len(devs) != 1 || !devs[0].Deleted {
		t.Fatalf("unfinished device not deleted: %+v", devs)
	}
	if n := len(e.machines()); n != 0 {
		t.Fatalf("%d machines created for a failed device", n)
	}
}

func TestCreateVMBadParams(t *testing.T) {
	e := newEnv(t)
	e.mustConfigure(nil)
	_, err := e.action(CmdCreateVM, nil, map[string]any{ParamPlan: 3.0})
	wantErr(t, err, 400, "packet/plan must be a string")
	_, err = e.action(CmdCreateVM, nil, map[string]any{ParamProjectID: "no-such-project"})
	wantErr(t, err, 404, "Command failed: createVm")
	if n := len(e.metal.Devices()); n != 0 {
		t.Fatalf("%d devices created from bad params", n)
	}
}

func (e *env) waitCreations() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.plugin.Wait(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func TestPublishCreateAndDelete(t *testing.T) {
	e := newEnv(t)
	e.metal.SetActivateAfter(2)
	e.mustConfigure(nil)
	ctx := context.Background()
	prof := &models.Profile{Name: "packet-machines", Params: map[string]any{ParamMachinePlugin: instName, ParamPlan: "m3.large.x86"}}
	if err := e.api.Create(ctx, "profiles", prof, nil); err != nil {
		t.Fatal(err)
	}

	mine := e.createMachine(models.Machine{Name: "db1", Profiles: []string{"packet-machines"}})
	theirs := e.createMachine(models.Machine{Name: "not-mine", Params: map[string]any{ParamMachinePlugin: "packet2"}})
	e.event("create", mine)
	e.event("create", theirs)
	e.waitCreations()

	devs := e.metal.Devices()
	if len(devs) != 1 {
		t.Fatalf("want one device (only for this instance's machine), got %+v", devs)
	}
	d := devs[0]
	if d.Hostname != "db1" || d.Plan != "m3.large.x86" || d.Facility != "ewr1" || d.State != "active" ||
		d.IPXEScriptURL != fileSrv+"/default.ipxe" || !d.AlwaysPXE || d.BillingCycle != "hourly" || d.OperatingSystem != "custom_ipxe" {
		t.Fatalf("device %+v", d)
	}
	got, _ := e.machine(mine.UUID())
	if got.Params[ParamUUID] != d.ID || got.Address == nil || len(got.HardwareAddrs) != 2 || !slices.Contains(got.Profiles, ConsoleProfile) ||
		!slices.Contains(got.Profiles, "packet-machines") || got.Params[ParamMachinePlugin] != instName {
		t.Fatalf("machine not updated from its device: %+v", got)
	}

	// A create event for a machine that already has its device does nothing.
	e.event("create", got)
	e.waitCreations()
	if n := len(e.metal.Devices()); n != 1 {
		t.Fatalf("existing device duplicated: %d devices", n)
	}

	if err := e.api.Delete(ctx, "machines", mine.UUID(), nil); err != nil {
		t.Fatal(err)
	}
	e.event("delete", got)
	if st, _ := e.metal.Device(d.ID); !st.Deleted {
		t.Fatal("deleting the machine did not delete its device")
	}
}

func TestPublishCreateFailureRollsBack(t *testing.T) {
	e := newEnv(t)
	e.metal.SetActivateAfter(-1)
	e.mustConfigure(map[string]any{ParamCreateTimeout: 0.2})
	m := e.createMachine(models.Machine{Name: "doomed", Params: map[string]any{ParamMachinePlugin: instName}})
	e.event("create", m)
	e.waitCreations()
	devs := e.metal.Devices()
	if len(devs) != 1 || !devs[0].Deleted {
		t.Fatalf("device not rolled back: %+v", devs)
	}
	if _, ok := e.machine(m.UUID()); ok {
		t.Fatal("machine not rolled back")
	}
	evs := e.pub.list()
	if len(evs) != 1 || evs[0].Type != EventType || evs[0].Action != EventCreateFailed || evs[0].Key != m.UUID() {
		t.Fatalf("rollback not published: %+v", evs)
	}
}

func TestDeleteCancelsRunningCreation(t *testing.T) {
	e := newEnv(t)
	e.metal.SetActivateAfter(-1)
	e.mustConfigure(map[string]any{ParamCreateTimeout: 60.0})
	ctx := context.Background()
	m := e.createMachine(models.Machine{Name: "short-lived", Params: map[string]any{ParamMachinePlugin: instName}})
	e.event("create", m)
	// Poll (with a deadline) until the device exists and packet/uuid is
	// recorded on the machine.
	var got models.Machine
	plugintest.Eventually(t, 10*time.Second, "packet/uuid to be recorded on the machine", func() bool {
		got, _ = e.machine(m.UUID())
		id, _ := got.Params[ParamUUID].(string)
		return id != ""
	})
	if err := e.api.Delete(ctx, "machines", m.UUID(), nil); err != nil {
		t.Fatal(err)
	}
	e.event("delete", got)
	e.waitCreations()
	if st, _ := e.metal.Device(got.Params[ParamUUID].(string)); !st.Deleted {
		t.Fatal("device of a deleted machine not deleted")
	}
	if len(e.pub.list()) != 0 {
		t.Fatalf("a cancelled creation published a rollback: %+v", e.pub.list())
	}
}

func TestCreateEventAfterStopStartsNothing(t *testing.T) {
	e := newEnv(t)
	e.mustConfigure(nil)
	m := e.createMachine(models.Machine{Name: "too-late", Params: map[string]any{ParamMachinePlugin: instName}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.plugin.Stop(ctx, e.log)
	e.event("create", m)
	e.waitCreations()
	if devs := e.metal.Devices(); len(devs) != 0 {
		t.Fatalf("a create event after Stop made a device: %+v", devs)
	}
	if _, ok := e.machine(m.UUID()); !ok {
		t.Fatal("a create event after Stop deleted the machine")
	}
	if !strings.Contains(e.logs.String(), "create event ignored") {
		t.Fatalf("the ignored create event was not logged:\n%s", e.logs.String())
	}
}
