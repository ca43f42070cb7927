package packet

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// PublishFunc publishes an event on the provision event bus (the SDK's
// pluginsdk.Publish; tests record them).
type PublishFunc func(ctx context.Context, typ, action, key string, obj any) error

// Options configures a Plugin.
type Options struct {
	// Version is the provider version (User-Agent of Metal API calls).
	Version string
	// FileServer is RS_FILESERVER; "<FileServer>/default.ipxe" is the iPXE
	// script of new devices when packet/ipxe-script-url is unset.
	FileServer string
	// Publish publishes the plugin's own events (deleted machines). When
	// nil, events go through the provision API (POST /events) if the client
	// supports it, and are only logged otherwise.
	Publish PublishFunc
	// Transport is the HTTP transport of Metal API calls (tests: TLS fakes).
	Transport http.RoundTripper
	// MaxCreates bounds device creations running at once for machine
	// create events; 0 means 8. Further events wait, up to MaxPending.
	MaxCreates int
	// MaxPending bounds queued creations; 0 means 256. Beyond it a create
	// event is rejected (logged and published).
	MaxPending int
}

// EventType is the Type of the events the plugin publishes itself.
const EventType = ProviderName

// Actions of the events the plugin publishes.
const (
	// EventDeleteMissing: Config deleted a machine whose device is gone.
	EventDeleteMissing = "delete-missing"
	// EventCreateFailed: a machine create event could not get a device and
	// the machine was deleted (DRP's rollback).
	EventCreateFailed = "create-failed"
	// EventCreateRejected: too many creations were queued.
	EventCreateRejected = "create-rejected"
)

// instance is the state built by one successful Config.
type instance struct {
	st    *settings
	metal *metal.Client
	api   pluginutil.API
	// defaultProject is packet/project-id or the first project listed.
	defaultProject string
	// base carries the values (the SDK's host connection) of the Config
	// call's context without its cancellation, for publishing later.
	base context.Context
}

// Plugin implements the packet-ipmi provider. Create it with New.
type Plugin struct {
	opts Options

	mu       sync.Mutex
	cur      *instance
	creating map[string]context.CancelFunc // machine UUID -> cancel of its creation
	pending  int
	// stopped is set by Stop before it waits for bg; startCreate adds no
	// work to bg once it is set, so no bg.Add races Stop's bg.Wait.
	stopped bool

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	sem      chan struct{}
}

// New returns an unconfigured plugin.
func New(opts Options) *Plugin {
	if opts.MaxCreates <= 0 {
		opts.MaxCreates = 8
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 256
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Plugin{
		opts:     opts,
		creating: map[string]context.CancelFunc{},
		bgCtx:    ctx,
		bgCancel: cancel,
		sem:      make(chan struct{}, opts.MaxCreates),
	}
}

// current returns the configured instance, nil before the first Config.
func (p *Plugin) current() *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Config is the SDK entry point: it configures the plugin with the Plugin
// object's params and the API client built from RS_ENDPOINT/RS_TOKEN.
func (p *Plugin) Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error {
	var api pluginutil.API
	if c != nil {
		api = c
	}
	return p.Configure(ctx, l, api, params)
}

// Configure is Config with the REST client as an interface. It validates the
// params, lists the Metal projects and devices, deletes machines whose
// device is gone (only with packet/delete-missing) and imports unknown
// devices (only with packet/import-existing). Nothing is changed when the
// params are invalid or the device listing fails.
func (p *Plugin) Configure(ctx context.Context, l *slog.Logger, api pluginutil.API, params map[string]any) *models.Error {
	if api == nil {
		return pluginutil.MakeError("unknown", http.StatusInternalServerError, "no provision API client: RS_ENDPOINT/RS_TOKEN are needed")
	}
	name := instanceName(params)
	st, err := parseSettings(paramSource{ctx: ctx, l: l, api: api, name: name, config: params})
	if err != nil {
		return badRequest(name, "%s", err)
	}
	mc, err := metal.New(metal.Options{URL: st.apiURL, APIKey: st.apiKey, Timeout: st.apiTimeout,
		UserAgent: "provision-packet-ipmi/" + p.opts.Version, Transport: p.opts.Transport})
	if err != nil {
		return badRequest(name, "%s: %s", ParamAPIURL, err)
	}
	inst := &instance{st: st, metal: mc, api: api, base: context.WithoutCancel(ctx)}

	projects, err := mc.Projects(ctx)
	if err != nil {
		return failed(name, "get projects", err)
	}
	if len(projects) > 0 {
		inst.defaultProject = projects[0].ID
	}
	if st.projectID != "" {
		inst.defaultProject = st.projectID
	}
	devices := map[string]*metal.Device{}
	var order []string
	for _, proj := range projects {
		devs, err := mc.ProjectDevices(ctx, proj.ID)
		if err != nil {
			return failed(name, "get devices for "+proj.ID, err)
		}
		for i := range devs {
			d := &devs[i]
			if d.ProjectID == "" {
				d.ProjectID = proj.ID
			}
			if _, seen := devices[d.ID]; !seen {
				order = append(order, d.ID)
			}
			devices[d.ID] = d
		}
	}

	var machines []*models.Machine
	if err := api.List(ctx, "machines", &machines); err != nil {
		return pluginutil.MakeError(name, codeFor(err), "Failed to get machines: %s", err)
	}
	known := map[string]bool{}
	for _, m := range machines {
		if id, _ := m.Params[ParamUUID].(string); id != "" {
			known[id] = true
		}
	}

	if st.deleteMissing {
		if e := p.deleteMissing(ctx, l, inst, machines, devices); e != nil {
			return e
		}
	}
	if st.importExisting {
		if e := p.importDevices(ctx, l, inst, order, devices, known); e != nil {
			return e
		}
	}

	p.mu.Lock()
	p.cur = inst
	p.mu.Unlock()
	l.Info("configured", "plugin", name, "api", st.apiURL, "projects", len(projects), "devices", len(devices),
		"import-existing", st.importExisting, "delete-missing", st.deleteMissing)
	return nil
}

// instanceName is the plugin instance's name: params["Name"], which the
// host adds to every /config body as DRP's does, or "unknown" (DRP's
// fallback) when a host leaves it out.
func instanceName(params map[string]any) string {
	if n, ok := params["Name"].(string); ok && n != "" {
		return n
	}
	return "unknown"
}

// deleteMissing deletes the machines this instance manages (machine-plugin
// is its name) whose packet/uuid names no listed device. Each deletion is
// logged and published.
func (p *Plugin) deleteMissing(ctx context.Context, l *slog.Logger, inst *instance, machines []*models.Machine, devices map[string]*metal.Device) *models.Error {
	name := inst.st.name
	for _, m := range machines {
		id, _ := m.Params[ParamUUID].(string)
		owner, _ := m.Params[ParamMachinePlugin].(string)
		if id == "" || owner != name {
			continue
		}
		if _, ok := devices[id]; ok {
			continue
		}
		if err := pluginutil.DeleteDrpMachine(ctx, inst.api, m.UUID()); err != nil {
			return pluginutil.MakeError(name, codeFor(err), "Failed to delete machine %s whose device %s is gone: %s", m.Name, id, err)
		}
		l.Warn("deleted machine whose Metal device is gone", "machine", m.UUID(), "name", m.Name, "device", id, "param", ParamDeleteMissing)
		p.publish(l, inst, EventDeleteMissing, m.UUID(), m)
	}
	return nil
}

// importDevices creates a machine for every listed device no machine has
// as packet/uuid. It imports what it can and reports every failure.
func (p *Plugin) importDevices(ctx context.Context, l *slog.Logger, inst *instance, order []string, devices map[string]*metal.Device, known map[string]bool) *models.Error {
	name := inst.st.name
	var errs *models.Error
	for _, id := range order {
		if known[id] {
			continue
		}
		d := devices[id]
		m := machineFromDevice(d, name)
		if err := inst.api.Create(ctx, "machines", m, nil); err != nil {
			if errs == nil {
				errs = pluginutil.MakeError(name, codeFor(err), "Command failed: create device for %s:%s %s", d.ProjectID, d.ID, err)
			} else {
				errs.Errorf("Command failed: create device for %s:%s %s", d.ProjectID, d.ID, err)
			}
			continue
		}
		l.Info("imported Metal device", "device", d.ID, "machine", m.Name)
	}
	return errs
}

// publish sends one of the plugin's own events; failures are only logged.
// It runs under the Config call's context values (the SDK finds its host
// connection there), with its own deadline.
func (p *Plugin) publish(l *slog.Logger, inst *instance, action, key string, obj any) {
	ctx, cancel := context.WithTimeout(inst.base, 30*time.Second)
	defer cancel()
	var err error
	switch {
	case p.opts.Publish != nil:
		err = p.opts.Publish(ctx, EventType, action, key, obj)
	default:
		pe, ok := inst.api.(interface {
			PostEvent(context.Context, *models.Event) error
		})
		if !ok {
			return
		}
		err = pe.PostEvent(ctx, &models.Event{Time: time.Now(), Type: EventType, Action: action, Key: key, Object: obj})
	}
	if err != nil {
		l.Warn("publishing event failed", "type", EventType, "action", action, "key", key, "err", err)
	}
}

// SelectEvents implements the SDK's EventSelector: machine creations and
// deletions.
func (p *Plugin) SelectEvents(ctx context.Context, l *slog.Logger) []string { return EventFilters() }

// Stop refuses further device creations, cancels those in progress (each
// deletes its unfinished device) and waits for them until ctx ends.
func (p *Plugin) Stop(ctx context.Context, l *slog.Logger) {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.bgCancel()
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.Warn("stop: device creations still running", "err", ctx.Err())
	}
}

// Wait blocks until background device creations started by create events
// have finished, or ctx ends.
func (p *Plugin) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for device creations: %w", ctx.Err())
	}
}
