// Package ipmitest is the test harness the native and ipmitool driver tests
// share: a reference BMC per test, the target that reaches it, a bounded
// Do, and the boot-device cases every IPMI driver must get right. Both
// drivers speak IPMI to the same bmcsim, so they are held to the same
// checks from one place. It is test support code: nothing in the plugin
// binary uses it.
package ipmitest

import (
	"context"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
)

// StartBMC runs a reference BMC for the rest of the test.
func StartBMC(t *testing.T, opts bmcsim.Options) *bmcsim.BMC {
	t.Helper()
	s, err := bmcsim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Target is the address and default ADMIN/ADMIN login of s.
func Target(s *bmcsim.BMC) bmc.Target {
	return bmc.Target{Address: s.Host, Port: s.Port, Username: "ADMIN", Password: "ADMIN"}
}

// Do runs req on d within timeout and fails the test on an error.
func Do(t *testing.T, d bmc.Driver, req *bmc.Request, timeout time.Duration) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := d.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Command, err)
	}
	return out
}

// BootCase is one boot action in one BIOS mode and the boot flags the BMC
// must end up with.
type BootCase struct {
	// Command and BIOSMode are the action and detected-bios-mode sent.
	Command, BIOSMode string
	// Device is the boot device the BMC must select.
	Device types.BootDeviceSelector
	// Persistent and EFI are the boot flag bits the BMC must end up with.
	Persistent, EFI bool
}

// BootCases are the boot actions of DRP's ipmi plugin in both BIOS modes:
// next* set the device for one boot, forceboot* make it persistent.
func BootCases() []BootCase {
	return []BootCase{
		{bmc.NextBootPXE, "legacy", types.BootDeviceSelectorForcePXE, false, false},
		{bmc.NextBootPXE, "uefi", types.BootDeviceSelectorForcePXE, false, true},
		{bmc.NextBootDisk, "legacy", types.BootDeviceSelectorForceHardDrive, false, false},
		{bmc.NextBootDisk, "uefi", types.BootDeviceSelectorForceHardDrive, false, true},
		{bmc.NextBootCD, "legacy", types.BootDeviceSelectorForceCDROM, false, false},
		{bmc.NextBootCD, "uefi", types.BootDeviceSelectorForceCDROM, false, true},
		{bmc.ForceBootPXE, "legacy", types.BootDeviceSelectorForcePXE, true, false},
		{bmc.ForceBootPXE, "uefi", types.BootDeviceSelectorForcePXE, true, true},
		{bmc.ForceBootDisk, "legacy", types.BootDeviceSelectorForceHardDrive, true, false},
		{bmc.ForceBootDisk, "uefi", types.BootDeviceSelectorForceHardDrive, true, true},
	}
}

// RunBootCases runs every BootCase through d against s as a subtest and
// checks the boot flags the BMC was left with, then runs each of also.
func RunBootCases(t *testing.T, s *bmcsim.BMC, d bmc.Driver, timeout time.Duration, also ...func(*testing.T, *bmcsim.BMC)) {
	t.Helper()
	tg := Target(s)
	for _, c := range BootCases() {
		t.Run(c.Command+"-"+c.BIOSMode, func(t *testing.T) {
			s.Chassis.Reset()
			Do(t, d, &bmc.Request{Command: c.Command, Target: tg, BIOSMode: c.BIOSMode}, timeout)
			f, ok := s.Chassis.BootFlags()
			if !ok {
				t.Fatal("no boot flags written")
			}
			want := bmcsim.BootFlags{Valid: true, Persistent: c.Persistent, EFI: c.EFI, Device: c.Device}
			if f != want {
				t.Fatalf("boot flags = %+v, want %+v", f, want)
			}
			for _, check := range also {
				check(t, s)
			}
		})
	}
}

// CheckStickyValidBitClear checks that the boot-flag valid-bit clearing
// parameter (3) was written as DRP's sticky pre-command asks: keep the
// flags over power-up, reset, watchdog and command timeout, not over PEF.
func CheckStickyValidBitClear(t *testing.T, s *bmcsim.BMC) {
	t.Helper()
	b, ok := s.Chassis.ValidBitClear()
	if !ok {
		t.Fatal("valid bit clearing (param 3) not written")
	}
	var p types.BootOptionParam_BMCBootFlagValidBitClear
	if err := p.Unpack([]byte{b}); err != nil {
		t.Fatal(err)
	}
	if !p.DontClearOnPowerUpPushButtonOrWakeEvent || !p.DontClearOnResetPushButtonOrSoftReset ||
		!p.DontClearOnWatchdogTimeout || !p.DontClearOnCommandReceivedTimeout || p.DontClearOnResetPEFOrPowerCyclePEF {
		t.Fatalf("valid bit clearing = %+v", p)
	}
}

// RunIdentifyCases checks chassis identify through d: a positive time is
// sent as is up to the BMC's 255 s limit, zero or less turns it on until
// turned off (force).
func RunIdentifyCases(t *testing.T, s *bmcsim.BMC, d bmc.Driver, timeout time.Duration) {
	t.Helper()
	for _, c := range []struct {
		secs, want int
		force      bool
	}{{30, 30, false}, {0, 0, true}, {-1, 0, true}, {-3, 0, true}, {600, 255, false}, {1000, 255, false}} {
		s.Chassis.Reset()
		Do(t, d, &bmc.Request{Command: bmc.Identify, Target: Target(s), IdentifySeconds: c.secs}, timeout)
		id, ok := s.Chassis.LastIdentify()
		if !ok {
			t.Fatalf("identify %d: no request reached the BMC", c.secs)
		}
		if id.Force != c.force || (!c.force && id.Seconds != c.want) {
			t.Fatalf("identify %d: BMC saw %+v", c.secs, id)
		}
	}
}
