package packet

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// powerAction maps a power command to its Metal device action.
func powerAction(cmd string) (string, bool) {
	switch cmd {
	case CmdPowerOn, CmdStartVM:
		return metal.ActionPowerOn, true
	case CmdPowerOff, CmdStopVM:
		return metal.ActionPowerOff, true
	case CmdPowerCycle:
		return metal.ActionReboot, true
	}
	return "", false
}

// Action implements the SDK's Actor with DRP's ten commands and results:
// "Success" for power commands and updatepxe, "Complete" for the nextboot
// no-ops, "Created <id>" and "Destroyed <id>". Error codes are listed at
// codeFor; invalid params are 400, an unknown command 404.
func (p *Plugin) Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	inst := p.current()
	if inst == nil {
		return nil, pluginutil.MakeError("unknown", http.StatusServiceUnavailable, "plugin is not configured yet")
	}
	key := inst.st.name
	if _, ok := powerAction(a.Command); !ok {
		switch a.Command {
		case CmdCreateVM, CmdDestroyVM, CmdNextBootPXE, CmdNextBootDisk, CmdUpdatePXE:
		default:
			return nil, pluginutil.MakeError(key, http.StatusNotFound, "Unknown command: %s", a.Command)
		}
	}
	if a.Command == CmdCreateVM {
		return p.createVM(ctx, l, inst, a)
	}
	devID, err := pluginutil.StringParam(a.Params, ParamUUID, "")
	if err != nil {
		return nil, badRequest(key, "%s", err)
	}
	if devID == "" {
		return nil, badRequest(key, "Missing packet uuid: set %s", ParamUUID)
	}
	if act, ok := powerAction(a.Command); ok {
		if err := inst.metal.PerformAction(ctx, devID, act); err != nil {
			return nil, failed(key, a.Command, err)
		}
		l.Info("power action done", "command", a.Command, "device", devID)
		return "Success", nil
	}
	switch a.Command {
	case CmdNextBootPXE, CmdNextBootDisk:
		// Metal devices boot as always_pxe says; DRP made these no-ops too.
		return "Complete", nil
	case CmdUpdatePXE:
		return p.updatePXE(ctx, l, inst, a, devID)
	}
	return p.destroyVM(ctx, l, inst, devID)
}

// updatePXE changes the device's iPXE script URL and/or always-PXE flag and
// refreshes the machine from the updated device.
func (p *Plugin) updatePXE(ctx context.Context, l *slog.Logger, inst *instance, a *models.Action, id string) (any, *models.Error) {
	key := inst.st.name
	m := &models.Machine{}
	if err := models.Remarshal(a.Model, m); err != nil {
		return nil, badRequest(key, "Invalid machine %s: %v", a.Command, err)
	}
	var upd metal.UpdateRequest
	if v, ok := a.Params[ParamIPXEScriptURL]; ok && v != nil {
		s, err := pluginutil.ValidateString(ParamIPXEScriptURL, v)
		if err != nil {
			return nil, badRequest(key, "%s", err)
		}
		upd.IPXEScriptURL = &s
	}
	if v, ok := a.Params[ParamAlwaysPXE]; ok && v != nil {
		b, err := pluginutil.ValidateBool(ParamAlwaysPXE, v)
		if err != nil {
			return nil, badRequest(key, "%s", err)
		}
		upd.AlwaysPXE = &b
	}
	if upd.IPXEScriptURL == nil && upd.AlwaysPXE == nil {
		return nil, badRequest(key, "Nothing to update: set %s and/or %s", ParamIPXEScriptURL, ParamAlwaysPXE)
	}
	d, err := inst.metal.UpdateDevice(ctx, id, upd)
	if err != nil {
		return nil, failed(key, a.Command, err)
	}
	if m.Uuid != uuid.Nil {
		if _, err := saveMachine(ctx, inst, m.UUID(), d); err != nil {
			l.Error("updatepxe: device updated but the machine was not refreshed", "machine", m.UUID(), "err", err)
		}
	}
	return "Success", nil
}

// createVM creates a device (DRP defaults: name "fred", plan baremetal_0,
// facility ewr1, the default project), waits until it is ready and creates
// its machine. On failure the device is deleted.
func (p *Plugin) createVM(ctx context.Context, l *slog.Logger, inst *instance, a *models.Action) (any, *models.Error) {
	key := inst.st.name
	name, err := pluginutil.StringParam(a.Params, ParamName, DefaultName)
	if err != nil {
		return nil, badRequest(key, "%s", err)
	}
	params := map[string]any{}
	for _, k := range []string{ParamFacility, ParamPlan, ParamProjectID, ParamIPXEScriptURL, ParamAlwaysPXE} {
		if v, ok := a.Params[k]; ok {
			params[k] = v
		}
	}
	d, _, err := p.ensureDevice(ctx, l, inst, name, params, nil)
	if err != nil {
		if isBadParams(err) {
			return nil, badRequest(key, "Command failed: %s: %s", a.Command, err)
		}
		return nil, failed(key, a.Command, err)
	}
	m := machineFromDevice(d, key)
	if err := inst.api.Create(ctx, "machines", m, nil); err != nil {
		p.deleteDevice(l, inst, d.ID, "machine create failed: "+err.Error())
		return nil, pluginutil.MakeError(key, codeFor(err), "Create Machine: %s: %s", a.Command, err)
	}
	return "Created " + d.ID, nil
}

// destroyVM deletes the device and then the machine that has it as
// packet/uuid (a device that is already gone is not an error).
func (p *Plugin) destroyVM(ctx context.Context, l *slog.Logger, inst *instance, id string) (any, *models.Error) {
	key := inst.st.name
	if err := inst.metal.DeleteDevice(ctx, id); err != nil {
		if !metal.IsNotFound(err) {
			return nil, failed(key, CmdDestroyVM, err)
		}
		l.Info("destroyVm: device already gone", "device", id)
	}
	m, err := pluginutil.GetDrpMachineByParam(ctx, inst.api, ParamUUID, id)
	if err != nil {
		return nil, pluginutil.MakeError(key, codeFor(err), "Failed to destroy machine: %s", err)
	}
	if m != nil {
		if err := pluginutil.DeleteDrpMachine(ctx, inst.api, m.UUID()); err != nil {
			return nil, pluginutil.MakeError(key, codeFor(err), "Failed to destroy machine: %s", err)
		}
	}
	return "Destroyed " + id, nil
}
