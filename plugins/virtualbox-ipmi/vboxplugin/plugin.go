package vboxplugin

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
)

// Options configures a Plugin; the zero value is production behaviour.
type Options struct {
	// CommandTimeout bounds each VBoxManage command (default 2m).
	CommandTimeout time.Duration
	// Jitter returns the delay taken, serialised across actions, before
	// poweron and powercycle so that many machines powered on at once do not
	// hit VirtualBox together (default: random 1000–1499 ms, as DRP).
	Jitter func() time.Duration
	// VBox tunes the unregister retry loop.
	VBox VBoxOptions
}

// Plugin implements the virtualbox-ipmi provider (Config, Action,
// SelectEvents, Publish of the pluginsdk contract).
type Plugin struct {
	opts Options
	// jitterSlot serialises the poweron/powercycle delay; a channel rather
	// than a mutex so that waiting for it honours ctx.
	jitterSlot chan struct{}

	mu     sync.Mutex
	name   string
	vbox   *VBox
	api    pluginutil.API
	vmPath string
}

// New returns an unconfigured plugin.
func New(opts Options) *Plugin {
	if opts.Jitter == nil {
		opts.Jitter = func() time.Duration { return time.Second + time.Duration(rand.IntN(500))*time.Millisecond }
	}
	return &Plugin{opts: opts, jitterSlot: make(chan struct{}, 1), name: "unknown"}
}

type state struct {
	name   string
	vbox   *VBox
	api    pluginutil.API
	vmPath string
}

func (p *Plugin) current() (state, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return state{p.name, p.vbox, p.api, p.vmPath}, p.vbox != nil
}

// Config implements pluginsdk.Configurer; see Configure.
func (p *Plugin) Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error {
	var api pluginutil.API
	if c != nil {
		api = c
	}
	return p.Configure(ctx, l, api, params)
}

// optionalString reads a string param from the config map, falling back to
// the plugin's aggregated params (global profile) as DRP's
// GetDrpStringParam did. A lookup failure counts as unset.
func optionalString(ctx context.Context, l *slog.Logger, api pluginutil.API, name string, params map[string]any, param string) (string, error) {
	if v, ok := params[param]; ok && v != nil {
		return pluginutil.ValidateString(param, v)
	}
	if api == nil || name == "unknown" {
		return "", nil
	}
	v, err := pluginutil.GetDrpParam(ctx, api, "plugins", name, param)
	if err != nil {
		l.Debug("param lookup failed, treating it as unset", "param", param, "error", err)
		return "", nil
	}
	if v == nil {
		return "", nil
	}
	return pluginutil.ValidateString(param, v)
}

// Configure is Config with the REST client as an interface (tests).
//
//  1. The instance name comes from params["Name"] ("unknown" without it).
//  2. virtualbox/user (optional): run VBoxManage through sudo as that user.
//  3. virtualbox/vboxmanage (optional) or VBoxManage/vboxmanage on PATH:
//     404 when it cannot be found.
//  4. `list vms` must work (400 otherwise): it proves the setup works.
//  5. With virtualbox/import-existing true, every VM not yet known to
//     provision (by virtualbox/id) is created as a machine. DRP always did
//     this; it is now opt-in.
func (p *Plugin) Configure(ctx context.Context, l *slog.Logger, api pluginutil.API, params map[string]any) *models.Error {
	name := "unknown"
	if n, ok := params["Name"].(string); ok && n != "" {
		name = n
	}
	bad := func(code int, format string, args ...any) *models.Error {
		return pluginutil.MakeError(name, code, format, args...)
	}
	runAs, err := optionalString(ctx, l, api, name, params, ParamUser)
	if err != nil {
		return bad(http.StatusBadRequest, "%v", err)
	}
	vmPath, err := optionalString(ctx, l, api, name, params, ParamVMPath)
	if err != nil {
		return bad(http.StatusBadRequest, "%v", err)
	}
	vboxPath, err := optionalString(ctx, l, api, name, params, ParamVBoxManage)
	if err != nil {
		return bad(http.StatusBadRequest, "%v", err)
	}
	doImport, err := pluginutil.BoolParam(params, ParamImportExisting, false)
	if err != nil {
		return bad(http.StatusBadRequest, "%v", err)
	}
	if strings.HasPrefix(runAs, "-") {
		return bad(http.StatusBadRequest, "%s %q is not a user name", ParamUser, runAs)
	}
	runner, err := NewExecRunner(vboxPath, runAs, p.opts.CommandTimeout)
	if err != nil {
		return bad(http.StatusNotFound, "%v", err)
	}
	vb := NewVBox(runner, p.opts.VBox)
	vms, err := vb.ListVMs(ctx)
	if err != nil {
		return bad(http.StatusBadRequest, "Failed to list vms in VBoxManage/vboxmanage. %v", err)
	}
	if doImport {
		if api == nil {
			return bad(http.StatusBadRequest, "%s needs the API client (RS_ENDPOINT/RS_TOKEN)", ParamImportExisting)
		}
		if merr := importVMs(ctx, l, api, vb, name, vms); merr != nil {
			return merr
		}
	}
	p.mu.Lock()
	p.name, p.vbox, p.api, p.vmPath = name, vb, api, vmPath
	p.mu.Unlock()
	l.Info("virtualbox-ipmi configured", "instance", name, "vboxmanage", runner.VBoxManage, "user", runAs, "vms", len(vms))
	return nil
}

// importVMs creates a machine for every VM no machine refers to yet. It
// imports what it can and reports every failure in one 400 error.
func importVMs(ctx context.Context, l *slog.Logger, api pluginutil.API, vb *VBox, name string, vms []VMRef) *models.Error {
	var failed *models.Error
	fail := func(format string, args ...any) {
		if failed == nil {
			failed = pluginutil.MakeError(name, http.StatusBadRequest, format, args...)
			return
		}
		failed.Errorf(format, args...)
	}
	for _, vm := range vms {
		m, err := pluginutil.GetDrpMachineByParam(ctx, api, ParamID, vm.ID)
		if err != nil {
			fail("Failed to look up machine for vbox machine %s: %v", vm.ID, err)
			continue
		}
		if m != nil {
			continue
		}
		info, err := vb.ShowVMInfo(ctx, vm.ID)
		if err != nil {
			fail("Failed to get specific info for vbox machine, %s: %v", vm.ID, err)
			continue
		}
		if _, err := createMachine(ctx, api, info, name); err != nil {
			fail("Failed to add machine, %s: %v", info.Name, err)
			continue
		}
		l.Info("imported VirtualBox VM", "vm", info.Name, "id", info.UUID)
	}
	return failed
}

// createMachine creates the machine for a VM (DRP's
// createDrpMachineFromVmData).
func createMachine(ctx context.Context, api pluginutil.API, info *VMInfo, instance string) (*models.Machine, error) {
	m := &models.Machine{
		Name: info.Name,
		Params: map[string]any{
			ParamID:            info.UUID,
			ParamName:          info.Name,
			ParamMachinePlugin: instance,
		},
		HardwareAddrs: append([]string{}, info.MACs...),
	}
	out := &models.Machine{}
	if err := api.Create(ctx, "machines", m, out); err != nil {
		return nil, err
	}
	return out, nil
}

// SelectEvents implements pluginsdk.EventSelector.
func (p *Plugin) SelectEvents(context.Context, *slog.Logger) []string {
	return []string{"machines.create.*", "machines.delete.*"}
}

// vmParams are the sizing params of a VM to create.
func vmSpec(params map[string]any) (VMSpec, error) {
	var s VMSpec
	var err error
	if s.DiskMB, err = pluginutil.IntParam(params, ParamDiskSizeMB, DefaultDiskMB); err != nil {
		return s, err
	}
	if s.MemMB, err = pluginutil.IntParam(params, ParamMemSizeMB, DefaultMemMB); err != nil {
		return s, err
	}
	if s.VRAMMB, err = pluginutil.IntParam(params, ParamVRAMSizeMB, DefaultVRAMMB); err != nil {
		return s, err
	}
	if s.CPUs, err = pluginutil.IntParam(params, ParamCPUs, DefaultCPUs); err != nil {
		return s, err
	}
	for _, c := range []struct {
		name string
		v    int
	}{{ParamDiskSizeMB, s.DiskMB}, {ParamMemSizeMB, s.MemMB}, {ParamVRAMSizeMB, s.VRAMMB}, {ParamCPUs, s.CPUs}} {
		if c.v <= 0 {
			return s, fmt.Errorf("%s must be positive, not %d", c.name, c.v)
		}
	}
	return s, nil
}

// checkVMArg rejects VM names and ids VBoxManage would read as an option.
func checkVMArg(what, v string) error {
	if strings.HasPrefix(v, "-") {
		return fmt.Errorf("%s %q must not start with '-'", what, v)
	}
	return nil
}

// ensureVM is DRP's createVboxVmFromDrpMachine: it returns the VM for m,
// creating it when needed. vmid is params[virtualbox/id], else m's UUID
// (so that VMs created for machines have the machine's UUID); the VM is
// reused when that id already exists. m.Params gets virtualbox/id,
// virtualbox/name and machine-plugin. created says whether a VM was made
// (only those are destroyed on a later failure).
func (p *Plugin) ensureVM(ctx context.Context, st state, m *models.Machine, params map[string]any) (info *VMInfo, created bool, err error) {
	vmid, err := pluginutil.StringParam(params, ParamID, "")
	if err != nil {
		return nil, false, err
	}
	if vmid == "" && m.Uuid != uuid.Nil {
		// A new machine has the zero UUID, which DRP's m.UUID() gave as "".
		vmid = m.UUID()
	}
	if err := checkVMArg(ParamID, vmid); err != nil {
		return nil, false, err
	}
	if vmid != "" {
		if info, err := st.vbox.ShowVMInfo(ctx, vmid); err == nil {
			setVMParams(m, info, st.name)
			return info, false, nil
		}
	}
	spec, err := vmSpec(params)
	if err != nil {
		return nil, false, err
	}
	spec.Name, spec.UUID, spec.VMPath = m.Name, vmid, st.vmPath
	if spec.Name == "" {
		return nil, false, fmt.Errorf("Missing virtualbox name")
	}
	if err := checkVMArg("VM name", spec.Name); err != nil {
		return nil, false, err
	}
	id, err := st.vbox.CreateVM(ctx, spec)
	if err != nil {
		return nil, false, err
	}
	info, err = st.vbox.ShowVMInfo(ctx, id)
	if err != nil {
		if derr := st.vbox.Destroy(context.WithoutCancel(ctx), id); derr != nil {
			err = fmt.Errorf("%w (and removing the VM failed: %v)", err, derr)
		}
		return nil, false, err
	}
	setVMParams(m, info, st.name)
	return info, true, nil
}

func setVMParams(m *models.Machine, info *VMInfo, instance string) {
	if m.Params == nil {
		m.Params = map[string]any{}
	}
	m.Params[ParamID] = info.UUID
	m.Params[ParamName] = info.Name
	m.Params[ParamMachinePlugin] = instance
}

// Action implements pluginsdk.Actor with DRP's 9 actions, results and
// error codes (400 bad input or create/start/destroy failures, 409 power
// command failures, 404 unknown command).
func (p *Plugin) Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	st, ok := p.current()
	if !ok {
		return nil, pluginutil.MakeError(st.name, http.StatusConflict, "virtualbox-ipmi is not configured")
	}
	bad := func(code int, format string, args ...any) *models.Error {
		return pluginutil.MakeError(st.name, code, format, args...)
	}
	parm, err := pluginutil.StringParam(a.Params, ParamID, "")
	if err != nil {
		return nil, bad(http.StatusBadRequest, "%v", err)
	}
	if parm == "" {
		if parm, err = pluginutil.StringParam(a.Params, ParamName, ""); err != nil {
			return nil, bad(http.StatusBadRequest, "%v", err)
		}
	}
	if parm == "" {
		return nil, bad(http.StatusBadRequest, "Missing virtualbox id or name")
	}
	if err := checkVMArg("virtualbox id or name", parm); err != nil {
		return nil, bad(http.StatusBadRequest, "%v", err)
	}
	l.Info(fmt.Sprintf("Action %s on %s", a.Command, parm))
	res, merr := p.action(ctx, st, a, parm)
	l.Info(fmt.Sprintf("Returning for %s on %s", a.Command, parm), "ok", merr == nil)
	return res, merr
}

func (p *Plugin) action(ctx context.Context, st state, a *models.Action, parm string) (any, *models.Error) {
	bad := func(code int, format string, args ...any) *models.Error {
		return pluginutil.MakeError(st.name, code, format, args...)
	}
	cmdFailed := func(err error) *models.Error {
		return bad(http.StatusConflict, "Command failed: %s: %v", a.Command, err)
	}
	switch a.Command {
	case ActionPowerOn, ActionPowerCycle:
		if err := p.jitter(ctx); err != nil {
			return nil, cmdFailed(err)
		}
		run := st.vbox.StartVM
		if a.Command == ActionPowerCycle {
			run = st.vbox.Reset
		}
		out, err := run(ctx, parm)
		if err != nil {
			return nil, cmdFailed(err)
		}
		return out, nil
	case ActionPowerOff:
		out, err := st.vbox.PowerOff(ctx, parm)
		if err != nil {
			return nil, cmdFailed(err)
		}
		return out, nil
	case ActionNextBootPXE, ActionNextBootDisk:
		// The VMs always boot net then disk; as in DRP this is a no-op.
		return "Success", nil
	case ActionCreateVM:
		return p.createVMAction(ctx, st, a, parm)
	case ActionStartVM:
		if err := st.vbox.StartIfStopped(ctx, parm); err != nil {
			return nil, bad(http.StatusBadRequest, "%v", err)
		}
		return "Started " + parm, nil
	case ActionStopVM:
		if _, err := st.vbox.PowerOff(ctx, parm); err != nil {
			return nil, cmdFailed(err)
		}
		return "Stopped " + parm, nil
	case ActionDestroyVM:
		if err := st.vbox.Destroy(ctx, parm); err != nil {
			return nil, bad(http.StatusBadRequest, "%v", err)
		}
		if st.api != nil {
			if err := deleteMachineFor(ctx, st.api, parm); err != nil {
				return nil, bad(http.StatusConflict, "%v", err)
			}
		}
		return "Destroy " + parm, nil
	}
	return nil, bad(http.StatusNotFound, "Unknown command: %s", a.Command)
}

// jitter waits the serialised random delay before poweron/powercycle,
// giving up (with ctx's error) when ctx ends while waiting.
func (p *Plugin) jitter(ctx context.Context) error {
	select {
	case p.jitterSlot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.jitterSlot }()
	return pluginutil.Sleep(ctx, p.opts.Jitter())
}

func (p *Plugin) createVMAction(ctx context.Context, st state, a *models.Action, parm string) (any, *models.Error) {
	bad := func(format string, args ...any) *models.Error {
		return pluginutil.MakeError(st.name, http.StatusBadRequest, format, args...)
	}
	name, err := pluginutil.StringParam(a.Params, ParamName, "")
	if err != nil {
		return nil, bad("%v", err)
	}
	if name == "" {
		return nil, bad("Missing virtualbox name")
	}
	if st.api == nil {
		return nil, bad("createVm needs the API client (RS_ENDPOINT/RS_TOKEN)")
	}
	m := &models.Machine{Name: name}
	info, created, err := p.ensureVM(ctx, st, m, a.Params)
	if err != nil {
		return nil, bad("%v", err)
	}
	if _, err := createMachine(ctx, st.api, info, st.name); err != nil {
		// Only a VM made by this call is removed; DRP also destroyed a VM
		// that already existed.
		if created {
			if derr := st.vbox.Destroy(context.WithoutCancel(ctx), info.UUID); derr != nil {
				err = fmt.Errorf("%w (and removing the VM failed: %v)", err, derr)
			}
		}
		return nil, bad("%v", err)
	}
	return "Created " + parm, nil
}

// deleteMachineFor deletes the machine whose virtualbox/id is UPPER(parm),
// else the one whose virtualbox/name is parm; none is not an error.
func deleteMachineFor(ctx context.Context, api pluginutil.API, parm string) error {
	m, err := pluginutil.GetDrpMachineByParam(ctx, api, ParamID, strings.ToUpper(parm))
	if err != nil {
		return err
	}
	if m == nil {
		if m, err = pluginutil.GetDrpMachineByParam(ctx, api, ParamName, parm); err != nil {
			return err
		}
	}
	if m == nil {
		return nil
	}
	return pluginutil.DeleteDrpMachine(ctx, api, m.UUID())
}

// Publish implements pluginsdk.Publisher for machine create and delete
// events whose object names this instance in machine-plugin (the event's
// own params, as DRP). create makes (or reuses) the VM, records it on the
// machine and starts it; delete destroys the machine's VM. Failures are
// logged, never returned, as in DRP; a VM made here is removed again when
// a later step fails.
func (p *Plugin) Publish(ctx context.Context, l *slog.Logger, e *models.Event) *models.Error {
	st, ok := p.current()
	if !ok || e == nil || e.Type != "machines" || (e.Action != "create" && e.Action != "delete") {
		return nil
	}
	m := &models.Machine{}
	if err := e.ObjectAs(m); err != nil {
		l.Warn("machine event with an undecodable object", "key", e.Key, "error", err)
		return nil
	}
	if owner, _ := m.Params[ParamMachinePlugin].(string); owner != st.name {
		return nil
	}
	switch e.Action {
	case "create":
		if err := p.publishCreate(ctx, l, st, m); err != nil {
			l.Error("creating the VM for a new machine failed", "machine", m.Name, "uuid", m.UUID(), "error", err)
		}
	case "delete":
		id, _ := m.Params[ParamID].(string)
		if id == "" || checkVMArg(ParamID, id) != nil {
			return nil
		}
		if err := st.vbox.Destroy(ctx, id); err != nil {
			if gone, _ := vmGone(ctx, st.vbox, id); gone {
				// destroyVm removes the VM before it deletes the machine.
				l.Info("the deleted machine's VM is already gone", "machine", m.Name, "id", id)
				return nil
			}
			l.Error("destroying the VM of a deleted machine failed", "machine", m.Name, "id", id, "error", err)
		}
	}
	return nil
}

// vmGone reports whether `list vms` no longer has a VM with id.
func vmGone(ctx context.Context, vb *VBox, id string) (bool, error) {
	vms, err := vb.ListVMs(ctx)
	if err != nil {
		return false, err
	}
	for _, vm := range vms {
		if strings.EqualFold(vm.ID, id) {
			return false, nil
		}
	}
	return true, nil
}

func (p *Plugin) publishCreate(ctx context.Context, l *slog.Logger, st state, m *models.Machine) error {
	if st.api == nil {
		return fmt.Errorf("no API client")
	}
	params, err := st.api.GetParams(ctx, "machines", m.UUID(), true)
	if err != nil {
		l.Warn("aggregated params unavailable, using the machine's own", "uuid", m.UUID(), "error", err)
		params = m.Params
	}
	// Work on the machine as stored now, not as it was in the event, so
	// the patch's test operations match.
	cur := &models.Machine{}
	if err := st.api.Get(ctx, "machines", m.UUID(), cur); err != nil {
		return fmt.Errorf("get machine: %w", err)
	}
	next, err := models.Clone(cur)
	if err != nil {
		return err
	}
	info, created, err := p.ensureVM(ctx, st, next, params)
	if err != nil {
		return err
	}
	undo := func(err error) error {
		if !created {
			return err
		}
		if derr := st.vbox.Destroy(context.WithoutCancel(ctx), info.UUID); derr != nil {
			return fmt.Errorf("%w (and removing the VM failed: %v)", err, derr)
		}
		return err
	}
	for _, mac := range info.MACs {
		if !contains(next.HardwareAddrs, mac) {
			next.HardwareAddrs = append(next.HardwareAddrs, mac)
		}
	}
	if err := st.api.PatchTo(ctx, "machines", cur.UUID(), cur, next, nil); err != nil {
		return undo(fmt.Errorf("save machine: %w", err))
	}
	if !created && info.Running() {
		// An existing VM is restarted so that it network-boots for its new
		// machine (DRP powered it off unconditionally).
		if _, err := st.vbox.PowerOff(ctx, info.UUID); err != nil {
			l.Warn("powering off the existing VM failed", "id", info.UUID, "error", err)
		}
	}
	if err := st.vbox.StartIfStopped(ctx, info.UUID); err != nil {
		return undo(fmt.Errorf("start VM: %w", err))
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
