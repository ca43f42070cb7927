package api_test

import (
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/servertest"
)

// provisiond loads the embedded provision-base bundle at start as a
// read-only content layer: its params are shown ReadOnly with Bundle
// provision-base and cannot be changed through the API.
func TestBaseContentLoadedReadOnly(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	for _, name := range []string{"machine-plugin", "kernel-console"} {
		var p models.Param
		mustStatus(t, call(t, ts, "GET", "/api/v3/params/"+name, nil, &p), 200, "get "+name)
		if !p.ReadOnly || p.Bundle != "provision-base" || p.Schema == nil {
			t.Fatalf("%s: ReadOnly %v Bundle %q Schema %v", name, p.ReadOnly, p.Bundle, p.Schema)
		}
	}
	resp, body := ts.Do(t, "DELETE", "/api/v3/params/machine-plugin", nil)
	wantError(t, resp, body, 403, "content bundle provision-base")
	resp, body = ts.Do(t, "PUT", "/api/v3/params/kernel-console", map[string]any{"Name": "kernel-console", "Schema": map[string]any{"type": "integer"}})
	wantError(t, resp, body, 403, "content bundle provision-base")
	// The schema is enforced like any param's.
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "m1", "Params": map[string]any{"machine-plugin": 7}})
	wantError(t, resp, body, 422, "machine-plugin")
	var list []models.Param
	mustStatus(t, call(t, ts, "GET", "/api/v3/params?Bundle=provision-base", nil, &list), 200, "list by bundle")
	if len(list) != 2 {
		t.Fatalf("provision-base params: %+v", list)
	}
}

// A restart reloads the layer in place, and a writable param a user made
// under one of its names (before upgrading to a version that ships it) is
// kept rather than replaced or refused.
func TestBaseContentKeepsUserObjectsAcrossRestart(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	base, pw := ts.BaseRoot, ts.AdminPassword
	// Simulate a database from before kernel-console was shipped: the
	// layer object is gone and a user defined the param themselves.
	if _, err := ts.Server.Objects().Delete(objects.AllowReadOnly(t.Context()), "system", "params", "kernel-console"); err != nil {
		t.Fatal(err)
	}
	user := map[string]any{"Name": "kernel-console", "Description": "mine", "Schema": map[string]any{"type": "string"}}
	mustStatus(t, call(t, ts, "POST", "/api/v3/params", user, nil), 201, "user param")
	ts.Stop(t)

	ts = servertest.Start(t, servertest.Options{BaseRoot: base, AdminPassword: pw})
	var p models.Param
	mustStatus(t, call(t, ts, "GET", "/api/v3/params/kernel-console", nil, &p), 200, "get kernel-console")
	if p.ReadOnly || p.Bundle != "" || p.Description != "mine" {
		t.Fatalf("user's kernel-console replaced: %+v", p)
	}
	mustStatus(t, call(t, ts, "GET", "/api/v3/params/machine-plugin", nil, &p), 200, "get machine-plugin")
	if !p.ReadOnly || p.Bundle != "provision-base" {
		t.Fatalf("machine-plugin after restart: %+v", p)
	}
}
