package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// copyOps is the patch of issue #9: copy ops from "" (the whole object)
// to /Params/c<first>..., each doubling the object.
func copyOps(first, n int) []map[string]any {
	ops := make([]map[string]any, 0, n)
	for i := first; i < first+n; i++ {
		ops = append(ops, map[string]any{"op": "copy", "from": "", "path": fmt.Sprintf("/Params/c%d", i)})
	}
	return ops
}

// getRaw returns the API form and ETag of one object.
func getRaw(t *testing.T, ts *servertest.Server, path string) (string, string) {
	t.Helper()
	resp, body := ts.Do(t, "GET", path, nil)
	mustStatus(t, resp, 200, "GET "+path)
	return string(body), resp.Header.Get("ETag")
}

// Issue #9, item 1: one small PATCH of copy ops doubled a machine per op
// (16 ops: 31.7 MB stored, 1.78 GB of server memory). It is refused at the
// op that would pass --max-object-bytes, with nothing stored.
func TestCopyDoublingPatchRefused(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	m := newMachine(t, ts, map[string]any{"Name": "amp", "Description": strings.Repeat("d", 500)})
	path := "/api/v3/machines/" + m.Uuid.String()
	before, etag := getRaw(t, ts, path)

	resp, body := ts.Do(t, "PATCH", path, copyOps(0, 16))
	wantError(t, resp, body, 422, "--max-object-bytes", "RS_MAX_OBJECT_BYTES", "1048576", "nothing was stored", "(copy /Params/c")
	// The same through the params route.
	resp, body = ts.Do(t, "PATCH", path+"/params", []map[string]any{
		{"op": "add", "path": "/a", "value": strings.Repeat("p", 1000)},
		{"op": "copy", "from": "", "path": "/b"}, {"op": "copy", "from": "", "path": "/c"}, {"op": "copy", "from": "", "path": "/d"},
		{"op": "copy", "from": "", "path": "/e"}, {"op": "copy", "from": "", "path": "/f"}, {"op": "copy", "from": "", "path": "/g"},
		{"op": "copy", "from": "", "path": "/h"}, {"op": "copy", "from": "", "path": "/i"}, {"op": "copy", "from": "", "path": "/j"},
		{"op": "copy", "from": "", "path": "/k"}, {"op": "copy", "from": "", "path": "/l"}, {"op": "copy", "from": "", "path": "/m"},
	})
	wantError(t, resp, body, 422, "--max-object-bytes")
	after, etag2 := getRaw(t, ts, path)
	if after != before || etag2 != etag {
		t.Fatalf("refused patches changed the machine:\n%s\n%s", before, after)
	}

	// Too many operations, even harmless ones.
	ops := make([]map[string]any, 1001)
	for i := range ops {
		ops[i] = map[string]any{"op": "test", "path": "/Name", "value": "amp"}
	}
	resp, body = ts.Do(t, "PATCH", path, ops)
	wantError(t, resp, body, 422, "1001 operations", "limit of 1000", "--max-patch-ops", "RS_MAX_PATCH_OPS")
}

// The finding's other form: 16 one-op PATCHes, each doubling the object.
// Every write is bounded by its result, so the one that would pass the
// limit is refused, and what is stored survives a restart unchanged.
func TestOneOpPatchesStopAtLimitAcrossRestart(t *testing.T) {
	const limit = 64 << 10
	base := t.TempDir()
	pw := "limits-test-password"
	small := func(c *config.Config) { c.MaxObjectBytes = limit }
	ts := servertest.Start(t, servertest.Options{BaseRoot: base, AdminPassword: pw, Config: small})
	m := newMachine(t, ts, map[string]any{"Name": "amp1", "Description": strings.Repeat("d", 500)})
	path := "/api/v3/machines/" + m.Uuid.String()
	refused := -1
	for i := 0; i < 16; i++ {
		resp, body := ts.Do(t, "PATCH", path, copyOps(i, 1))
		if resp.StatusCode == http.StatusOK {
			continue
		}
		wantError(t, resp, body, 422, "--max-object-bytes", fmt.Sprint(limit))
		refused = i
		break
	}
	if refused < 0 || refused > 8 {
		t.Fatalf("the doubling PATCH was refused at op %d; 600 bytes pass 64 KiB after 7 doublings", refused)
	}
	stored, etag := getRaw(t, ts, path)
	if len(stored) > limit {
		t.Fatalf("stored machine is %d bytes, over the %d limit", len(stored), limit)
	}
	// A refused write changed nothing, also on disk.
	resp, body := ts.Do(t, "PATCH", path, copyOps(100, 1))
	wantError(t, resp, body, 422, "--max-object-bytes")
	ts.Stop(t)
	ts = servertest.Start(t, servertest.Options{BaseRoot: base, AdminPassword: pw, Config: small})
	again, etag2 := getRaw(t, ts, path)
	if again != stored || etag2 != etag {
		t.Fatalf("machine changed across the restart: %d bytes before, %d after", len(stored), len(again))
	}
}

// Every write is bounded by the size of its result: create, replace, the
// three param writes.
func TestObjectSizeLimitOnEveryWrite(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.MaxObjectBytes = 8192 }})
	big := strings.Repeat("b", 9000)
	resp, body := ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "huge", "Description": big})
	wantError(t, resp, body, 422, "more than the limit of 8192 bytes", "--max-object-bytes")
	resp, body = ts.Do(t, "POST", "/api/v3/profiles", map[string]any{"Name": "huge", "Params": map[string]any{"x": big}})
	wantError(t, resp, body, 422, "--max-object-bytes")
	var list []models.Machine
	call(t, ts, "GET", "/api/v3/machines", nil, &list)
	if len(list) != 0 {
		t.Fatalf("refused create stored %d machines", len(list))
	}
	m := newMachine(t, ts, map[string]any{"Name": "m1"})
	path := "/api/v3/machines/" + m.Uuid.String()
	before, etag := getRaw(t, ts, path)
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"PUT", path, map[string]any{"Name": "m1", "Uuid": m.Uuid.String(), "Description": big}},
		{"PATCH", path, []map[string]any{{"op": "replace", "path": "/Description", "value": big}}},
		{"POST", path + "/params", map[string]any{"x": big}},
		{"PATCH", path + "/params", []map[string]any{{"op": "add", "path": "/x", "value": big}}},
		{"POST", path + "/params/x", fmt.Sprintf("%q", big)},
		{"PUT", path + "/params/x", fmt.Sprintf("%q", big)},
	} {
		resp, body := ts.Do(t, w.method, w.path, w.body)
		wantError(t, resp, body, 422, "--max-object-bytes", "nothing was stored")
	}
	after, etag2 := getRaw(t, ts, path)
	if after != before || etag2 != etag {
		t.Fatalf("refused writes changed the machine:\n%s\n%s", before, after)
	}
	// Writes within the limit still work as before.
	resp, _ = ts.Do(t, "POST", path+"/params/x", fmt.Sprintf("%q", strings.Repeat("s", 1000)))
	mustStatus(t, resp, 200, "param within the limit")
}

// Issue #9: a 100 KB Name answered 507 (bbolt refuses keys over 32 KiB).
// Over-long keys, Names and param names are a 422 naming the limit, and
// nothing is written.
func TestLongNamesAre422(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	long := strings.Repeat("n", 100_000)
	resp, body := ts.Do(t, "POST", "/api/v3/profiles", map[string]any{"Name": long})
	wantError(t, resp, body, 422, "100000 bytes long", "limit of 1024 bytes", "--max-name-bytes", "RS_MAX_NAME_BYTES")
	if len(body) > 2000 {
		t.Fatalf("the error echoes the name: %d bytes", len(body))
	}
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": long})
	wantError(t, resp, body, 422, "Name is 100000 bytes long", "--max-name-bytes")
	resp, body = ts.Do(t, "POST", "/api/v3/users", map[string]any{"Name": long})
	wantError(t, resp, body, 422, "--max-name-bytes")
	resp, body = ts.Do(t, "POST", "/api/v3/params", map[string]any{"Name": long})
	wantError(t, resp, body, 422, "--max-name-bytes")
	m := newMachine(t, ts, map[string]any{"Name": "m1"})
	path := "/api/v3/machines/" + m.Uuid.String()
	before, _ := getRaw(t, ts, path)
	resp, body = ts.Do(t, "POST", path+"/params/"+strings.Repeat("p", 2000), 1)
	wantError(t, resp, body, 422, "param name", "--max-name-bytes")
	resp, body = ts.Do(t, "PATCH", path, []map[string]any{{"op": "replace", "path": "/Name", "value": long}})
	wantError(t, resp, body, 422, "--max-name-bytes")
	if after, _ := getRaw(t, ts, path); after != before {
		t.Fatalf("refused writes changed the machine:\n%s\n%s", before, after)
	}
	var profiles []models.Profile
	call(t, ts, "GET", "/api/v3/profiles", nil, &profiles)
	for _, p := range profiles {
		if len(p.Name) > 1024 {
			t.Fatalf("a long-named profile was stored")
		}
	}
}
