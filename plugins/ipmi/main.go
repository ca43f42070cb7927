// Command ipmi is the out-of-band machine control plugin provider,
// compatible with Digital Rebar's ipmi plugin: the same provider name
// (AutoStart), the same 24 machine actions with the same params, plus the
// bulkAction system action. ipmi/mode picks the driver: native (default;
// IPMI over LAN in-process), ipmitool, redfish, lpar; racadm/racadmn answer
// 501. See internal/actions for the dispatch and internal/* for the drivers.
package main

import (
	"context"
	"embed"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/ipmi/internal/actions"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bulk"
	"github.com/provisionhq/provision/pluginsdk"
)

// version is the provider version; set with -ldflags "-X main.version=...".
var version = "v4.8.0"

// contentFS is the ipmi content pack in DRP's directory format (all: keeps
// the ._<Field>.meta files).
//
//go:embed all:content
var contentFS embed.FS

// requiredFeature is the server feature DRP's plugin insists on: secure
// params (ipmi/password) reach the plugin decrypted.
const requiredFeature = "secure-param-upgrade"

// definition is what define prints (Content is added from contentFS).
func definition() *models.PluginProvider {
	return &models.PluginProvider{
		Name:             "ipmi",
		Version:          version,
		PluginVersion:    pluginsdk.PluginVersion,
		AutoStart:        true,
		HasPublish:       false,
		AvailableActions: append(actions.MachineActions(), bulk.Action()),
	}
}

// Plugin is the provider implementation: the action dispatcher plus the
// API client handed to Config (used by bulkAction).
type Plugin struct {
	d *actions.Dispatcher

	mu sync.Mutex
	c  *client.Client
}

// newPlugin builds the provider with the given driver options.
func newPlugin(opts actions.Options) *Plugin { return &Plugin{d: actions.New(opts)} }

// Config checks, as DRP's plugin does, that the server hands out decrypted
// secure params, and keeps the API client.
func (p *Plugin) Config(ctx context.Context, l *slog.Logger, c *client.Client, _ map[string]any) *models.Error {
	info, err := c.Info(ctx)
	if err != nil {
		return pluginutil.ConvertError("ipmi", 500, err)
	}
	if !slices.Contains(info.Features, requiredFeature) {
		return bmc.Error(500, "dr-provision missing %s", requiredFeature)
	}
	p.mu.Lock()
	p.c = c
	p.mu.Unlock()
	l.Info("configured", "endpoint", c.Endpoint())
	return nil
}

// Action runs a machine action or bulkAction.
func (p *Plugin) Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	if a.Command == bulk.Command {
		return p.bulk(ctx, l, a)
	}
	return p.d.Run(ctx, a.Command, a.Params)
}

// Stop closes pooled BMC sessions and pending timers.
func (p *Plugin) Stop(_ context.Context, l *slog.Logger) {
	p.d.Close()
	l.Info("stopped")
}

// bulk validates bulkAction's params and runs it.
func (p *Plugin) bulk(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	cmd, err := pluginutil.ValidateString(bulk.ParamCommand, a.Params[bulk.ParamCommand])
	if err != nil {
		return nil, bmc.BadParam("%v", err)
	}
	if !bmc.IsCommand(cmd) {
		return nil, bmc.BadParam("%s must be one of %s, got %q", bulk.ParamCommand, strings.Join(bmc.Commands(), ", "), cmd)
	}
	filter, err := pluginutil.ValidateString(bulk.ParamFilter, a.Params[bulk.ParamFilter])
	if err != nil {
		return nil, bmc.BadParam("%v", err)
	}
	filters, err := bulk.ParseFilter(filter)
	if err != nil {
		return nil, bmc.BadParam("%v", err)
	}
	conc, err := pluginutil.IntParam(a.Params, bulk.ParamConcurrency, bulk.DefaultConcurrency)
	if err != nil {
		return nil, bmc.BadParam("%v", err)
	}
	if conc < 1 || conc > bulk.MaxConcurrency {
		return nil, bmc.BadParam("%s must be between 1 and %d, got %d", bulk.ParamConcurrency, bulk.MaxConcurrency, conc)
	}
	allowEmpty, err := pluginutil.BoolParam(a.Params, bulk.ParamAllowEmpty, false)
	if err != nil {
		return nil, bmc.BadParam("%v", err)
	}
	p.mu.Lock()
	c := p.c
	p.mu.Unlock()
	if c == nil {
		return nil, bmc.Error(409, "the plugin is not configured yet (no API client)")
	}
	overrides := map[string]any{}
	for k, v := range a.Params {
		if !strings.HasPrefix(k, "ipmi/bulk-") {
			overrides[k] = v
		}
	}
	l.Info("bulk action", "command", cmd, "filter", filter, "concurrency", conc)
	return bulk.Run(ctx, bulk.ClientSource{C: c}, p.d.Run, &bulk.Request{
		Command: cmd, Filter: filter, Filters: filters, Concurrency: conc, Overrides: overrides, AllowEmpty: allowEmpty})
}

// app assembles the provider binary.
func app(impl *Plugin) *pluginsdk.App {
	return pluginsdk.InitApp("ipmi", "Provides out-of-band IPMI controls", version, definition(), impl).WithContent(contentFS)
}

func main() {
	app(newPlugin(actions.Options{Logger: slog.Default()})).Main()
}
