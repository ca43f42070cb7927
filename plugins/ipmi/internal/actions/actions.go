// Package actions turns an ipmi plugin action (command + params as the
// host sends them) into a driver call: it defines the 24 machine actions
// with DRP's names and Required/Optional params, validates the params (any
// numeric type, clear 400s), picks the driver by ipmi/mode, bounds the whole
// action with a deadline and turns a driver panic into a 500.
package actions

import (
	"context"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/ipmitool"
	"github.com/provisionhq/provision/plugins/ipmi/internal/lpar"
	"github.com/provisionhq/provision/plugins/ipmi/internal/native"
	"github.com/provisionhq/provision/plugins/ipmi/internal/redfish"
)

// Param names the actions read.
const (
	ParamUsername         = "ipmi/username"
	ParamPassword         = "ipmi/password"
	ParamAddress          = "ipmi/address"
	ParamMode             = "ipmi/mode"
	ParamPortIPMItool     = "ipmi/port-ipmitool"
	ParamPortRacadm       = "ipmi/port-racadm"
	ParamPortRedfish      = "ipmi/port-redfish"
	ParamPortLpar         = "ipmi/port-lpar"
	ParamLparID           = "ipmi/lpar-id"
	ParamIdentifyDuration = "ipmi/identify-duration"
	ParamMediaURL         = "ipmi/virtual-media-url"
	ParamMediaBoot        = "ipmi/virtual-media-boot"
	ParamForceProtocol    = "ipmi/force-protocol"
	ParamBIOSMode         = "detected-bios-mode"
)

// Modes returns the ipmi/mode values (a new slice on every call);
// DefaultMode is the content pack default.
func Modes() []string {
	return []string{native.Mode, ipmitool.Mode, redfish.Mode, "racadm", "racadmn", lpar.Mode}
}

// DefaultMode is used when ipmi/mode is absent.
const DefaultMode = native.Mode

// DefaultIdentifySeconds is ipmi/identify-duration's default.
const DefaultIdentifySeconds = 60

// MachineActions returns the 24 machine actions with DRP's Required and
// Optional params. ipmi/force-protocol is appended to every OptionalParams
// (after DRP's entries) so the native and ipmitool drivers can be asked for
// IPMI v1.5 LAN per machine.
func MachineActions() []models.AvailableAction {
	cmds := bmc.Commands()
	out := make([]models.AvailableAction, 0, len(cmds))
	for _, cmd := range cmds {
		req := []string{ParamUsername, ParamPassword, ParamAddress, ParamMode}
		opt := []string{ParamPortIPMItool, ParamPortRacadm, ParamPortRedfish, ParamPortLpar, ParamLparID}
		switch {
		case bmc.IsBootCommand(cmd):
			req = append([]string{ParamBIOSMode}, req...)
		case cmd == bmc.Identify:
			opt = append(opt, ParamIdentifyDuration)
		case cmd == bmc.MountVirtualMedia:
			req = append(req, ParamMediaURL, ParamMediaBoot)
		}
		opt = append(opt, ParamForceProtocol)
		out = append(out, models.AvailableAction{Model: "machines", Command: cmd, RequiredParams: req, OptionalParams: opt})
	}
	return out
}

// Options configures the drivers and the per-action deadline.
type Options struct {
	// Native configures the built-in IPMI LAN driver (ipmi/mode native).
	Native native.Options
	// IPMItool configures the ipmitool driver (ipmi/mode ipmitool).
	IPMItool ipmitool.Options
	// Redfish configures the Redfish driver (ipmi/mode redfish).
	Redfish redfish.Options
	// Lpar configures the IBM HMC driver (ipmi/mode lpar).
	Lpar lpar.Options
	// ActionTimeout bounds one machine action (default 2 minutes).
	ActionTimeout time.Duration
	// Logger receives per-action debug lines; nil discards.
	Logger *slog.Logger
}

// Dispatcher runs machine actions. It owns the drivers' state (pooled IPMI
// sessions, identify timers); Close releases it.
type Dispatcher struct {
	drivers map[string]bmc.Driver
	native  *native.Driver
	redfish *redfish.Driver
	timeout time.Duration
	log     *slog.Logger
}

// New builds a dispatcher with every driver.
func New(opts Options) *Dispatcher {
	if opts.ActionTimeout <= 0 {
		opts.ActionTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Native.Logger == nil {
		opts.Native.Logger = opts.Logger
	}
	if opts.Redfish.Logger == nil {
		opts.Redfish.Logger = opts.Logger
	}
	n, rf := native.New(opts.Native), redfish.New(opts.Redfish)
	racadm := unimplemented{mode: "racadm", why: "it needs Dell's racadm program, which only takes the password on its command line; iDRACs speak Redfish and IPMI: use ipmi/mode redfish or native"}
	return &Dispatcher{
		drivers: map[string]bmc.Driver{
			native.Mode: n, ipmitool.Mode: ipmitool.New(opts.IPMItool), redfish.Mode: rf,
			"racadm": racadm, "racadmn": unimplemented{mode: "racadmn", why: racadm.why}, lpar.Mode: lpar.New(opts.Lpar),
		},
		native: n, redfish: rf, timeout: opts.ActionTimeout, log: opts.Logger,
	}
}

// Close ends pooled sessions and pending timers.
func (d *Dispatcher) Close() {
	d.native.Close()
	d.redfish.Close()
}

// unimplemented answers 501 for every action of a mode.
type unimplemented struct{ mode, why string }

// Mode implements bmc.Driver: the mode that has no driver.
func (u unimplemented) Mode() string { return u.mode }

// Do implements bmc.Driver by refusing every action with 501 and why.
func (u unimplemented) Do(_ context.Context, req *bmc.Request) (any, *models.Error) {
	return nil, bmc.NotImplemented(u.mode, req.Command, u.why)
}

// Run executes one machine action.
func (d *Dispatcher) Run(ctx context.Context, command string, params map[string]any) (out any, merr *models.Error) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("ipmi action panicked", "command", command, "panic", r, "stack", string(debug.Stack()))
			out, merr = nil, bmc.Error(500, "ipmi action %s failed internally: %v", command, r)
		}
	}()
	if !bmc.IsCommand(command) {
		return nil, bmc.Error(404, "Action %s not supported on ipmi plugin", command)
	}
	req, merr := ParseRequest(command, params)
	if merr != nil {
		return nil, merr
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	start := time.Now()
	out, merr = d.drivers[req.Mode].Do(ctx, req)
	d.log.Debug("ipmi action", "command", command, "mode", req.Mode, "bmc", req.Target, "took", time.Since(start), "error", merr)
	return out, merr
}

// ParseRequest validates params for command.
func ParseRequest(command string, params map[string]any) (*bmc.Request, *models.Error) {
	bad := func(err error) *models.Error { return bmc.BadParam("%s", err.Error()) }
	req := &bmc.Request{Command: command}
	mode, err := pluginutil.StringParam(params, ParamMode, DefaultMode)
	if err != nil {
		return nil, bad(err)
	}
	if mode == "" {
		mode = DefaultMode
	}
	if modes := Modes(); !slices.Contains(modes, mode) {
		return nil, bmc.BadParam("Invalid mode: %s (ipmi/mode must be one of %s)", mode, strings.Join(modes, ", "))
	}
	req.Mode = mode
	for _, p := range []struct {
		name string
		dst  *string
	}{{ParamAddress, &req.Target.Address}, {ParamUsername, &req.Target.Username}, {ParamPassword, &req.Target.Password}} {
		v, err := pluginutil.ValidateString(p.name, params[p.name])
		if err != nil {
			return nil, bad(err)
		}
		*p.dst = v
	}
	if strings.TrimSpace(req.Target.Address) == "" {
		return nil, bmc.BadParam("Must specify %s (the BMC's address)", ParamAddress)
	}
	portParam := map[string]string{native.Mode: ParamPortIPMItool, ipmitool.Mode: ParamPortIPMItool, redfish.Mode: ParamPortRedfish,
		lpar.Mode: ParamPortLpar, "racadm": ParamPortRacadm, "racadmn": ParamPortRacadm}[mode]
	port, err := pluginutil.IntParam(params, portParam, 0)
	if err != nil {
		return nil, bad(err)
	}
	if port < 0 || port > 65535 {
		return nil, bmc.BadParam("%s must be between 0 and 65535, got %d", portParam, port)
	}
	req.Target.Port = port
	proto, err := pluginutil.StringParam(params, ParamForceProtocol, "")
	if err != nil {
		return nil, bad(err)
	}
	switch proto {
	case "", "v4", "v6", "lanplus":
	case "lan":
		req.Target.LAN15 = true
	default:
		return nil, bmc.BadParam("%s must be one of v4, v6, lan, lanplus; got %q", ParamForceProtocol, proto)
	}
	if req.LparID, err = pluginutil.StringParam(params, ParamLparID, ""); err != nil {
		return nil, bad(err)
	}
	if bmc.IsBootCommand(command) {
		bios, err := pluginutil.StringParam(params, ParamBIOSMode, "legacy")
		if err != nil {
			return nil, bad(err)
		}
		switch strings.ToLower(bios) {
		case "uefi":
			req.BIOSMode = "uefi"
		case "legacy", "bios", "":
			req.BIOSMode = "legacy"
		default:
			return nil, bmc.BadParam("%s must be uefi or legacy, got %q", ParamBIOSMode, bios)
		}
	}
	if command == bmc.Identify {
		if req.IdentifySeconds, err = pluginutil.IntParam(params, ParamIdentifyDuration, DefaultIdentifySeconds); err != nil {
			return nil, bad(err)
		}
	}
	if command == bmc.MountVirtualMedia {
		if req.VirtualMediaURL, err = pluginutil.ValidateString(ParamMediaURL, params[ParamMediaURL]); err != nil {
			return nil, bad(err)
		}
		if strings.TrimSpace(req.VirtualMediaURL) == "" {
			return nil, bmc.BadParam("Must specify %s (the ISO URL the BMC should mount)", ParamMediaURL)
		}
		if req.VirtualMediaBoot, err = pluginutil.BoolParam(params, ParamMediaBoot, false); err != nil {
			return nil, bad(err)
		}
	}
	return req, nil
}
