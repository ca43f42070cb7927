package drpcompat

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/provisionhq/provision/server/servertest"
)

// drpUUID mirrors github.com/pborman/uuid.UUID, the type of DRP's
// Machine.Uuid and CurrentJob: an empty UUID marshals as "" and "" unmarshals
// to an empty UUID.
type drpUUID []byte

func (u drpUUID) MarshalText() ([]byte, error) {
	if len(u) != 16 {
		return nil, nil
	}
	h := hex.EncodeToString(u)
	return []byte(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]), nil
}

func (u *drpUUID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(string(b), "-", ""))
	if err != nil || len(raw) != 16 {
		return errors.New("invalid UUID")
	}
	*u = raw
	return nil
}

func (u drpUUID) String() string { b, _ := u.MarshalText(); return string(b) }

// drpMachine mirrors DRP's v4 models.Machine as its client marshals it:
// every field, including those provisiond does not have (Profile,
// TaskErrorStacks, Fingerprint, Pool*, WorkflowComplete), with pborman
// UUIDs. drpcli sends whole objects of this shape on create and generates
// patches from two of them.
type drpMachine struct {
	Validated   bool
	Available   bool
	Errors      []string
	ReadOnly    bool
	Meta        map[string]string
	Endpoint    string
	Bundle      string
	Partial     bool
	Name        string
	Description string
	Uuid        drpUUID
	CurrentJob  drpUUID
	Address     net.IP
	Stage       string
	BootEnv     string
	Profiles    []string
	Profile     struct {
		Name, Description string
		Params            map[string]any
	}
	Params           map[string]any
	Tasks            []string
	CurrentTask      int
	RetryTaskAttempt int
	TaskErrorStacks  []any
	Runnable         bool
	Secret           string
	OS               string
	HardwareAddrs    []string
	Workflow         string
	Arch             string
	Locked           bool
	Context          string
	Fingerprint      struct {
		SSNHash, CSNHash, SystemUUID string
		MemoryIds                    []string
	}
	Pool             string
	PoolAllocated    bool
	PoolStatus       string
	WorkflowComplete bool
}

// TestObjectCRUD mirrors the Client model calls of api/client.go:
// CreateModel (POST the whole struct, decode into it), GetModel by key and
// by Name:<n>, ExistsModel (HEAD, 404 → false), ListModel with raw params
// and R.Filter forms, PutModel, PatchModel, PatchTo/PatchToFull (GenPatch
// = jsonpatch2.GenerateFull(old, new, true, paranoid)) and DeleteModel.
func TestObjectCRUD(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))

	// CreateModel: drpcli `machines create '{"Name":"m1"}'` decodes into
	// a zero models.Machine and posts all of it, "Uuid":"" included.
	m := &drpMachine{Name: "m1", Params: map[string]any{"color": "red"}}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	if st := c.last().Status; st != http.StatusCreated {
		t.Fatalf("create status %d", st)
	}
	if !strings.Contains(string(c.last().ReqBody), `"Uuid":""`) {
		t.Fatalf("the mirror does not send DRP's empty Uuid: %s", c.last().ReqBody)
	}
	if len(m.Uuid) != 16 || m.Name != "m1" || !m.Available {
		t.Fatalf("created %+v", m)
	}
	key := m.Uuid.String()

	// GetModel by key and by unique index.
	var byKey, byName drpMachine
	c.req().urlFor("machines", key).mustDo(t, &byKey)
	c.req().urlFor("machines", "Name:m1").mustDo(t, &byName)
	if byKey.Uuid.String() != key || byName.Uuid.String() != key {
		t.Fatalf("GetModel: %s / %s", byKey.Uuid, byName.Uuid)
	}

	// ExistsModel: HEAD; a 404 is "false", not an error.
	if err := c.req().head().urlFor("machines", key).do(nil); err != nil {
		t.Fatalf("ExistsModel(existing): %v", err)
	}
	if etag := c.last().Header.Get("ETag"); etag == "" {
		t.Fatal("HEAD of an object without ETag (drpcli etag prints it)")
	}
	err := c.req().head().urlFor("machines", "Name:nobody").do(nil)
	if e, ok := err.(*drpError); !ok || e.Code != http.StatusNotFound {
		t.Fatalf("ExistsModel(missing) = %v, want a 404 error", err)
	}

	// More machines for the list forms.
	for _, n := range []string{"m2", "m3"} {
		mm := &drpMachine{Name: n, Params: map[string]any{"color": "blue"}}
		c.req().post(mm).urlFor("machines").mustDo(t, mm)
	}
	// Lists come in key (Uuid) order, as in DRP; only "sort" orders by Name.
	names := func(list []drpMachine, sorted bool) string {
		var s []string
		for _, x := range list {
			s = append(s, x.Name)
		}
		if !sorted {
			slices.Sort(s)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		what string
		req  *drpReq
		want string
	}{
		{"ListModel raw", c.req().urlFor("machines").params("Name", "m2"), "m2"},
		{"Filter Eq", c.req().filter("machines", "Name", "Eq", "m3"), "m3"},
		{"Filter Ne + sort + reverse", c.req().filter("machines", "Name", "Ne", "m2", "sort", "Name", "reverse"), "m3,m1"},
		{"Filter In", c.req().filter("machines", "Name", "In", "m1,m3"), "m1,m3"},
		{"Filter Re", c.req().filter("machines", "Name", "Re", "^m[12]$"), "m1,m2"},
		{"Filter Between (two args)", c.req().filter("machines", "Name", "Between", "m2", "m3"), "m2,m3"},
		{"param as index", c.req().filter("machines", "color", "Eq", "blue"), "m2,m3"},
		{"limit/offset", c.req().filter("machines", "sort", "Name", "limit", "1", "offset", "1"), "m2"},
	} {
		var list []drpMachine
		if err := tc.req.do(&list); err != nil {
			t.Fatalf("%s (%s): %v", tc.what, c.last().URL, err)
		}
		if got := names(list, strings.Contains(c.last().URL, "sort=")); got != tc.want {
			t.Fatalf("%s (%s): %s, want %s", tc.what, c.last().URL, got, tc.want)
		}
	}
	sawEq := false
	for _, ex := range c.exchanges() {
		sawEq = sawEq || strings.HasSuffix(ex.URL, "/api/v3/machines?Name=Eq%28m3%29")
	}
	if !sawEq {
		t.Fatal("R.Filter's Name=Eq(m3) encoding was not sent")
	}
	// drpcli count: HEAD on the list, headers read back into a map.
	h := http.Header{}
	c.req().head().filter("machines", "color", "Eq", "blue").meth("HEAD").mustDo(t, &h)
	if h.Get("X-Drp-List-Count") != "2" || h.Get("X-Drp-List-Total-Count") != "3" || h.Get("X-Drp-List-Filter-Count") != "2" {
		t.Fatalf("list count headers %v", h)
	}

	// PutModel: the whole DRP struct, DRP-only fields and all.
	byKey.Description = "put"
	c.req().put(&byKey).urlFor("machines", key).mustDo(t, &byKey)
	if byKey.Description != "put" {
		t.Fatalf("PutModel: %+v", byKey)
	}

	// PatchTo (drpcli update without --ref): test+replace of the changed
	// fields only.
	old := byKey
	upd := byKey
	upd.Params = map[string]any{"color": "green", "size": 3}
	upd.Description = "patched"
	var res drpMachine
	c.req().patchObj(old, upd).urlFor("machines", key).mustDo(t, &res)
	if res.Description != "patched" || res.Params["color"] != "green" || res.Params["size"] != float64(3) {
		t.Fatalf("PatchTo: %+v", res)
	}

	// PatchToFull(paranoid) (drpcli update --ref): the patch starts with a
	// test of the whole document as the client holds it, DRP-only fields
	// included. Deliberate difference: fields provisiond does not have
	// cannot have changed, so the server compares only the fields it
	// stores; a real concurrent change still fails the test.
	old = res
	upd = res
	upd.Description = "paranoid"
	p, err := genPatch(old, upd, true)
	if err != nil {
		t.Fatal(err)
	}
	if p[0].Op != "test" || p[0].Path != "" {
		t.Fatalf("ParanoidPatch does not start with a whole-document test: %+v", p[0])
	}
	c.req().paranoidPatch().patchObj(old, upd).urlFor("machines", key).mustDo(t, &res)
	if res.Description != "paranoid" {
		t.Fatalf("paranoid PatchTo: %+v", res)
	}
	// The same paranoid patch again: the document changed, so it fails.
	err = c.req().paranoidPatch().patchObj(old, upd).urlFor("machines", key).do(&res)
	if e := asDRPError(t, err, http.StatusConflict); !strings.HasPrefix(e.Error(), "PATCH: machines/"+key) {
		t.Fatalf("stale paranoid patch: %v", e)
	}

	// PatchModel with a hand-written patch, as plugins do.
	patch := []map[string]any{{"op": "test", "path": "/Description", "value": "paranoid"},
		{"op": "replace", "path": "/Description", "value": "by hand"}}
	c.req().patch(patch).urlFor("machines", key).mustDo(t, &res)
	if res.Description != "by hand" {
		t.Fatalf("PatchModel: %+v", res)
	}

	// DeleteModel returns the deleted object.
	var gone drpMachine
	c.req().del().urlFor("machines", key).mustDo(t, &gone)
	if gone.Uuid.String() != key {
		t.Fatalf("DeleteModel returned %+v", gone)
	}
	if err := c.req().head().urlFor("machines", key).do(nil); err == nil {
		t.Fatal("deleted machine still exists")
	}
}

// TestRawJSONShape mirrors CreateModel then GetModel (api/client.go):
// what DRP's client marshals for a new machine and what it gets back
// round-trip: a machine created from DRP's
// JSON and read back decodes into DRP's struct and re-marshals to the same
// values for every field provisiond stores.
func TestRawJSONShape(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	m := &drpMachine{Name: "shape"}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	var raw map[string]json.RawMessage
	c.req().urlFor("machines", m.Uuid.String()).mustDo(t, &raw)
	again, _ := json.Marshal(m)
	var back map[string]json.RawMessage
	_ = json.Unmarshal(again, &back)
	for k, v := range raw {
		var a, b any
		_ = json.Unmarshal(v, &a)
		_ = json.Unmarshal(back[k], &b)
		aj, _ := json.Marshal(a)
		bj, _ := json.Marshal(b)
		if _, ok := back[k]; ok && string(aj) != string(bj) {
			t.Errorf("field %s: server %s, DRP round trip %s", k, aj, bj)
		}
	}
}

// TestConditionalGet: a GET with If-None-Match of the current ETag (the
// ETag HEAD shows, as drpcli etag prints it) answers 304, which R.Do must
// take as success: it has no body, so only a JSON Content-Type is needed.
func TestConditionalGet(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	m := &drpMachine{Name: "etag"}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	c.req().head().urlFor("machines", m.Uuid.String()).mustDo(t, nil)
	etag := c.last().Header.Get("ETag")
	var got drpMachine
	if err := c.req().urlFor("machines", m.Uuid.String()).headers("If-None-Match", etag).do(&got); err != nil {
		t.Fatalf("conditional GET: %v (answer %d %v)", err, c.last().Status, c.last().Header)
	}
	if c.last().Status != http.StatusNotModified || got.Name != "" {
		t.Fatalf("conditional GET answered %d, decoded %+v", c.last().Status, got)
	}
}
