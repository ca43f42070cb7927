package metal_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metalfake"
)

const token = "test-api-key-secret"

func newClient(t *testing.T, f *metalfake.Server, key string, timeout time.Duration) *metal.Client {
	t.Helper()
	c, err := metal.New(metal.Options{URL: f.URL(), APIKey: key, Timeout: timeout, Transport: f.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newFake(t *testing.T) *metalfake.Server {
	t.Helper()
	f := metalfake.New(token)
	t.Cleanup(f.Close)
	return f
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, u := range []string{"ftp://x/metal/v1", "not a url", "/relative", "http://api.example.com/metal/v1"} {
		if _, err := metal.New(metal.Options{URL: u, APIKey: "k"}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:9/metal/v1", "http://localhost:9", "http://[::1]:9", metal.DefaultURL} {
		if _, err := metal.New(metal.Options{URL: u, APIKey: "k"}); err != nil {
			t.Errorf("URL %q refused: %v", u, err)
		}
	}
	if _, err := metal.New(metal.Options{APIKey: ""}); err == nil {
		t.Error("empty API key accepted")
	}
}

func TestListingFollowsPages(t *testing.T) {
	f := newFake(t)
	f.SetMaxPerPage(2)
	for _, p := range []string{"p1", "p2", "p3"} {
		f.AddProject(p)
	}
	for i := 0; i < 5; i++ {
		f.AddDevice(metalfake.Device{ID: "d" + string(rune('a'+i)), Hostname: "h", State: "active", ProjectID: "p2", Plan: "c3.small", Facility: "da11"})
	}
	c := newClient(t, f, token, 5*time.Second)
	ctx := context.Background()
	projs, err := c.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(projs) != 3 || projs[0].ID != "p1" || projs[2].ID != "p3" {
		t.Fatalf("projects %+v", projs)
	}
	devs, err := c.ProjectDevices(ctx, "p2")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 5 || devs[4].ID != "de" {
		t.Fatalf("devices %+v", devs)
	}
	if devs[0].PlanSlug != "c3.small" || devs[0].FacilityCode != "da11" || devs[0].ProjectID != "p2" {
		t.Fatalf("includes not decoded: %+v", devs[0])
	}
	for _, r := range f.Requests() {
		if r.ConsumerToken != metal.ConsumerToken {
			t.Fatalf("request %s %s without consumer token", r.Method, r.Path)
		}
	}
}

func TestErrorsCarryStatusAndNeverTheKey(t *testing.T) {
	f := newFake(t)
	f.AddProject("p1")
	ctx := context.Background()

	bad := newClient(t, f, "wrong-key", 5*time.Second)
	_, err := bad.Projects(ctx)
	var ae *metal.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("wrong key: want 401 APIError, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong-key") {
		t.Fatalf("error message leaks the API key: %v", err)
	}

	c := newClient(t, f, token, 5*time.Second)
	_, err = c.Device(ctx, "nope")
	if !metal.IsNotFound(err) {
		t.Fatalf("unknown device: want 404, got %v", err)
	}
	if err := c.PerformAction(ctx, "nope", metal.ActionPowerOn); !metal.IsNotFound(err) {
		t.Fatalf("action on unknown device: want 404, got %v", err)
	}
	if err := c.PerformAction(ctx, "nope", "explode"); err == nil {
		t.Fatal("invalid action type accepted client-side")
	}

	f.FailNext(http.StatusInternalServerError)
	_, err = c.Projects(ctx)
	if !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError || !strings.Contains(ae.Msg, "injected failure") {
		t.Fatalf("want 500 with API message, got %v", err)
	}
}

func TestCallTimeout(t *testing.T) {
	f := newFake(t)
	f.AddProject("p1")
	f.StallNext(1)
	c := newClient(t, f, token, 200*time.Millisecond)
	_, err := c.Projects(context.Background())
	var ae *metal.APIError
	if !errors.As(err, &ae) || !ae.Timeout || ae.Status != 0 {
		t.Fatalf("stalled call: want a timeout APIError, got %v", err)
	}
	// The next call works again. It goes through the same transport with a
	// generous timeout: 200 ms for a fresh TLS handshake and request is too
	// tight under -race on a loaded machine.
	c = newClient(t, f, token, 5*time.Second)
	if _, err := c.Projects(context.Background()); err != nil {
		t.Fatalf("call after the stalled one: %v", err)
	}
}

func TestDeviceLifecycle(t *testing.T) {
	f := newFake(t)
	f.AddProject("p1")
	f.SetActivateAfter(2)
	c := newClient(t, f, token, 5*time.Second)
	ctx := context.Background()

	d, err := c.CreateDevice(ctx, metal.CreateRequest{ProjectID: "p1", Hostname: "m1", Facility: "ewr1",
		Plan: "baremetal_0", OperatingSystem: "custom_ipxe", IPXEScriptURL: "http://fs/default.ipxe", AlwaysPXE: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Ready() {
		t.Fatal("new device ready at once")
	}
	st, _ := f.Device(d.ID)
	if st.Hostname != "m1" || st.Facility != "ewr1" || st.Plan != "baremetal_0" || st.ProjectID != "p1" ||
		st.OperatingSystem != "custom_ipxe" || st.BillingCycle != "hourly" || !st.AlwaysPXE || st.IPXEScriptURL != "http://fs/default.ipxe" {
		t.Fatalf("created device state %+v", st)
	}
	if _, err := c.CreateDevice(ctx, metal.CreateRequest{ProjectID: "nope", Facility: "ewr1", Plan: "x", OperatingSystem: "custom_ipxe", IPXEScriptURL: "u"}); !metal.IsNotFound(err) {
		t.Fatalf("unknown project: want 404, got %v", err)
	}
	var ae *metal.APIError
	if _, err := c.CreateDevice(ctx, metal.CreateRequest{ProjectID: "p1", Facility: "ewr1", Plan: "x", OperatingSystem: "custom_ipxe"}); !errors.As(err, &ae) || ae.Status != 422 {
		t.Fatalf("custom_ipxe without script: want 422, got %v", err)
	}

	for i := 0; i < 2; i++ {
		if d, err = c.Device(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if !d.Ready() || d.PublicIPv4() == "" || len(d.MACs) != 2 || d.FacilityCode != "ewr1" || d.SOS == "" {
		t.Fatalf("device after activation %+v", d)
	}

	url := "http://new/boot.ipxe"
	off := false
	if d, err = c.UpdateDevice(ctx, d.ID, metal.UpdateRequest{IPXEScriptURL: &url, AlwaysPXE: &off}); err != nil {
		t.Fatal(err)
	}
	st, _ = f.Device(d.ID)
	if st.IPXEScriptURL != url || st.AlwaysPXE || d.IPXEScriptURL != url || d.AlwaysPXE {
		t.Fatalf("update not applied: fake %+v, answer %+v", st, d)
	}

	for _, a := range []string{metal.ActionPowerOff, metal.ActionPowerOn, metal.ActionReboot} {
		if err := c.PerformAction(ctx, d.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = f.Device(d.ID)
	if !st.Powered || st.Reboots != 1 || strings.Join(st.Actions, ",") != "power_off,power_on,reboot" {
		t.Fatalf("actions not applied: %+v", st)
	}
	if err := c.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ = f.Device(d.ID); !st.Deleted {
		t.Fatal("device not deleted")
	}
	if err := c.DeleteDevice(ctx, d.ID); !metal.IsNotFound(err) {
		t.Fatalf("second delete: want 404, got %v", err)
	}
}
