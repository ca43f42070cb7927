package actions

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
	"github.com/provisionhq/provision/plugins/ipmi/internal/redfishsim"
)

func TestMachineActionsMatchDRP(t *testing.T) {
	acts := MachineActions()
	if len(acts) != 24 {
		t.Fatalf("%d actions", len(acts))
	}
	names := []string{"poweron", "poweroff", "powercycle", "nextbootcd", "nextbootpxe", "nextbootdisk", "forcebootpxe", "forcebootdisk",
		"identify", "powerstatus", "status", "getInfo", "getBios", "getMemory", "getStorage", "getSimpleStorage", "getProcessor",
		"getNetworkInterfaces", "getEthernetInterfaces", "getSecureBoot", "getBoot", "mountVirtualMedia", "unmountVirtualMedia", "statusVirtualMedia"}
	drpOpt := []string{"ipmi/port-ipmitool", "ipmi/port-racadm", "ipmi/port-redfish", "ipmi/port-lpar", "ipmi/lpar-id"}
	for i, a := range acts {
		if a.Command != names[i] || a.Model != "machines" {
			t.Fatalf("action %d = %s/%s", i, a.Model, a.Command)
		}
		want := []string{"ipmi/username", "ipmi/password", "ipmi/address", "ipmi/mode"}
		switch a.Command {
		case "nextbootcd", "nextbootpxe", "nextbootdisk", "forcebootpxe", "forcebootdisk":
			want = append([]string{"detected-bios-mode"}, want...)
		case "mountVirtualMedia":
			want = append(want, "ipmi/virtual-media-url", "ipmi/virtual-media-boot")
		}
		if !slices.Equal(a.RequiredParams, want) {
			t.Fatalf("%s required = %q, want %q", a.Command, a.RequiredParams, want)
		}
		if !slices.Equal(a.OptionalParams[:5], drpOpt) || a.OptionalParams[len(a.OptionalParams)-1] != "ipmi/force-protocol" {
			t.Fatalf("%s optional = %q", a.Command, a.OptionalParams)
		}
		if (a.Command == "identify") != slices.Contains(a.OptionalParams, "ipmi/identify-duration") {
			t.Fatalf("%s optional = %q", a.Command, a.OptionalParams)
		}
	}
}

func base() map[string]any {
	return map[string]any{"ipmi/address": "10.0.0.5", "ipmi/username": "root", "ipmi/password": "pw", "ipmi/mode": "native"}
}

func with(kv ...any) map[string]any {
	p := base()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(p, kv[i].(string))
		} else {
			p[kv[i].(string)] = kv[i+1]
		}
	}
	return p
}

func TestParseRequest(t *testing.T) {
	r, err := ParseRequest("identify", with("ipmi/identify-duration", float64(30), "ipmi/port-ipmitool", float64(6230)))
	if err != nil || r.IdentifySeconds != 30 || r.Target.Port != 6230 || r.Mode != "native" {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseRequest("identify", with("ipmi/identify-duration", 0, "ipmi/mode", nil))
	if err != nil || r.IdentifySeconds != 0 || r.Mode != "native" {
		t.Fatalf("int duration / default mode: %+v %v", r, err)
	}
	if r, _ = ParseRequest("identify", base()); r.IdentifySeconds != 60 {
		t.Fatalf("default duration %d", r.IdentifySeconds)
	}
	r, err = ParseRequest("poweron", with("ipmi/mode", "redfish", "ipmi/port-redfish", float64(8443), "ipmi/port-ipmitool", 1))
	if err != nil || r.Target.Port != 8443 {
		t.Fatalf("redfish port: %+v %v", r, err)
	}
	if r, _ = ParseRequest("nextbootpxe", with("detected-bios-mode", "UEFI")); !r.UEFI() {
		t.Fatal("UEFI not recognised")
	}
	if r, _ = ParseRequest("nextbootpxe", base()); r.UEFI() {
		t.Fatal("absent detected-bios-mode must mean legacy")
	}
	if r, _ = ParseRequest("poweron", with("ipmi/force-protocol", "lan")); !r.Target.LAN15 {
		t.Fatal("force-protocol lan not honoured")
	}
	r, err = ParseRequest("mountVirtualMedia", with("ipmi/virtual-media-url", "http://x/a.iso", "ipmi/virtual-media-boot", true))
	if err != nil || r.VirtualMediaURL != "http://x/a.iso" || !r.VirtualMediaBoot {
		t.Fatalf("%+v %v", r, err)
	}

	bad := []struct {
		cmd    string
		params map[string]any
		want   string
	}{
		{"poweron", with("ipmi/mode", "bogus"), "Invalid mode: bogus"},
		{"poweron", with("ipmi/mode", 3), "ipmi/mode must be a string"},
		{"poweron", with("ipmi/address", nil), "Must specify ipmi/address"},
		{"poweron", with("ipmi/address", " "), "Must specify ipmi/address"},
		{"poweron", with("ipmi/password", nil), "Must specify ipmi/password"},
		{"poweron", with("ipmi/username", 5), "ipmi/username must be a string"},
		{"poweron", with("ipmi/port-ipmitool", "623"), "ipmi/port-ipmitool must be a number"},
		{"poweron", with("ipmi/port-ipmitool", 1.5), "ipmi/port-ipmitool must be a number"},
		{"poweron", with("ipmi/port-ipmitool", 70000), "between 0 and 65535"},
		{"poweron", with("ipmi/force-protocol", "v7"), "ipmi/force-protocol must be one of"},
		{"identify", with("ipmi/identify-duration", "long"), "ipmi/identify-duration must be a number"},
		{"nextbootdisk", with("detected-bios-mode", "efi-ish"), "detected-bios-mode must be uefi or legacy"},
		{"mountVirtualMedia", base(), "Must specify ipmi/virtual-media-url"},
		{"mountVirtualMedia", with("ipmi/virtual-media-url", "http://x", "ipmi/virtual-media-boot", "yes"), "ipmi/virtual-media-boot must be a boolean"},
	}
	for _, c := range bad {
		_, err := ParseRequest(c.cmd, c.params)
		if err == nil || err.Code != 400 || !strings.Contains(err.Error(), c.want) || err.Model != "plugin" || err.Key != "ipmi" {
			t.Fatalf("%s %v: want 400 %q, got %v", c.cmd, c.params, c.want, err)
		}
	}
}

func TestRunAcrossModes(t *testing.T) {
	d := New(Options{})
	defer d.Close()
	ctx := context.Background()

	sim, err := bmcsim.Start(bmcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, mode := range []string{"native", "ipmitool"} {
		sim.Chassis.SetOn(false)
		p := map[string]any{"ipmi/address": sim.Host, "ipmi/username": "ADMIN", "ipmi/password": "ADMIN", "ipmi/mode": mode,
			"ipmi/port-ipmitool": float64(sim.Port), "ipmi/identify-duration": float64(42)}
		if _, err := d.Run(ctx, "poweron", p); err != nil {
			t.Fatalf("%s poweron: %v", mode, err)
		}
		if !sim.Chassis.On() {
			t.Fatalf("%s: poweron did not reach the BMC", mode)
		}
		out, err := d.Run(ctx, "powerstatus", p)
		if err != nil || out.(bmc.PowerState).Power != "on" {
			t.Fatalf("%s powerstatus = %v %v", mode, out, err)
		}
		// DRP's identify bug: a float64 duration must work.
		if _, err := d.Run(ctx, "identify", p); err != nil {
			t.Fatalf("%s identify: %v", mode, err)
		}
		if id, _ := sim.Chassis.LastIdentify(); id.Seconds != 42 || id.Force {
			t.Fatalf("%s identify reached the BMC as %+v", mode, id)
		}
		if _, err := d.Run(ctx, "getBios", p); err == nil || err.Code != 501 {
			t.Fatalf("%s getBios: want 501, got %v", mode, err)
		}
	}

	rf := redfishsim.Start(redfishsim.Options{})
	defer rf.Close()
	p := map[string]any{"ipmi/address": rf.Host, "ipmi/username": "admin", "ipmi/password": "password", "ipmi/mode": "redfish",
		"ipmi/port-redfish": float64(rf.Port), "detected-bios-mode": "uefi"}
	if _, err := d.Run(ctx, "forcebootpxe", p); err != nil {
		t.Fatal(err)
	}
	if en, tgt, mode := rf.Boot(); en != "Continuous" || tgt != "Pxe" || mode != "UEFI" {
		t.Fatalf("redfish boot = %s %s %s", en, tgt, mode)
	}

	for _, mode := range []string{"racadm", "racadmn"} {
		p := with("ipmi/mode", mode)
		_, err := d.Run(ctx, "poweron", p)
		if err == nil || err.Code != 501 || !strings.Contains(err.Error(), mode) || !strings.Contains(err.Error(), "poweron") {
			t.Fatalf("%s: want 501 naming mode and action, got %v", mode, err)
		}
	}
	if _, err := d.Run(ctx, "explode", base()); err == nil || err.Code != 404 {
		t.Fatalf("unknown action: %v", err)
	}
}
