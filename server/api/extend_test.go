package api_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/api"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/servertest"
)

// TestRuntimeKindsAndExtensions exercises what the plugin host relies on:
// a RawModel kind registered while serving, a sub-resource route, change
// hooks, unregistering, and ReadOnly objects.
func TestRuntimeKindsAndExtensions(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	objs := ts.Server.Objects()
	ctx := context.Background()
	var mu sync.Mutex
	var seen []string
	objs.OnChange("cows", func(ctx context.Context, c objects.Change) {
		mu.Lock()
		seen = append(seen, c.Action+":"+c.Key)
		mu.Unlock()
	})
	k := objects.RawKind("cows", map[string]models.Index{"Spotted": {Type: "boolean"}}, func(v objects.View, obj models.Model) error {
		r := *obj.(*models.RawModel)
		if _, ok := r["Spotted"].(bool); !ok {
			return errors.New("Error in value: (root): Spotted is required")
		}
		return nil
	})
	resp, body := ts.Do(t, "GET", "/api/v3/cows", nil)
	wantError(t, resp, body, 404, "No route")
	if err := objs.Register(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := objs.Register(ctx, k); err == nil {
		t.Fatal("registering cows twice succeeded")
	}
	ts.Server.API().HandleSub("cows", "moo", "GET", func(c *gin.Context) {
		if !api.Require(c, api.ObjectPrefix(c), "get", api.ObjectID(c)) {
			return
		}
		c.JSON(http.StatusOK, map[string]string{"cow": api.ObjectID(c), "rest": api.SubPath(c)})
	})

	var cow models.RawModel
	mustStatus(t, call(t, ts, "POST", "/api/v3/cows", map[string]any{"Id": "bertie", "Spotted": true, "Params": map[string]any{"x": 1}}, &cow), 201, "create cow")
	if cow["Type"] != "cows" || cow["Available"] != true {
		t.Fatalf("cow %v", cow)
	}
	resp, body = ts.Do(t, "POST", "/api/v3/cows", map[string]any{"Id": "fred1"})
	wantError(t, resp, body, 422, "ValidationError: cows/fred1: Error in value: (root): Spotted is required")
	var cows []models.RawModel
	call(t, ts, "GET", "/api/v3/cows?Spotted=true", nil, &cows)
	if len(cows) != 1 {
		t.Fatalf("cows %v", cows)
	}
	var v any
	call(t, ts, "GET", "/api/v3/cows/bertie/params/x", nil, &v)
	if v != float64(1) {
		t.Fatalf("cow param %v", v)
	}
	var moo map[string]string
	mustStatus(t, call(t, ts, "GET", "/api/v3/cows/bertie/moo/a/b", nil, &moo), 200, "sub route")
	if moo["cow"] != "bertie" || moo["rest"] != "a/b" {
		t.Fatalf("sub route got %v", moo)
	}
	resp, body = ts.Do(t, "POST", "/api/v3/cows/bertie/moo", nil)
	wantError(t, resp, body, 405, "Method not allowed")

	// Meta endpoints.
	var meta map[string]string
	mustStatus(t, call(t, ts, "PATCH", "/api/v3/meta/cows/bertie", []map[string]any{{"op": "add", "path": "/color", "value": "brown"}}, &meta), 200, "patch meta")
	call(t, ts, "GET", "/api/v3/meta/cows/bertie", nil, &meta)
	if meta["color"] != "brown" {
		t.Fatalf("meta %v", meta)
	}

	// Only writes marked AllowReadOnly may make an object ReadOnly.
	resp, body = ts.Do(t, "PATCH", "/api/v3/cows/bertie", []map[string]any{{"op": "replace", "path": "/ReadOnly", "value": true}})
	wantError(t, resp, body, 422, "ReadOnly cannot be set")
	resp, body = ts.Do(t, "POST", "/api/v3/cows", map[string]any{"Id": "locked", "ReadOnly": true})
	wantError(t, resp, body, 422, "ReadOnly cannot be set")
	if _, err := objs.Update(ctx, "host", "cows", "bertie", func(obj models.Model) error {
		(*obj.(*models.RawModel))["ReadOnly"] = true
		return nil
	}); err == nil {
		t.Fatal("unmarked internal write made an object ReadOnly")
	}
	// ReadOnly objects refuse API changes but not marked internal writes.
	if _, err := objs.Update(objects.AllowReadOnly(ctx), "host", "cows", "bertie", func(obj models.Model) error {
		(*obj.(*models.RawModel))["ReadOnly"] = true
		(*obj.(*models.RawModel))["Bundle"] = "farm"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refs := objs.ReadOnlyObjects(func(b string) bool { return b == "farm" }); len(refs) != 1 || refs[0] != (objects.ObjectRef{Prefix: "cows", Key: "bertie", Bundle: "farm"}) {
		t.Fatalf("ReadOnlyObjects: %+v", refs)
	}
	resp, body = ts.Do(t, "DELETE", "/api/v3/cows/bertie", nil)
	wantError(t, resp, body, 403, "Object is read only: it belongs to content bundle farm")
	resp, body = ts.Do(t, "PUT", "/api/v3/cows/bertie", map[string]any{"Id": "bertie"})
	wantError(t, resp, body, 403, "read only")
	resp, body = ts.Do(t, "POST", "/api/v3/cows/bertie/params/x", 1)
	wantError(t, resp, body, 403, "read only")
	if _, err := objs.Delete(objects.AllowReadOnly(ctx), "host", "cows", "bertie"); err != nil {
		t.Fatalf("override delete: %v", err)
	}

	mu.Lock()
	got := append([]string{}, seen...)
	mu.Unlock()
	want := []string{"create:bertie", "update:bertie", "update:bertie", "delete:bertie"}
	if len(got) != len(want) {
		t.Fatalf("hooks saw %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hooks saw %v, want %v", got, want)
		}
	}
	objs.Unregister("cows")
	resp, body = ts.Do(t, "GET", "/api/v3/cows", nil)
	wantError(t, resp, body, 404, "No route")

	// Param names with slashes are keys of the params kind.
	mustStatus(t, call(t, ts, "POST", "/api/v3/params", map[string]any{"Name": "a/b/c"}, nil), 201, "slashed param")
	var p models.Param
	mustStatus(t, call(t, ts, "GET", "/api/v3/params/a/b/c", nil, &p), 200, "get slashed param")
	if p.Name != "a/b/c" {
		t.Fatalf("param %+v", p)
	}
}

func TestMetricsAuth(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	resp, body := servertest.DoAs(t, ts.URL, "", "GET", "/metrics", nil)
	wantError(t, resp, body, 401)
	resp, _ = ts.Do(t, "GET", "/metrics", nil)
	mustStatus(t, resp, 200, "metrics with auth")
	open := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.MetricsOpen = true }})
	resp, _ = servertest.DoAs(t, open.URL, "", "GET", "/metrics", nil)
	mustStatus(t, resp, 200, "open metrics")
}
