package redfish

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/redfishsim"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
)

func start(t *testing.T, o redfishsim.Options) (*redfishsim.Server, *Driver, bmc.Target) {
	t.Helper()
	s := redfishsim.Start(o)
	t.Cleanup(s.Close)
	d := New(Options{Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond})
	t.Cleanup(d.Close)
	return s, d, bmc.Target{Address: s.Host, Port: s.Port, Username: "admin", Password: "password"}
}

func run(t *testing.T, d *Driver, tg bmc.Target, cmd string, mod ...func(*bmc.Request)) any {
	t.Helper()
	req := &bmc.Request{Command: cmd, Mode: Mode, Target: tg, BIOSMode: "uefi"}
	for _, m := range mod {
		m(req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := d.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

func noRejects(t *testing.T, s *redfishsim.Server) {
	t.Helper()
	if r := s.Rejected(); len(r) > 0 {
		t.Fatalf("the BMC rejected requests: %q", r)
	}
	if s.Logins() != s.Logouts() {
		t.Fatalf("sessions leaked: %d logins, %d logouts", s.Logins(), s.Logouts())
	}
}

func TestPower(t *testing.T) {
	s, d, tg := start(t, redfishsim.Options{})
	if got := run(t, d, tg, bmc.PowerStatus); got != (bmc.PowerState{Power: "off", Raw: "Off"}) {
		t.Fatalf("powerstatus = %#v", got)
	}
	run(t, d, tg, bmc.PowerOn)
	if s.Power() != "On" {
		t.Fatal("poweron did not power on")
	}
	run(t, d, tg, bmc.PowerOn) // already on: no reset sent
	run(t, d, tg, bmc.PowerCycle)
	run(t, d, tg, bmc.PowerOff)
	if s.Power() != "Off" {
		t.Fatal("poweroff did not power off")
	}
	// Preference chains: On (ForceOn is not offered), ForceRestart (no
	// PowerCycle offered), ForceOff.
	if got := s.Resets(); !slices.Equal(got, []string{"On", "ForceRestart", "ForceOff"}) {
		t.Fatalf("resets = %q", got)
	}
	noRejects(t, s)
}

func TestPowerCycleFallback(t *testing.T) {
	// Only GracefulShutdown and On are offered: cycle = off, wait, on.
	s, d, tg := start(t, redfishsim.Options{ResetTypes: []string{"On", "GracefulShutdown"}, PoweredOn: true})
	run(t, d, tg, bmc.PowerCycle)
	if s.Power() != "On" || !slices.Equal(s.Resets(), []string{"GracefulShutdown", "On"}) {
		t.Fatalf("power=%s resets=%q", s.Power(), s.Resets())
	}
	// A system that offers no way to power off gets a 502 naming the chain.
	s2, d2, tg2 := start(t, redfishsim.Options{ResetTypes: []string{"On"}, PoweredOn: true})
	_, err := d2.Do(context.Background(), &bmc.Request{Command: bmc.PowerOff, Target: tg2})
	if err == nil || err.Code != 502 || !strings.Contains(err.Error(), "ForceOff") {
		t.Fatalf("want 502, got %v", err)
	}
	if s2.Power() != "On" {
		t.Fatal("state changed")
	}
}

func TestBootOverride(t *testing.T) {
	s, d, tg := start(t, redfishsim.Options{})
	cases := []struct{ cmd, bios, en, tgt, mode string }{
		{bmc.NextBootPXE, "uefi", "Once", "Pxe", "UEFI"},
		{bmc.NextBootDisk, "legacy", "Once", "Hdd", "Legacy"},
		{bmc.NextBootCD, "uefi", "Once", "Cd", "UEFI"},
		{bmc.ForceBootPXE, "legacy", "Continuous", "Pxe", "Legacy"},
		{bmc.ForceBootDisk, "uefi", "Continuous", "Hdd", "UEFI"},
	}
	for _, c := range cases {
		run(t, d, tg, c.cmd, func(r *bmc.Request) { r.BIOSMode = c.bios })
		en, tgt, mode := s.Boot()
		if en != c.en || tgt != c.tgt || mode != c.mode {
			t.Fatalf("%s/%s: boot = %s %s %s", c.cmd, c.bios, en, tgt, mode)
		}
	}
	noRejects(t, s)
	// A PATCH answered with 200 + body works the same.
	s2, d2, tg2 := start(t, redfishsim.Options{PatchReturnsBody: true})
	run(t, d2, tg2, bmc.NextBootPXE)
	if en, tgt, _ := s2.Boot(); en != "Once" || tgt != "Pxe" {
		t.Fatalf("boot = %s %s", en, tgt)
	}
}

func TestIdentify(t *testing.T) {
	s, d, tg := start(t, redfishsim.Options{})
	run(t, d, tg, bmc.Identify, func(r *bmc.Request) { r.IdentifySeconds = 0 })
	if s.LED() != "Blinking" {
		t.Fatalf("LED = %s", s.LED())
	}
	// N > 0: blinks, then the driver turns it off after N seconds. 3 s, not
	// 1 s, so a stall under -race between the call and the check below
	// cannot let the off timer fire first.
	run(t, d, tg, bmc.Identify, func(r *bmc.Request) { r.IdentifySeconds = 3 })
	if s.LED() != "Blinking" {
		t.Fatalf("LED = %s", s.LED())
	}
	plugintest.Eventually(t, 15*time.Second, "the indicator to be turned off after the duration", func() bool { return s.LED() == "Off" })
	// Systems with LocationIndicatorActive instead of IndicatorLED.
	s2, d2, tg2 := start(t, redfishsim.Options{LocationIndicatorOnly: true})
	run(t, d2, tg2, bmc.Identify, func(r *bmc.Request) { r.IdentifySeconds = -1 })
	if s2.LED() != "Lit" {
		t.Fatalf("LocationIndicatorActive not set: %s", s2.LED())
	}
	noRejects(t, s2)
}

func TestStatusAndInventory(t *testing.T) {
	s, d, tg := start(t, redfishsim.Options{})
	st := run(t, d, tg, bmc.Status).(map[string]string)
	want := map[string]string{"Status": "OK", "ProcessorStatus": "OK", "MemoryStatus": "Critical",
		"EthernetStatus": "Warning", "StorageStatus": "OK", "SimpleStorageStatus": "OK"}
	for k, v := range want {
		if st[k] != v {
			t.Fatalf("status[%s] = %q, want %q (%v)", k, st[k], v, st)
		}
	}
	counts := map[string]int{bmc.GetMemory: 2, bmc.GetProcessor: 1, bmc.GetStorage: 1, bmc.GetSimpleStorage: 1,
		bmc.GetEthernetInterfaces: 1, bmc.GetNetworkInterfaces: 1}
	for cmd, n := range counts {
		got := run(t, d, tg, cmd).([]map[string]any)
		if len(got) != n {
			t.Fatalf("%s: %d members, want %d", cmd, len(got), n)
		}
	}
	if info := run(t, d, tg, bmc.GetInfo).(map[string]any); info["PowerState"] != "Off" {
		t.Fatalf("getInfo = %v", info)
	}
	if bios := run(t, d, tg, bmc.GetBios).(map[string]any); bios["Attributes"].(map[string]any)["BootMode"] != "Uefi" {
		t.Fatalf("getBios = %v", bios)
	}
	if sb := run(t, d, tg, bmc.GetSecureBoot).(map[string]any); sb["SecureBootEnable"] != true {
		t.Fatalf("getSecureBoot = %v", sb)
	}
	if b := run(t, d, tg, bmc.GetBoot).(map[string]any); b["BootSourceOverrideTarget"] != "None" {
		t.Fatalf("getBoot = %v", b)
	}
	// Results are JSON-encodable as the plugin answers them.
	if _, err := json.Marshal(run(t, d, tg, bmc.GetMemory)); err != nil {
		t.Fatal(err)
	}
	noRejects(t, s)
}

func TestVirtualMedia(t *testing.T) {
	const iso = "http://10.0.0.1/install.iso"
	withISO := func(boot bool) func(*bmc.Request) {
		return func(r *bmc.Request) { r.VirtualMediaURL, r.VirtualMediaBoot = iso, boot }
	}
	t.Run("generic", func(t *testing.T) {
		s, d, tg := start(t, redfishsim.Options{})
		if got := run(t, d, tg, bmc.StatusVirtualMedia).(map[string]any); got["Inserted"] != false {
			t.Fatalf("status = %v", got)
		}
		run(t, d, tg, bmc.MountVirtualMedia, withISO(false))
		if in, img := s.Media(); !in || img != iso {
			t.Fatalf("media = %v %q", in, img)
		}
		if en, _, _ := s.Boot(); en != "Disabled" {
			t.Fatal("mount without boot changed the boot override")
		}
		// Mounting again ejects first (InsertMedia is refused while inserted) and boots from CD.
		run(t, d, tg, bmc.MountVirtualMedia, withISO(true))
		if en, tgt, _ := s.Boot(); en != "Once" || tgt != "Cd" {
			t.Fatalf("boot = %s %s", en, tgt)
		}
		if got := run(t, d, tg, bmc.StatusVirtualMedia).(map[string]any); got["Inserted"] != true || got["Image"] != iso {
			t.Fatalf("status = %v", got)
		}
		run(t, d, tg, bmc.UnmountVirtualMedia)
		if in, _ := s.Media(); in {
			t.Fatal("unmount left media inserted")
		}
		noRejects(t, s)
	})
	t.Run("hpe", func(t *testing.T) {
		s, d, tg := start(t, redfishsim.Options{Vendor: redfishsim.VendorHPE})
		run(t, d, tg, bmc.MountVirtualMedia, withISO(true))
		if in, img := s.Media(); !in || img != iso || !s.HPEBootOnNextReset() {
			t.Fatalf("media = %v %q hpeBoot=%v", in, img, s.HPEBootOnNextReset())
		}
		noRejects(t, s)
	})
	t.Run("dell", func(t *testing.T) {
		s, d, tg := start(t, redfishsim.Options{Vendor: redfishsim.VendorDell})
		run(t, d, tg, bmc.MountVirtualMedia, withISO(true))
		if in, _ := s.Media(); !in || s.DellFirstBootDevice() != "VCD-DVD" {
			t.Fatalf("media inserted=%v dell boot=%q", in, s.DellFirstBootDevice())
		}
		noRejects(t, s)
	})
}

func TestErrors(t *testing.T) {
	s, d, tg := start(t, redfishsim.Options{PoweredOn: true})
	bad := tg
	bad.Password = "nope"
	_, err := d.Do(context.Background(), &bmc.Request{Command: bmc.PowerOff, Target: bad})
	if err == nil || err.Code != 401 || strings.Contains(err.Error(), "nope") {
		t.Fatalf("want 401 without the password, got %v", err)
	}
	if s.Power() != "On" {
		t.Fatal("refused login changed state")
	}
	// A request the BMC refuses (invalid URL scheme for InsertMedia): 502 with the Redfish message.
	_, err = d.Do(context.Background(), &bmc.Request{Command: bmc.MountVirtualMedia, Target: tg, VirtualMediaURL: "ftp://x/y.iso"})
	if err == nil || err.Code != 502 || !strings.Contains(err.Error(), "Image must be an http(s)") {
		t.Fatalf("want 502 with the BMC's message, got %v", err)
	}
	if s.Logins() != s.Logouts() {
		t.Fatalf("failed action leaked a session: %d/%d", s.Logins(), s.Logouts())
	}
	// Nothing listening: 504.
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, err = d.Do(context.Background(), &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: port, Username: "a", Password: "b"}})
	if err == nil || err.Code != 504 {
		t.Fatalf("closed port: want 504, got %v", err)
	}
	// Accepts TCP but never answers: the request timeout gives 504.
	hang, herr := net.Listen("tcp", "127.0.0.1:0")
	if herr != nil {
		t.Fatal(herr)
	}
	defer hang.Close()
	quick := New(Options{Timeout: 300 * time.Millisecond, Retries: 1})
	_, err = quick.Do(context.Background(), &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: hang.Addr().(*net.TCPAddr).Port, Username: "a", Password: "b"}})
	if err == nil || err.Code != 504 {
		t.Fatalf("hanging BMC: want 504, got %v", err)
	}
	var me *models.Error = err
	if me.Model != "plugin" || me.Key != "ipmi" {
		t.Fatalf("error shape %+v", me)
	}
}
