// Package ipmitool is the ipmi plugin's "ipmitool" driver: it runs DRP's
// exact ipmitool command lines (sticky bootparam pre-command, efiboot and
// persistent options, raw bytes for UEFI persistent boot) except that the
// password travels in the IPMI_PASSWORD environment variable (-E), never on
// argv. Every run is bounded by ipmitool's own -N/-R retransmission
// settings and by the action's context; a missing ipmitool binary is a clear
// error.
package ipmitool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
)

// Mode is the ipmi/mode value served by this driver.
const Mode = "ipmitool"

// Options tunes the driver; zero values get defaults.
type Options struct {
	// Path is the ipmitool binary (default: "ipmitool" looked up in PATH).
	Path string
	// Timeout is ipmitool's per-try wait (-N, whole seconds, default 2s).
	Timeout time.Duration
	// Retries is ipmitool's retransmission count (-R, default 2).
	Retries int
}

// Driver runs ipmitool. It is stateless and safe for concurrent use.
type Driver struct {
	opts Options
}

// New returns a driver.
func New(opts Options) *Driver {
	if opts.Path == "" {
		opts.Path = "ipmitool"
	}
	if opts.Timeout < time.Second {
		opts.Timeout = 2 * time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 2
	}
	return &Driver{opts: opts}
}

// Mode implements bmc.Driver.
func (d *Driver) Mode() string { return Mode }

// stickyBoot is DRP's pre-command for every boot action: ask the BMC not
// to clear the boot flags on power-up, reset, watchdog or timeout. Each
// call returns a new slice, so no caller can change another's command.
func stickyBoot() []string {
	return []string{"chassis", "bootparam", "set", "bootflag", "none", "options=no-power,no-reset,no-watchdog,no-timeout"}
}

// Commands returns the ipmitool argument lists (after the connection
// options) that DRP runs for req, in order.
func Commands(req *bmc.Request) ([][]string, error) {
	uefi := req.UEFI()
	switch req.Command {
	case bmc.PowerStatus:
		return [][]string{{"chassis", "power", "status"}}, nil
	case bmc.PowerOn:
		return [][]string{{"chassis", "power", "on"}}, nil
	case bmc.PowerOff:
		return [][]string{{"chassis", "power", "off"}}, nil
	case bmc.PowerCycle:
		return [][]string{{"chassis", "power", "cycle"}}, nil
	case bmc.NextBootPXE, bmc.NextBootDisk, bmc.NextBootCD:
		dev := map[string]string{bmc.NextBootPXE: "pxe", bmc.NextBootDisk: "disk", bmc.NextBootCD: "cdrom"}[req.Command]
		args := []string{"chassis", "bootdev", dev}
		if uefi {
			args = append(args, "options=efiboot")
		}
		return [][]string{stickyBoot(), args}, nil
	case bmc.ForceBootPXE, bmc.ForceBootDisk:
		if uefi {
			// Older ipmitool cannot combine efiboot and persistent: write
			// boot flags (param 5) directly: valid|persistent|EFI, device.
			dev := map[string]string{bmc.ForceBootPXE: "0x04", bmc.ForceBootDisk: "0x08"}[req.Command]
			return [][]string{stickyBoot(), {"raw", "0x00", "0x08", "0x05", "0xe0", dev, "0x00", "0x00", "0x00"}}, nil
		}
		dev := map[string]string{bmc.ForceBootPXE: "pxe", bmc.ForceBootDisk: "disk"}[req.Command]
		return [][]string{stickyBoot(), {"chassis", "bootdev", dev, "options=persistent"}}, nil
	case bmc.Identify:
		if req.IdentifySeconds <= 0 {
			return [][]string{{"chassis", "identify", "force"}}, nil
		}
		return [][]string{{"chassis", "identify", strconv.Itoa(min(req.IdentifySeconds, 255))}}, nil
	}
	return nil, errUnsupported
}

var errUnsupported = errors.New("unsupported")

// Do implements bmc.Driver.
func (d *Driver) Do(ctx context.Context, req *bmc.Request) (any, *models.Error) {
	cmds, err := Commands(req)
	if err != nil {
		return nil, bmc.NotImplemented(Mode, req.Command, "ipmitool has no equivalent; use ipmi/mode redfish")
	}
	var out string
	for _, args := range cmds {
		var merr *models.Error
		out, merr = d.run(ctx, req.Target, args)
		if merr != nil {
			return nil, merr
		}
	}
	if req.Command == bmc.PowerStatus {
		return ParsePowerStatus(out), nil
	}
	return out, nil
}

// ParsePowerStatus turns "Chassis Power is on" into a bmc.PowerState.
func ParsePowerStatus(out string) bmc.PowerState {
	raw := strings.TrimSpace(out)
	st := bmc.PowerState{Power: "unknown", Raw: raw}
	switch {
	case strings.HasSuffix(raw, " on"):
		st.Power = "on"
	case strings.HasSuffix(raw, " off"):
		st.Power = "off"
	}
	return st
}

// Argv returns the full argument vector for one ipmitool run (without the
// binary). It never contains the password.
func (d *Driver) Argv(t bmc.Target, args []string) []string {
	intf := "lanplus"
	if t.LAN15 {
		intf = "lan"
	}
	argv := []string{"-v", "-I", intf, "-H", t.Address, "-U", t.Username, "-E"}
	if t.Port != 0 {
		argv = append(argv, "-p", strconv.Itoa(t.Port))
	}
	argv = append(argv, "-N", strconv.Itoa(int(d.opts.Timeout/time.Second)), "-R", strconv.Itoa(d.opts.Retries))
	return append(argv, args...)
}

// run executes one ipmitool command and classifies its failure.
func (d *Driver) run(ctx context.Context, t bmc.Target, args []string) (string, *models.Error) {
	cmd := exec.CommandContext(ctx, d.opts.Path, d.Argv(t, args)...)
	cmd.Env = append(environWithout("IPMI_PASSWORD"), "IPMI_PASSWORD="+t.Password)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return "", bmc.Error(503, "ipmi/mode ipmitool needs the ipmitool program (%s), which is not installed on the plugin host: install it (Debian/Ubuntu: apt-get install ipmitool) or use ipmi/mode native", d.opts.Path)
	}
	text := strings.TrimSpace(stdout.String() + "\n" + filterNoise(stderr.String()))
	if ctx.Err() != nil {
		return "", bmc.NoAnswer(t, fmt.Sprintf("ipmitool %s did not finish before the action deadline: %s", strings.Join(args, " "), text))
	}
	return "", Classify(t, args, text)
}

// Classify maps ipmitool's failure output to the plugin's error codes.
func Classify(t bmc.Target, args []string, text string) *models.Error {
	what := "ipmitool " + strings.Join(args, " ") + ": " + text
	switch {
	case mentionsAuthFailure(text):
		return bmc.Unauthorized(t, what)
	case mentionsNoAnswer(text):
		return bmc.NoAnswer(t, what)
	}
	return bmc.BMCFailed(t, what)
}

// mentionsAuthFailure reports whether ipmitool's output says the BMC
// refused the credentials or the privilege level.
func mentionsAuthFailure(text string) bool {
	return containsAny(text, "RAKP 2 HMAC is invalid", "RAKP 2 message indicates an error",
		"RAKP 4 message has invalid integrity check value", "unauthorized name", "Invalid user name",
		"Activate Session error", "Invalid Session Privilege", "insufficient privilege")
}

// mentionsNoAnswer reports whether ipmitool's output says nothing (or
// nothing in time) answered.
func mentionsNoAnswer(text string) bool {
	return containsAny(text, "Get Auth Capabilities error", "No response", "timeout", "Unable to establish", "Connection refused")
}

// filterNoise drops ipmitool -v chatter that is not about the failure.
func filterNoise(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), ">"))
		if l == "" || strings.HasPrefix(l, "Loading IANA PEN Registry") || strings.HasPrefix(l, "Using best available cipher suite") ||
			strings.HasPrefix(l, "Running Get VSO") || strings.HasPrefix(l, "Discovered IPMB address") ||
			l == "Invalid completion code received: Invalid command" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// environWithout is os.Environ minus the named variable.
func environWithout(name string) []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
