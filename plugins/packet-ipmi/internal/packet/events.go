package packet

import (
	"context"
	"log/slog"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// Publish implements the SDK's Publisher for the events SelectEvents asks
// for. Only machines whose aggregated machine-plugin param names this
// instance are handled:
//
//   - machines.create: a device is created for the machine in the
//     background (DRP did it inside the event loop, blocking every other
//     event for up to 15 minutes). When it is ready the machine is updated
//     from it; on failure the device and the machine are deleted (DRP's
//     rollback), which is logged and published.
//   - machines.delete: a creation still running for the machine is
//     cancelled and the machine's device is deleted.
//
// Create events that arrive after Stop are logged and ignored.
//
// As in DRP, Publish never fails: problems are logged.
func (p *Plugin) Publish(ctx context.Context, l *slog.Logger, e *models.Event) *models.Error {
	if e == nil || e.Type != "machines" || (e.Action != "create" && e.Action != "delete") {
		return nil
	}
	inst := p.current()
	if inst == nil {
		l.Warn("event before Config; ignored", "action", e.Action, "key", e.Key)
		return nil
	}
	m := &models.Machine{}
	if err := e.ObjectAs(m); err != nil {
		l.Warn("event object is not a machine; ignored", "action", e.Action, "key", e.Key, "err", err)
		return nil
	}
	params := m.Params
	if agg, err := inst.api.GetParams(ctx, "machines", m.UUID(), true); err != nil {
		if e.Action == "create" {
			l.Error("cannot read the new machine's params; event dropped", "machine", m.UUID(), "err", err)
			return nil
		}
	} else {
		params = agg
	}
	if owner, _ := params[ParamMachinePlugin].(string); owner != inst.st.name {
		return nil
	}
	if e.Action == "delete" {
		p.machineDeleted(ctx, l, inst, m, params)
		return nil
	}
	p.startCreate(l, inst, m, params)
	return nil
}

// machineDeleted cancels a running creation and deletes the device.
func (p *Plugin) machineDeleted(ctx context.Context, l *slog.Logger, inst *instance, m *models.Machine, params map[string]any) {
	p.mu.Lock()
	if cancel, ok := p.creating[m.UUID()]; ok {
		cancel()
	}
	p.mu.Unlock()
	id, _ := params[ParamUUID].(string)
	if id == "" {
		id, _ = m.Params[ParamUUID].(string)
	}
	if id == "" {
		return
	}
	if err := inst.metal.DeleteDevice(ctx, id); err != nil {
		if metal.IsNotFound(err) {
			l.Info("machine deleted; its device was already gone", "machine", m.UUID(), "device", id)
			return
		}
		l.Error("machine deleted but deleting its device failed", "machine", m.UUID(), "device", id, "err", err)
		return
	}
	l.Info("machine deleted; deleted its device", "machine", m.UUID(), "device", id)
}

// startCreate queues the device creation of a new machine. At most
// MaxCreates run at once and MaxPending wait; beyond that the event is
// rejected (logged and published) and the machine is left alone. After
// Stop nothing is started: the event is logged and ignored.
func (p *Plugin) startCreate(l *slog.Logger, inst *instance, m *models.Machine, params map[string]any) {
	key := m.UUID()
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		l.Warn("plugin is stopping; create event ignored, no device created", "machine", key)
		return
	}
	if _, dup := p.creating[key]; dup {
		p.mu.Unlock()
		l.Info("device creation already running for machine", "machine", key)
		return
	}
	if p.pending >= p.opts.MaxPending {
		p.mu.Unlock()
		l.Error("too many device creations queued; create event rejected", "machine", key, "limit", p.opts.MaxPending)
		p.publish(l, inst, EventCreateRejected, key, m)
		return
	}
	ctx, cancel := context.WithCancel(p.bgCtx)
	p.creating[key] = cancel
	p.pending++
	p.bg.Add(1)
	p.mu.Unlock()

	go func() {
		defer p.bg.Done()
		defer func() {
			if r := recover(); r != nil {
				l.Error("device creation panicked", "machine", key, "panic", r)
			}
			p.mu.Lock()
			delete(p.creating, key)
			p.pending--
			p.mu.Unlock()
			cancel()
		}()
		select {
		case p.sem <- struct{}{}:
			defer func() { <-p.sem }()
		case <-ctx.Done():
			l.Info("device creation cancelled before it started", "machine", key)
			return
		}
		p.createForMachine(ctx, l, inst, m, params)
	}()
}

// createForMachine is DRP's Publish(create) path, run in the background.
func (p *Plugin) createForMachine(ctx context.Context, l *slog.Logger, inst *instance, m *models.Machine, params map[string]any) {
	uuid := m.UUID()
	recordID := func(id string) {
		// Record packet/uuid at once, so a delete event or a restart of the
		// plugin finds the device even before it is ready.
		rctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		if err := setMachineParam(rctx, inst, uuid, ParamUUID, id); err != nil {
			l.Warn("recording packet/uuid on the machine failed", "machine", uuid, "device", id, "err", err)
		}
	}
	d, exists, err := p.ensureDevice(ctx, l, inst, m.Name, params, recordID)
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled: the machine was deleted, or the plugin is stopping.
			l.Warn("device creation cancelled; the unfinished device was deleted", "machine", uuid, "err", err)
			return
		}
		l.Error("creating a device for the machine failed; deleting the machine", "machine", uuid, "name", m.Name, "err", err)
		p.rollbackMachine(l, inst, m, err)
		return
	}
	if exists {
		l.Info("machine's device already exists", "machine", uuid, "device", d.ID)
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := saveMachine(sctx, inst, uuid, d); err != nil {
		l.Error("saving the machine from its device failed; deleting both", "machine", uuid, "device", d.ID, "err", err)
		p.deleteDevice(l, inst, d.ID, "machine update failed: "+err.Error())
		p.rollbackMachine(l, inst, m, err)
		return
	}
	l.Info("machine's device is ready", "machine", uuid, "device", d.ID)
}

// rollbackMachine deletes a machine whose device could not be made, as DRP
// did, and publishes the deletion.
func (p *Plugin) rollbackMachine(l *slog.Logger, inst *instance, m *models.Machine, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := pluginutil.DeleteDrpMachine(ctx, inst.api, m.UUID()); err != nil {
		l.Error("rollback: deleting the machine failed", "machine", m.UUID(), "err", err)
		return
	}
	l.Warn("rollback: deleted machine", "machine", m.UUID(), "name", m.Name, "cause", cause)
	p.publish(l, inst, EventCreateFailed, m.UUID(), map[string]any{"Machine": m, "Error": cause.Error()})
}

// setMachineParam sets one param on a machine with a patch.
func setMachineParam(ctx context.Context, inst *instance, uuid, name string, value any) error {
	old := &models.Machine{}
	if err := inst.api.Get(ctx, "machines", uuid, old); err != nil {
		return err
	}
	upd, err := models.Clone(old)
	if err != nil {
		return err
	}
	if upd.Params == nil {
		upd.Params = map[string]any{}
	}
	upd.Params[name] = value
	return inst.api.PatchTo(ctx, "machines", uuid, old, upd, nil)
}
