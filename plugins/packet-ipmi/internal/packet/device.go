package packet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// cleanupTimeout bounds rollback calls, which run even when the caller's
// context has ended.
const cleanupTimeout = 30 * time.Second

// createRequest builds the device for a machine from its (aggregated)
// params, with DRP's defaults.
func (p *Plugin) createRequest(inst *instance, hostname string, params map[string]any) (metal.CreateRequest, error) {
	r := metal.CreateRequest{Hostname: hostname, OperatingSystem: DefaultOperatingSystem}
	var err error
	if r.Facility, err = pluginutil.StringParam(params, ParamFacility, DefaultFacility); err != nil {
		return r, err
	}
	if r.Plan, err = pluginutil.StringParam(params, ParamPlan, DefaultPlan); err != nil {
		return r, err
	}
	if r.ProjectID, err = pluginutil.StringParam(params, ParamProjectID, inst.defaultProject); err != nil {
		return r, err
	}
	if r.ProjectID == "" {
		return r, fmt.Errorf("no project: the API key sees no project, set %s", ParamProjectID)
	}
	def := ""
	if p.opts.FileServer != "" {
		def = strings.TrimRight(p.opts.FileServer, "/") + "/default.ipxe"
	}
	if r.IPXEScriptURL, err = pluginutil.StringParam(params, ParamIPXEScriptURL, def); err != nil {
		return r, err
	}
	if r.IPXEScriptURL == "" {
		return r, fmt.Errorf("no iPXE script: set %s (RS_FILESERVER is not set either)", ParamIPXEScriptURL)
	}
	if r.AlwaysPXE, err = pluginutil.BoolParam(params, ParamAlwaysPXE, true); err != nil {
		return r, err
	}
	return r, nil
}

// errBadParams marks createRequest errors (answered 400).
type errBadParams struct{ err error }

// Error implements error with the wrapped message unchanged.
func (e errBadParams) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e errBadParams) Unwrap() error { return e.err }

// ensureDevice gives a machine a ready device, DRP's
// CreatePacketDeviceFromDrpMachine: when params' packet/uuid names an
// existing device it returns that device with exists=true; otherwise it
// creates one, calls created(id) once the API has accepted it, and polls
// until the device is ready or packet/create-timeout passes, in which case
// the device is deleted and errNotReady returned. If ctx ends while polling
// the device is deleted too.
func (p *Plugin) ensureDevice(ctx context.Context, l *slog.Logger, inst *instance, hostname string, params map[string]any,
	created func(id string)) (dev *metal.Device, exists bool, err error) {
	if id, _ := params[ParamUUID].(string); id != "" {
		d, err := inst.metal.Device(ctx, id)
		switch {
		case err == nil:
			return d, true, nil
		case !metal.IsNotFound(err):
			return nil, false, err
		}
		l.Info("packet/uuid names no device; creating a new one", "device", id)
	}
	req, err := p.createRequest(inst, hostname, params)
	if err != nil {
		return nil, false, errBadParams{err}
	}
	d, err := inst.metal.CreateDevice(ctx, req)
	if err != nil {
		return nil, false, err
	}
	l.Info("created Metal device", "device", d.ID, "hostname", hostname, "plan", req.Plan, "facility", req.Facility, "project", req.ProjectID)
	if created != nil {
		created(d.ID)
	}
	ready, err := p.waitReady(ctx, l, inst, d)
	if err != nil {
		p.deleteDevice(l, inst, d.ID, "not ready: "+err.Error())
		return nil, false, err
	}
	return ready, false, nil
}

// waitReady polls a device every packet/poll-interval until it is ready,
// packet/create-timeout passes or ctx ends. Transient API errors are
// retried; a 404 ends the wait.
func (p *Plugin) waitReady(ctx context.Context, l *slog.Logger, inst *instance, d *metal.Device) (*metal.Device, error) {
	deadline := time.Now().Add(inst.st.createTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	t := time.NewTimer(inst.st.pollInterval)
	defer t.Stop()
	for !d.Ready() {
		select {
		case <-ctx.Done():
			if time.Now().Before(deadline) {
				return nil, fmt.Errorf("waiting for device %s: %w", d.ID, context.Cause(ctx))
			}
			return nil, fmt.Errorf("%w: device %s after %s", errNotReady, d.ID, inst.st.createTimeout)
		case <-t.C:
		}
		got, err := inst.metal.Device(ctx, d.ID)
		switch {
		case err == nil:
			d = got
		case metal.IsNotFound(err):
			return nil, fmt.Errorf("device %s disappeared while provisioning: %w", d.ID, err)
		case ctx.Err() != nil:
			continue // reported by the select
		default:
			l.Warn("polling device failed; retrying", "device", d.ID, "err", err)
		}
		t.Reset(inst.st.pollInterval)
	}
	return d, nil
}

// deleteDevice deletes a device during rollback; it runs with its own
// deadline so it also works when the caller's context has ended. A device
// that is already gone counts as deleted.
func (p *Plugin) deleteDevice(l *slog.Logger, inst *instance, id, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := inst.metal.DeleteDevice(ctx, id); err != nil && !metal.IsNotFound(err) {
		l.Error("rollback: deleting Metal device failed; delete it by hand", "device", id, "why", why, "err", err)
		return
	}
	l.Warn("rollback: deleted Metal device", "device", id, "why", why)
}

// saveMachine re-reads machine uuid, applies the device to it and writes
// the difference back (a JSON patch with test ops, so a concurrent change
// is not overwritten silently).
func saveMachine(ctx context.Context, inst *instance, uuid string, d *metal.Device) (*models.Machine, error) {
	old := &models.Machine{}
	if err := inst.api.Get(ctx, "machines", uuid, old); err != nil {
		return nil, fmt.Errorf("get machine %s: %w", uuid, err)
	}
	upd, err := models.Clone(old)
	if err != nil {
		return nil, fmt.Errorf("copy machine %s: %w", uuid, err)
	}
	applyDevice(upd, d, inst.st.name)
	out := &models.Machine{}
	if err := inst.api.PatchTo(ctx, "machines", uuid, old, upd, out); err != nil {
		return nil, fmt.Errorf("update machine %s: %w", uuid, err)
	}
	return out, nil
}

// isBadParams reports whether err came from invalid params.
func isBadParams(err error) bool {
	var bp errBadParams
	return errors.As(err, &bp)
}
