package objects

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/events"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/store"
)

// newTestService returns a Service over a fresh bbolt store with the
// machines, profiles and params kinds.
func newTestService(t testing.TB, lim Limits) *Service {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "test.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, _ := quietService(t, dir, st, lim)
	registerKinds(t, s, standardKinds(s)...)
	return s
}

// quietService builds a Service over st, with secure-param keys in dir, a
// logger that discards and its own bus (returned for tests that watch it).
// It registers no kinds.
func quietService(t testing.TB, dir string, st store.Store, lim Limits) (*Service, *events.Bus) {
	t.Helper()
	keys, err := secrets.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus := events.NewBus(events.Options{Logger: log})
	s, err := New(Options{Store: st, Bus: bus, Keys: keys, Logger: log, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	return s, bus
}

// standardKinds are the profiles, params and machines kinds of s.
func standardKinds(s *Service) []Kind { return []Kind{ProfilesKind(), ParamsKind(s), MachinesKind()} }

// registerKinds registers kinds on s.
func registerKinds(t testing.TB, s *Service, kinds ...Kind) {
	t.Helper()
	for _, k := range kinds {
		if err := s.Register(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDoublingPatch is the finding of issue #9: copy ops from "" (the
// whole document) to /Params/cN, each doubling the document.
func copyDoublingPatch(n int) []byte {
	ops := make([]string, n)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"op":"copy","from":"","path":"/Params/c%d"}`, i)
	}
	return []byte("[" + strings.Join(ops, ",") + "]")
}

func mustPatch(t testing.TB, buf []byte) jsonpatch2.Patch {
	t.Helper()
	p, err := jsonpatch2.NewPatch(buf)
	if err != nil {
		t.Fatalf("patch %s: %v", buf, err)
	}
	return p
}

func TestApplyPatchStopsCopyDoubling(t *testing.T) {
	base := []byte(`{"Name":"m1","Description":"` + strings.Repeat("x", 500) + `","Params":{}}`)
	lim := DefaultLimits()
	out, err := applyPatch("machines", "m1", mustPatch(t, copyDoublingPatch(16)), base, lim)
	if err == nil {
		t.Fatalf("doubling patch applied, result %d bytes", len(out))
	}
	if err.Code != 422 || !strings.Contains(err.Error(), "--max-object-bytes") || !strings.Contains(err.Error(), "1048576") {
		t.Fatalf("error %+v", err)
	}
	// 538 bytes doubled 11 times (ops 0 to 10) passes 1 MiB: the patch
	// must stop at that op, not after 16.
	if !strings.Contains(err.Error(), "line 10 (copy /Params/c10)") {
		t.Fatalf("stopped at the wrong op: %v", err)
	}
	// The same patch within the limit is applied as jsonpatch2 does.
	small := mustPatch(t, copyDoublingPatch(3))
	got, err := applyPatch("machines", "m1", small, base, lim)
	if err != nil {
		t.Fatal(err)
	}
	want, lerr, _ := mustPatch(t, copyDoublingPatch(3)).Apply(base)
	if lerr != nil || string(got) != string(want) {
		t.Fatalf("result differs from jsonpatch2: %v\n%s\n%s", lerr, got, want)
	}
}

func TestApplyPatchLimits(t *testing.T) {
	lim := Limits{MaxObjectBytes: 4096, MaxNameBytes: 64, MaxPatchOps: 4}
	base := []byte(`{"Params":{}}`)
	_, err := applyPatch("machines", "m1", mustPatch(t, copyDoublingPatch(5)), base, lim)
	if err == nil || err.Code != 422 || !strings.Contains(err.Error(), "--max-patch-ops") {
		t.Fatalf("5 ops over a limit of 4: %v", err)
	}
	big := fmt.Sprintf(`[{"op":"add","path":"/Params/a","value":"%s"}]`, strings.Repeat("y", 5000))
	_, err = applyPatch("machines", "m1", mustPatch(t, []byte(big)), base, lim)
	if err == nil || err.Code != 422 || !strings.Contains(err.Error(), "line 0 (add /Params/a)") {
		t.Fatalf("one add over the size limit: %v", err)
	}
	// Copying and removing a big value over and over stays under the
	// size limit but not under the work limit.
	lim.MaxPatchOps = 1000
	lim.MaxObjectBytes = 8192
	val := strings.Repeat("z", 3000)
	ops := []string{fmt.Sprintf(`{"op":"add","path":"/Params/v","value":%q}`, val)}
	for i := 0; i < 60; i++ {
		ops = append(ops, `{"op":"copy","from":"/Params/v","path":"/Params/w"}`, `{"op":"remove","path":"/Params/w"}`)
	}
	_, err = applyPatch("machines", "m1", mustPatch(t, []byte("["+strings.Join(ops, ",")+"]")), base, lim)
	if err == nil || err.Code != 422 || !strings.Contains(err.Error(), "inserts and removes more than") {
		t.Fatalf("copy/remove cycles: %v", err)
	}
	// A failing test op keeps its 409.
	_, err = applyPatch("machines", "m1", mustPatch(t, []byte(`[{"op":"test","path":"/Params","value":{"a":1}}]`)), base, lim)
	if err == nil || err.Code != 409 {
		t.Fatalf("failing test op: %v", err)
	}
}

func TestJSONSizeIsExact(t *testing.T) {
	if jsonSize(nil, 10) != 0 {
		t.Error("an absent value (nil) has a size")
	}
	for _, doc := range []string{
		`true`, `false`, `0`, `1234567`, `0.000001`, `1e21`, `1e-7`, `"\b\f\t\r"`, `-1.5e-7`, `123456789012345678901234567890`, `1e300`, `"a\"b\\c\n\u0001<>&é\u2028"`,
		`[]`, `{}`, `[1,"x",{"a":[null,true]}]`, `{"a":{"b":{"c":"d"}},"e\u0000":[1,2,3]}`,
	} {
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		buf, _ := json.Marshal(v)
		if got := jsonSize(v, 1<<20); got != int64(len(buf)) {
			t.Errorf("jsonSize(%s) = %d, json.Marshal writes %d bytes (%s)", doc, got, len(buf), buf)
		}
		if len(buf) > 2 {
			if got := jsonSize(v, 1); got <= 1 {
				t.Errorf("jsonSize(%s, budget 1) = %d, want more than the budget", doc, got)
			}
		}
	}
}

// Keys, Names and param names longer than MaxNameBytes are refused
// with a 422 before anything is stored (bbolt answered a 100 KB key with
// an error that became a 507).
func TestLongNamesRefused(t *testing.T) {
	s := newTestService(t, Limits{MaxNameBytes: 100})
	ctx := t.Context()
	long := strings.Repeat("n", 100_000)
	check := func(what string, err error, want string) {
		t.Helper()
		var me *models.Error
		if !errors.As(err, &me) || me.Code != 422 || !strings.Contains(me.Error(), want) || !strings.Contains(me.Error(), "--max-name-bytes") {
			t.Fatalf("%s: %v", what, err)
		}
		if len(me.Error()) > 1000 {
			t.Fatalf("%s: the error echoes the long name (%d bytes)", what, len(me.Error()))
		}
	}
	_, err := s.Create(ctx, "t", "profiles", &models.Profile{Name: long})
	check("profile key", err, "Name (the key) is 100000 bytes long")
	_, err = s.Create(ctx, "t", "machines", &models.Machine{Name: long})
	check("machine name", err, "Name is 100000 bytes long")
	m, err := s.Create(ctx, "t", "machines", &models.Machine{Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SetParam(ctx, "t", "machines", m.Key(), strings.Repeat("p", 101), 1)
	check("param name", err, "param name")
	if n := s.Count("profiles"); n != 1 { // the global profile is not made here
		if n != 0 {
			t.Fatalf("profiles stored: %d", n)
		}
	}
	if n := s.Count("machines"); n != 1 {
		t.Fatalf("machines stored: %d", n)
	}
}

// FuzzApplyPatch applies arbitrary patches to arbitrary documents under
// small limits: it must never panic, and a result is always within the
// limit and equal to what jsonpatch2 itself makes of the patch.
func FuzzApplyPatch(f *testing.F) {
	f.Add([]byte(`{"Name":"m1","Params":{}}`), copyDoublingPatch(16))
	f.Add([]byte(`{"Params":{"a":[1,2,3]}}`), []byte(`[{"op":"move","from":"/Params/a","path":"/Params/b"},{"op":"add","path":"/Params/b/-","value":4}]`))
	f.Add([]byte(`{"a":{"b":"c"}}`), []byte(`[{"op":"test","path":"/a/b","value":"c"},{"op":"replace","path":"/a","value":{"x":1}},{"op":"remove","path":"/a/x"}]`))
	f.Add([]byte(`[1,2]`), []byte(`[{"op":"copy","from":"","path":"/0"},{"op":"copy","from":"","path":"/-"}]`))
	f.Add([]byte(`{"a":"<&>"}`), []byte(`[{"op":"add","path":"","value":{"b":"\u2028"}}]`))
	lim := Limits{MaxObjectBytes: 4096, MaxNameBytes: 64, MaxPatchOps: 64}
	f.Fuzz(func(t *testing.T, base, buf []byte) {
		var v any
		if json.Unmarshal(base, &v) != nil || len(base) > int(lim.MaxObjectBytes) {
			return
		}
		p, err := jsonpatch2.NewPatch(buf)
		if err != nil {
			return
		}
		out, perr := applyPatch("x", "k", p, base, lim)
		if perr != nil {
			if perr.Code != 409 && perr.Code != 422 {
				t.Fatalf("error code %d: %v", perr.Code, perr)
			}
			return
		}
		if int64(len(out)) > lim.MaxObjectBytes {
			t.Fatalf("result of %d bytes over the limit", len(out))
		}
		// Within the limits the patch means what jsonpatch2 says.
		p2, err := jsonpatch2.NewPatch(buf)
		if err != nil {
			t.Fatal(err)
		}
		want, lerr, _ := p2.Apply(base)
		if lerr != nil {
			t.Fatalf("applied, but jsonpatch2 fails: %v", lerr)
		}
		if string(want) != string(out) {
			t.Fatalf("result %s, jsonpatch2 makes %s", out, want)
		}
	})
}

// FuzzParseListQuery feeds arbitrary query strings to the list filter
// parser and runs the parsed query: it must never panic, and every refusal
// is a 400 models.Error.
func FuzzParseListQuery(f *testing.F) {
	for _, q := range []string{
		"Name=m1", "Name=Re(^m[0-9]+$)", "Name=Re((", "Address=Between(10.0.0.1,10.0.0.9)", "CurrentTask=Gt(2)",
		"Runnable=Eq(true)", "Name=In(a,b,c)&Name=Nin(d)", "Uuid=Except(a,b)", "offset=1&limit=2&sort=Name&reverse=true",
		"limit=x", "sort=Nope", "some/param=Eq(3)", "Address=Lt(nope)", "Between(1,2,3)", "Name=Between(a)",
	} {
		f.Add(q)
	}
	s := newTestService(f, Limits{})
	for i, name := range []string{"m1", "m2", "other"} {
		m := &models.Machine{Name: name, Params: map[string]any{"some/param": i}}
		if _, err := s.Create(f.Context(), "t", "machines", m); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := s.ParseListQuery("machines", q)
		if err != nil {
			var me *models.Error
			if !errors.As(err, &me) || me.Code != 400 {
				t.Fatalf("refusal is not a 400 models.Error: %v", err)
			}
			return
		}
		if _, err := s.List(t.Context(), "machines", lq, RenderOptions{}); err != nil {
			var me *models.Error
			if !errors.As(err, &me) || me.Code != 400 {
				t.Fatalf("list error is not a 400 models.Error: %v", err)
			}
		}
	})
}

func TestLimitDefaultsAndStoreKeyCap(t *testing.T) {
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Fatalf("zero limits became %+v", got)
	}
	if got := (Limits{MaxNameBytes: 1 << 20}).withDefaults().MaxNameBytes; got != MaxStoreKeyBytes {
		t.Fatalf("MaxNameBytes above the store's key limit kept: %d", got)
	}
}
