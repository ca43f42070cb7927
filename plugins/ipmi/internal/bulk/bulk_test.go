package bulk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/actions"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server/servertest"
)

// memSource is an in-memory machine list for the concurrency logic.
type memSource struct {
	machines []Machine
	params   map[string]map[string]any
	listErr  error
}

func (m *memSource) Machines(context.Context, []string) ([]Machine, error) {
	return m.machines, m.listErr
}

func (m *memSource) Params(_ context.Context, uuid string) (map[string]any, error) {
	p, ok := m.params[uuid]
	if !ok {
		return nil, errors.New("no such machine")
	}
	out := map[string]any{}
	for k, v := range p {
		out[k] = v
	}
	return out, nil
}

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter("rack=Eq(r12)&Name=Re(^node)")
	if err != nil || !slices.Equal(f, []string{"Name", "Re(^node)", "rack", "Eq(r12)"}) {
		t.Fatalf("%q %v", f, err)
	}
	for _, bad := range []string{"", "  ", "Name=", "=Eq(x)", "%zz"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestConcurrencyLimitAndResults(t *testing.T) {
	src := &memSource{params: map[string]map[string]any{}}
	for i := range 10 {
		id := fmt.Sprintf("u%02d", i)
		src.machines = append(src.machines, Machine{UUID: id, Name: fmt.Sprintf("node%02d", 9-i)})
		src.params[id] = map[string]any{"n": i}
	}
	src.machines = append(src.machines, Machine{UUID: "ghost", Name: "zz-ghost"}) // params fail
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	run := func(ctx context.Context, cmd string, p map[string]any) (any, *models.Error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-release
		if p["n"] == 3 {
			return nil, bmc.Error(504, "no answer")
		}
		if p["ipmi/identify-duration"] != 5 {
			return nil, bmc.Error(500, "override missing")
		}
		return cmd + " ok", nil
	}
	var sum *Summary
	var merr *models.Error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sum, merr = Run(context.Background(), src, run, &Request{Command: "identify", Concurrency: 3,
			Overrides: map[string]any{"ipmi/identify-duration": 5}})
	}()
	plugintest.Eventually(t, 10*time.Second, "3 concurrent runs", func() bool { return inflight.Load() >= 3 })
	close(release)
	<-done
	if merr != nil {
		t.Fatal(merr)
	}
	if peak.Load() != 3 {
		t.Fatalf("peak concurrency %d, want 3", peak.Load())
	}
	if sum.Total != 11 || sum.Succeeded != 9 || sum.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if !slices.IsSortedFunc(sum.Results, func(a, b Result) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("results not sorted by name")
	}
	for _, r := range sum.Results {
		switch r.Machine {
		case "u03":
			if r.Error == nil || r.Error.Code != 504 {
				t.Fatalf("u03: %+v", r)
			}
		case "ghost":
			if r.Error == nil || r.Error.Code != 502 {
				t.Fatalf("ghost: %+v", r)
			}
		default:
			if r.Error != nil || r.Result != "identify ok" {
				t.Fatalf("%s: %+v", r.Machine, r)
			}
		}
	}
	src.listErr = errors.New("boom")
	if _, merr := Run(context.Background(), src, run, &Request{Command: "poweron"}); merr == nil || merr.Code != 502 {
		t.Fatalf("list failure: %v", merr)
	}
}

// TestEmptySelectionIsAnError: a filter that selects nothing must not read
// as success (an operator would power-cycle nothing without noticing),
// unless the caller said an empty selection is fine.
func TestEmptySelectionIsAnError(t *testing.T) {
	ran := false
	run := func(context.Context, string, map[string]any) (any, *models.Error) { ran = true; return "ok", nil }
	_, merr := Run(context.Background(), &memSource{}, run, &Request{Command: "powercycle", Filter: "rack=Eq(r99)", Filters: []string{"rack", "Eq(r99)"}})
	if merr == nil || merr.Code != 404 || merr.Messages[0] !=
		`no machine matches rack=Eq(r99) (ipmi/bulk-filter); set ipmi/bulk-allow-empty to true to allow an empty selection` {
		t.Fatalf("empty selection: %+v", merr)
	}
	sum, merr := Run(context.Background(), &memSource{}, run, &Request{Command: "powercycle", Filter: "rack=Eq(r99)", AllowEmpty: true})
	if merr != nil || sum.Total != 0 || sum.Results == nil || ran {
		t.Fatalf("allowed empty selection: %+v %v (ran %v)", sum, merr, ran)
	}
}

// TestAgainstProvisiond selects machines in a real provisiond by param,
// reads their aggregated params with the secure password decoded, and
// powers off their (reference) BMCs, leaving the unselected one alone.
func TestAgainstProvisiond(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Create(ctx, "params", &models.Param{Name: "ipmi/password", Secure: true, Schema: map[string]any{"type": "string"}}, nil); err != nil {
		t.Fatal(err)
	}
	var sims []*bmcsim.BMC
	for i, rack := range []string{"r1", "r1", "r2"} {
		s, err := bmcsim.Start(bmcsim.Options{Password: fmt.Sprintf("pw-%d", i), PoweredOn: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		sims = append(sims, s)
		m := &models.Machine{Name: fmt.Sprintf("node%d", i), Params: map[string]any{
			"rack": rack, "ipmi/address": s.Host, "ipmi/port-ipmitool": s.Port, "ipmi/username": "ADMIN",
			"ipmi/password": fmt.Sprintf("pw-%d", i), "ipmi/mode": "native",
		}}
		if err := c.Create(ctx, "machines", m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The password is stored sealed; only decode=true opens it.
	var sealed []models.Machine
	if err := c.List(ctx, "machines", &sealed, "Name", "Eq(node0)"); err != nil || len(sealed) != 1 {
		t.Fatalf("list: %v %d", err, len(sealed))
	}
	if sealed[0].Params["ipmi/password"] == "pw-0" {
		t.Fatal("the server stored the secure param in plain text")
	}

	d := actions.New(actions.Options{})
	defer d.Close()
	// The Params.<name> form matches nothing on the server: a 404 that
	// says so and how to fix it, and no machine touched.
	wrong, err := ParseFilter("Params.rack=Eq(r1)")
	if err != nil {
		t.Fatal(err)
	}
	_, merr := Run(ctx, ClientSource{C: c}, d.Run, &Request{Command: "poweroff", Filter: "Params.rack=Eq(r1)", Filters: wrong, Concurrency: 2})
	if merr == nil || merr.Code != 404 || len(merr.Messages) != 1 ||
		!strings.Contains(merr.Messages[0], `no machine matches Params.rack=Eq(r1)`) || !strings.Contains(merr.Messages[0], "(rack=...)") {
		t.Fatalf("empty match: %+v", merr)
	}
	sum, merr := Run(ctx, ClientSource{C: c}, d.Run, &Request{Command: "poweroff", Filter: "Params.rack=Eq(r1)", Filters: wrong, AllowEmpty: true})
	if merr != nil || sum.Total != 0 || len(sum.Results) != 0 {
		t.Fatalf("allowed empty match: %+v %v", sum, merr)
	}
	if !sims[0].Chassis.On() || !sims[1].Chassis.On() || !sims[2].Chassis.On() {
		t.Fatal("an empty match changed a power state")
	}
	filters, err := ParseFilter("rack=Eq(r1)")
	if err != nil {
		t.Fatal(err)
	}
	sum, merr = Run(ctx, ClientSource{C: c}, d.Run, &Request{Command: "poweroff", Filter: "rack=Eq(r1)", Filters: filters, Concurrency: 2})
	if merr != nil {
		t.Fatal(merr)
	}
	if sum.Total != 2 || sum.Succeeded != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if sims[0].Chassis.On() || sims[1].Chassis.On() || !sims[2].Chassis.On() {
		t.Fatalf("power: %v %v %v", sims[0].Chassis.On(), sims[1].Chassis.On(), sims[2].Chassis.On())
	}
}
