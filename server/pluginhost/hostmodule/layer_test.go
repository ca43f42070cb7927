package hostmodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
)

// TestContentLayerReadOnlyAndRollback: a provider's content objects are
// stored ReadOnly with Bundle <provider> as DRP shows them, users cannot
// change, delete or forge them, and a layer the server rejects part-way is
// rolled back completely (new provider and upgrade alike).
func TestContentLayerReadOnlyAndRollback(t *testing.T) {
	e := startEnv(t, "", "", nil)
	if code, raw := e.upload("fake", "fake", ""); code != 201 {
		t.Fatalf("upload: %d %s", code, raw)
	}
	var p models.Param
	if code, raw := e.do("GET", "/api/v3/params/fake/step", nil, &p); code != 200 || !p.ReadOnly || p.Bundle != "fake" {
		t.Fatalf("layer param: %d %s", code, raw)
	}
	var cow map[string]any
	if code, raw := e.do("GET", "/api/v3/fakes/bertie", nil, &cow); code != 200 || cow["ReadOnly"] != true || cow["Bundle"] != "fake" || cow["Size"] != float64(3) {
		t.Fatalf("layer custom object: %d %s", code, raw)
	}
	// Only ReadOnly objects are listed as the layer's: filters see them.
	var ro []models.Param
	if code, raw := e.do("GET", "/api/v3/params?ReadOnly=true&Bundle=fake", nil, &ro); code != 200 || len(ro) != 3 {
		t.Fatalf("filter on ReadOnly/Bundle: %d %s", code, raw)
	}

	for _, c := range []struct {
		method, path string
		body         any
		code         int
		msg          string
	}{
		{"PUT", "/api/v3/params/fake/step", map[string]any{"Name": "fake/step"}, 403, "Object is read only: it belongs to content bundle fake"},
		{"PATCH", "/api/v3/params/fake/step", []map[string]any{{"op": "replace", "path": "/Description", "value": "x"}}, 403, "read only"},
		{"DELETE", "/api/v3/params/fake/step", nil, 403, "read only"},
		{"DELETE", "/api/v3/fakes/bertie", nil, 403, "read only"},
		{"POST", "/api/v3/fakes/bertie/params/fake/step", 4, 403, "read only"},
		{"POST", "/api/v3/params", map[string]any{"Name": "fake/forged", "ReadOnly": true, "Bundle": "fake"}, 422, "ReadOnly cannot be set"},
	} {
		code, raw := e.do(c.method, c.path, c.body, nil)
		if code != c.code || !strings.Contains(string(raw), c.msg) {
			t.Errorf("%s %s: %d %s, want %d %q", c.method, c.path, code, raw, c.code, c.msg)
		}
	}
	// A user object that merely claims the bundle is not part of the
	// layer: replacing the layer never deletes it.
	if code, raw := e.do("POST", "/api/v3/fakes", map[string]any{"Id": "mine", "Size": 1, "Bundle": "fake"}, nil); code != 201 {
		t.Fatalf("user object: %d %s", code, raw)
	}

	// Upgrade whose content the server rejects after saving part of it:
	// everything stays as v1 had it.
	code, raw := e.upload("fake", "fake-badcontent", "")
	if code != 422 || !strings.Contains(string(raw), "profiles/fake-broken") || !strings.Contains(string(raw), "Profile no-such-profile does not exist") {
		t.Fatalf("bad upgrade: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v3/fakes/bertie", nil, &cow); code != 200 || cow["Size"] != float64(3) || cow["ReadOnly"] != true {
		t.Fatalf("layer object not rolled back: %d %s", code, raw)
	}
	var pp models.PluginProviderInfo
	if code, raw := e.do("GET", "/api/v3/plugin_providers/fake", nil, &pp); code != 200 || pp.Version != "v1" {
		t.Fatalf("provider after a failed upgrade: %d %s", code, raw)
	}
	if code, raw := e.upload("fake", "fake-v2", ""); code != 201 {
		t.Fatalf("good upgrade: %d %s", code, raw)
	}
	if code, _ := e.do("GET", "/api/v3/fakes/mine", nil, nil); code != 200 {
		t.Fatal("user object claiming the bundle was deleted with the old layer")
	}

	// New provider whose content fails part-way: nothing of it remains.
	code, raw = e.upload("badcontent", "badcontent", "")
	if code != 422 || !strings.Contains(string(raw), "bad store") {
		t.Fatalf("bad provider: %d %s", code, raw)
	}
	for _, path := range []string{"/api/v3/params/badcontent/step", "/api/v3/plugin_providers/badcontent", "/api/v3/profiles/badcontent-broken", "/api/v3/badcontents"} {
		if code, raw := e.do("GET", path, nil, nil); code != 404 {
			t.Errorf("%s after a failed load: %d %s", path, code, raw)
		}
	}
	if code, raw := e.do("GET", "/api/v3/params?Bundle=badcontent", nil, nil); code != 200 || string(raw) != "[]" {
		t.Errorf("objects of the failed layer remain: %d %s", code, raw)
	}
}

// TestOrphanLayerRemovedOnRestart: a provider removed while the server was
// down leaves its stored ReadOnly layer behind, which nobody else could
// delete; the host removes it once discovery has run.
func TestOrphanLayerRemovedOnRestart(t *testing.T) {
	base := t.TempDir()
	e := startEnv(t, base, "", nil)
	if code, raw := e.upload("fake", "fake", ""); code != 201 {
		t.Fatalf("upload: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v3/params/fake/step", nil, nil); code != 200 {
		t.Fatalf("layer param: %d %s", code, raw)
	}
	pw := e.ts.AdminPassword
	e.ts.Stop(t)
	if err := os.Remove(filepath.Join(base, "plugins", "fake")); err != nil {
		t.Fatal(err)
	}
	e2 := startEnv(t, base, pw, nil)
	if code, raw := e2.do("GET", "/api/v3/params?Bundle=fake", nil, nil); code != 200 || string(raw) != "[]" {
		t.Fatalf("orphaned layer objects: %d %s", code, raw)
	}
}
