package ipmitool

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
	"github.com/provisionhq/provision/plugins/ipmi/internal/ipmitest"
)

// requireIPMItool fails (not skips) when ipmitool is missing: ./build.sh
// test installs Debian's ipmitool, and these tests are the driver's proof.
func requireIPMItool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ipmitool")
	if err != nil {
		t.Fatalf("ipmitool is not installed (./build.sh test installs it; or apt-get install ipmitool): %v", err)
	}
	return p
}

// do is the shared ipmitest.Do with room for ipmitool's process start.
func do(t *testing.T, d *Driver, req *bmc.Request) any {
	t.Helper()
	return ipmitest.Do(t, d, req, 30*time.Second)
}

func TestPower(t *testing.T) {
	requireIPMItool(t)
	s := ipmitest.StartBMC(t, bmcsim.Options{})
	d := New(Options{})
	tg := ipmitest.Target(s)
	if got := do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: tg}); got != (bmc.PowerState{Power: "off", Raw: "Chassis Power is off"}) {
		t.Fatalf("powerstatus = %#v", got)
	}
	if out := do(t, d, &bmc.Request{Command: bmc.PowerOn, Target: tg}); !strings.Contains(out.(string), "Up/On") {
		t.Fatalf("poweron output %q", out)
	}
	if !s.Chassis.On() {
		t.Fatal("poweron did not power on")
	}
	do(t, d, &bmc.Request{Command: bmc.PowerCycle, Target: tg})
	if s.Chassis.PowerCycles() != 1 {
		t.Fatalf("cycles = %d", s.Chassis.PowerCycles())
	}
	do(t, d, &bmc.Request{Command: bmc.PowerOff, Target: tg})
	if s.Chassis.On() {
		t.Fatal("poweroff left it on")
	}
	if got := do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: tg}).(bmc.PowerState); got.Power != "off" {
		t.Fatalf("powerstatus = %#v", got)
	}
	tg.LAN15 = true
	do(t, d, &bmc.Request{Command: bmc.PowerOn, Target: tg})
	if !s.Chassis.On() {
		t.Fatal("poweron over -I lan did not power on")
	}
}

func TestBootDevice(t *testing.T) {
	requireIPMItool(t)
	ipmitest.RunBootCases(t, ipmitest.StartBMC(t, bmcsim.Options{}), New(Options{}), 30*time.Second)
}

func TestIdentify(t *testing.T) {
	requireIPMItool(t)
	ipmitest.RunIdentifyCases(t, ipmitest.StartBMC(t, bmcsim.Options{}), New(Options{}), 30*time.Second)
}

func TestErrors(t *testing.T) {
	requireIPMItool(t)
	s := ipmitest.StartBMC(t, bmcsim.Options{PoweredOn: true})
	d := New(Options{Timeout: time.Second, Retries: 1})
	ctx := context.Background()

	for _, tg := range []bmc.Target{
		{Address: s.Host, Port: s.Port, Username: "ADMIN", Password: "wrong"},
		{Address: s.Host, Port: s.Port, Username: "nobody", Password: "ADMIN", LAN15: true},
	} {
		_, err := d.Do(ctx, &bmc.Request{Command: bmc.PowerOff, Target: tg})
		if err == nil || err.Code != 401 {
			t.Fatalf("%v: want 401, got %v", tg, err)
		}
	}
	if !s.Chassis.On() {
		t.Fatal("refused request changed power")
	}

	s.FailWith(types.CommandChassisControl, types.CompletionCode(0xC0))
	_, err := d.Do(ctx, &bmc.Request{Command: bmc.PowerOff, Target: ipmitest.Target(s)})
	if err == nil || err.Code != 502 || !strings.Contains(err.Error(), "Node busy") {
		t.Fatalf("want 502 with the completion code text, got %v", err)
	}
	s.FailWith(types.CommandChassisControl, types.CodeOK)

	silent, lerr := net.ListenPacket("udp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer silent.Close()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err = d.Do(tctx, &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: silent.LocalAddr().(*net.UDPAddr).Port, Username: "ADMIN", Password: "ADMIN"}})
	if err == nil || err.Code != 504 {
		t.Fatalf("silent BMC: want 504, got %v", err)
	}
	if tctx.Err() != nil {
		t.Fatal("ipmitool did not give up by itself")
	}
	// The action deadline kills a long ipmitool run.
	slow := New(Options{Timeout: 30 * time.Second, Retries: 5})
	short, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	_, err = slow.Do(short, &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: silent.LocalAddr().(*net.UDPAddr).Port, Username: "ADMIN", Password: "ADMIN"}})
	if err == nil || err.Code != 504 {
		t.Fatalf("deadline: want 504, got %v", err)
	}
}

// TestPasswordNeverOnArgv runs the real ipmitool through a wrapper that
// records the argv and environment it was started with.
func TestPasswordNeverOnArgv(t *testing.T) {
	real := requireIPMItool(t)
	s := ipmitest.StartBMC(t, bmcsim.Options{Password: "s3cr3t-pw"})
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "ipmitool")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + filepath.Join(dir, "argv") + "\nprintf '%s' \"$IPMI_PASSWORD\" > " + filepath.Join(dir, "env") + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := New(Options{Path: wrapper})
	tg := bmc.Target{Address: s.Host, Port: s.Port, Username: "ADMIN", Password: "s3cr3t-pw"}
	do(t, d, &bmc.Request{Command: bmc.PowerOn, Target: tg})
	if !s.Chassis.On() {
		t.Fatal("poweron through the wrapper failed")
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if strings.Contains(string(argv), "s3cr3t") {
		t.Fatalf("password on argv: %q", argv)
	}
	if !slices.Contains(strings.Split(string(argv), "\n"), "-E") {
		t.Fatalf("-E missing from argv: %q", argv)
	}
	if string(env) != "s3cr3t-pw" {
		t.Fatalf("IPMI_PASSWORD = %q", env)
	}
}

func TestMissingBinary(t *testing.T) {
	d := New(Options{Path: filepath.Join(t.TempDir(), "no-such-ipmitool")})
	_, err := d.Do(context.Background(), &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Username: "u", Password: "p"}})
	if err == nil || err.Code != 503 || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("want a clear 503, got %v", err)
	}
	d = New(Options{Path: "no-such-ipmitool-in-path"})
	_, err = d.Do(context.Background(), &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Username: "u", Password: "p"}})
	if err == nil || err.Code != 503 {
		t.Fatalf("want 503, got %v", err)
	}
}

func TestCommandsMatchDRP(t *testing.T) {
	got, _ := Commands(&bmc.Request{Command: bmc.ForceBootPXE, BIOSMode: "uefi"})
	want := [][]string{stickyBoot(), {"raw", "0x00", "0x08", "0x05", "0xe0", "0x04", "0x00", "0x00", "0x00"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("forcebootpxe uefi = %q", got)
	}
	got, _ = Commands(&bmc.Request{Command: bmc.NextBootDisk, BIOSMode: "uefi"})
	if strings.Join(got[1], " ") != "chassis bootdev disk options=efiboot" || strings.Join(got[0], " ") != "chassis bootparam set bootflag none options=no-power,no-reset,no-watchdog,no-timeout" {
		t.Fatalf("nextbootdisk uefi = %q", got)
	}
	if _, err := Commands(&bmc.Request{Command: bmc.GetBios}); err == nil {
		t.Fatal("getBios should be unsupported")
	}
	d := New(Options{})
	_, merr := d.Do(context.Background(), &bmc.Request{Command: bmc.GetBios})
	if merr == nil || merr.Code != 501 || !strings.Contains(merr.Error(), "ipmitool") {
		t.Fatalf("want 501, got %v", merr)
	}
	argv := d.Argv(bmc.Target{Address: "h", Username: "u", Password: "pw"}, []string{"chassis", "power", "status"})
	if slices.Contains(argv, "-p") || slices.Contains(argv, "pw") {
		t.Fatalf("argv = %q", argv)
	}
}
