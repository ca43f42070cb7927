package vboxplugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/provisionhq/provision/plugins/internal/pluginutil"
)

// SATAController is the storage controller name createVm uses, as DRP does.
const SATAController = "SATA Controller"

// VMRef is one line of `VBoxManage list vms`.
type VMRef struct {
	// Name is the VM name.
	Name string
	// ID is the VM UUID, upper-cased as DRP stores it in virtualbox/id.
	ID string
}

// VMInfo is the part of `showvminfo --machinereadable` the plugin uses.
type VMInfo struct {
	// Name is the VM name.
	Name string
	// UUID is upper-cased.
	UUID string
	// State is VMState, e.g. "running" or "poweroff".
	State string
	// MACs are the NIC MACs in NIC order, lower-case colon form.
	MACs []string
	// Raw holds every key=value line.
	Raw map[string]string
}

// Running reports whether the VM holds a session that must be powered off
// before it can be unregistered or started again.
func (i *VMInfo) Running() bool {
	switch i.State {
	case "running", "paused", "stuck", "starting", "restoring", "saving":
		return true
	}
	return false
}

// VBox runs the VirtualBox operations of the plugin through a Runner.
type VBox struct {
	run Runner
	// lockedRetries and lockedDelay control the unregister retry loop.
	lockedRetries int
	lockedDelay   time.Duration
	wait          func(ctx context.Context, d time.Duration) error
}

// VBoxOptions tunes a VBox. Zero values take the defaults noted.
type VBoxOptions struct {
	// LockedRetries is how often unregistervm is tried while VirtualBox says
	// the VM is locked (default 10, as DRP).
	LockedRetries int
	// LockedDelay is the wait between those tries (default 1s). DRP meant
	// one second but wrote time.Sleep(1000), i.e. 1µs.
	LockedDelay time.Duration
	// Wait sleeps d or until ctx ends (tests record instead). Default: timer.
	Wait func(ctx context.Context, d time.Duration) error
}

// NewVBox returns a VBox using r.
func NewVBox(r Runner, o VBoxOptions) *VBox {
	if o.LockedRetries <= 0 {
		o.LockedRetries = 10
	}
	if o.LockedDelay <= 0 {
		o.LockedDelay = time.Second
	}
	if o.Wait == nil {
		o.Wait = pluginutil.Sleep
	}
	return &VBox{run: r, lockedRetries: o.LockedRetries, lockedDelay: o.LockedDelay, wait: o.Wait}
}

// listRE matches `"<name>" {<uuid>}`. DRP only accepted names made of
// [a-zA-Z0-9.-], silently skipping VMs named e.g. "my vm"; any name is
// accepted here (VBoxManage does not escape quotes inside names, hence the
// greedy match up to the last `" {`).
var listRE = regexp.MustCompile(`^"(.*)" \{([0-9a-fA-F-]+)\}$`)

// ListVMs runs `list vms`. Lines that do not match are skipped.
func (v *VBox) ListVMs(ctx context.Context) ([]VMRef, error) {
	out, _, err := v.run.Run(ctx, "list", "vms")
	if err != nil {
		return nil, err
	}
	var vms []VMRef
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), maxOutput)
	for sc.Scan() {
		m := listRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		vms = append(vms, VMRef{Name: m[1], ID: strings.ToUpper(m[2])})
	}
	return vms, nil
}

// ParseVMInfo parses `showvminfo --machinereadable` output. Keys and values
// are unquoted; lines without '=' (DRP panicked on them) are skipped.
func ParseVMInfo(out string) *VMInfo {
	info := &VMInfo{Raw: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), maxOutput)
	for sc.Scan() {
		k, val, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		k, val = strings.Trim(strings.TrimSpace(k), `"`), strings.Trim(strings.TrimSpace(val), `"`)
		if k == "" {
			continue
		}
		info.Raw[k] = val
	}
	info.Name = info.Raw["name"]
	info.UUID = strings.ToUpper(info.Raw["UUID"])
	info.State = info.Raw["VMState"]
	type nic struct {
		n   int
		mac string
	}
	var nics []nic
	for k, val := range info.Raw {
		num, found := strings.CutPrefix(k, "macaddress")
		if !found {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if mac, ok := FormatMAC(val); ok {
			nics = append(nics, nic{n, mac})
		}
	}
	sort.Slice(nics, func(a, b int) bool { return nics[a].n < nics[b].n })
	for _, n := range nics {
		info.MACs = append(info.MACs, n.mac)
	}
	return info
}

// FormatMAC turns VirtualBox's 080027C8A5B1 into 08:00:27:c8:a5:b1. Values
// that are not 12 hex digits are rejected instead of mangled.
func FormatMAC(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 12 {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if !isHex(s[i]) || !isHex(s[i+1]) {
			return "", false
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+2])
	}
	return b.String(), true
}

func isHex(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') }

// ShowVMInfo runs `showvminfo <idOrName> --machinereadable`.
func (v *VBox) ShowVMInfo(ctx context.Context, idOrName string) (*VMInfo, error) {
	out, _, err := v.run.Run(ctx, "showvminfo", idOrName, "--machinereadable")
	if err != nil {
		return nil, err
	}
	info := ParseVMInfo(out)
	if info.UUID == "" {
		return nil, fmt.Errorf("showvminfo %s: no UUID in the output", idOrName)
	}
	return info, nil
}

// StartVM runs `startvm <id>`, returning its stdout.
func (v *VBox) StartVM(ctx context.Context, id string) (string, error) {
	out, _, err := v.run.Run(ctx, "startvm", id)
	return out, err
}

// PowerOff runs `controlvm <id> poweroff`.
func (v *VBox) PowerOff(ctx context.Context, id string) (string, error) {
	out, _, err := v.run.Run(ctx, "controlvm", id, "poweroff")
	return out, err
}

// Reset runs `controlvm <id> reset`.
func (v *VBox) Reset(ctx context.Context, id string) (string, error) {
	out, _, err := v.run.Run(ctx, "controlvm", id, "reset")
	return out, err
}

// ErrAlreadyRunning is returned by StartIfStopped for a running VM.
var ErrAlreadyRunning = errors.New("startvm failed: Machine is already running")

// StartIfStopped starts the VM unless showvminfo says it is running (DRP's
// startVboxVm).
func (v *VBox) StartIfStopped(ctx context.Context, id string) error {
	info, err := v.ShowVMInfo(ctx, id)
	if err != nil {
		return err
	}
	if info.State == "running" {
		return ErrAlreadyRunning
	}
	_, err = v.StartVM(ctx, id)
	return err
}

// Destroy powers the VM off when it is running and unregisters it with its
// disks (`unregistervm <id> --delete`), retrying while VirtualBox reports
// the VM locked (the session of a just powered-off VM takes a moment to
// close). DRP's destroyVboxVm.
func (v *VBox) Destroy(ctx context.Context, id string) error {
	info, err := v.ShowVMInfo(ctx, id)
	if err != nil {
		return err
	}
	if info.Running() {
		if _, err := v.PowerOff(ctx, id); err != nil {
			return err
		}
	}
	for try := 1; try <= v.lockedRetries; try++ {
		out, errOut, err := v.run.Run(ctx, "unregistervm", id, "--delete")
		if err == nil {
			return nil
		}
		if !strings.Contains(out, "while it is locked") && !strings.Contains(errOut, "while it is locked") {
			return err
		}
		if try == v.lockedRetries {
			break
		}
		if werr := v.wait(ctx, v.lockedDelay); werr != nil {
			return fmt.Errorf("destroy %s: %w", id, werr)
		}
	}
	return fmt.Errorf("Failed to destroy VM because it is locked: %s", id)
}

// VMSpec is what CreateVM needs.
type VMSpec struct {
	// Name of the new VM.
	Name string
	// UUID to give the VM ("" lets VirtualBox choose).
	UUID string
	// CPUs, DiskMB, MemMB and VRAMMB size the VM.
	CPUs, DiskMB, MemMB, VRAMMB int
	// VMPath, when set, is the directory for disks (<VMPath>/<Name>/<Name>.vdi).
	VMPath string
}

// DiskFile is the .vdi path rule of DRP: <name>.vdi, or
// <vm-path>/<name>/<name>.vdi when vm-path is set.
func (s VMSpec) DiskFile() string {
	if s.VMPath == "" {
		return s.Name + ".vdi"
	}
	return path.Join(s.VMPath, s.Name, s.Name+".vdi")
}

var createdUUIDRE = regexp.MustCompile(`UUID: ([a-fA-F0-9-]+)`)

// CreateVM runs createvm, storagectl, createmedium, storageattach and
// modifyvm with DRP's exact arguments. Any failure after createvm removes
// the half-built VM (and a created disk that could not be attached). It
// returns the new VM's UUID, upper-cased.
func (v *VBox) CreateVM(ctx context.Context, s VMSpec) (string, error) {
	args := []string{"createvm", "--name", s.Name, "--register"}
	if s.UUID != "" {
		args = append(args, "--uuid", s.UUID)
	}
	out, _, err := v.run.Run(ctx, args...)
	if err != nil {
		return "", err
	}
	m := createdUUIDRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("createvm %s: no UUID in the output", s.Name)
	}
	id := strings.ToUpper(m[1])
	fail := func(err error) (string, error) {
		if derr := v.Destroy(context.WithoutCancel(ctx), id); derr != nil {
			return "", fmt.Errorf("%w (and removing the half-built VM failed: %v)", err, derr)
		}
		return "", err
	}
	disk := s.DiskFile()
	if _, _, err := v.run.Run(ctx, "storagectl", s.Name, "--name", SATAController, "--add", "sata", "--controller", "IntelAHCI"); err != nil {
		return fail(err)
	}
	if _, _, err := v.run.Run(ctx, "createmedium", "disk", "--filename", disk, "--size", strconv.Itoa(s.DiskMB)); err != nil {
		return fail(err)
	}
	if _, _, err := v.run.Run(ctx, "storageattach", s.Name, "--storagectl", SATAController, "--port", "0", "--device", "0",
		"--type", "hdd", "--medium", disk); err != nil {
		// The disk is not attached, so unregistervm --delete would leave it.
		_, _, _ = v.run.Run(context.WithoutCancel(ctx), "closemedium", "disk", disk, "--delete")
		return fail(err)
	}
	if _, _, err := v.run.Run(ctx, "modifyvm", s.Name, "--ioapic", "on", "--cpus", strconv.Itoa(s.CPUs),
		"--boot1", "net", "--boot2", "disk", "--boot3", "none", "--boot4", "none",
		"--memory", strconv.Itoa(s.MemMB), "--vram", strconv.Itoa(s.VRAMMB),
		"--nic1", "hostonly", "--hostonlyadapter1", "vboxnet0", "--nictype1", "82545EM",
		"--nic2", "nat", "--nictype2", "82545EM"); err != nil {
		return fail(err)
	}
	return id, nil
}
