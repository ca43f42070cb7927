package api_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

func TestMachineCRUD(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	var m models.Machine
	resp := call(t, ts, "POST", "/api/v3/machines", map[string]any{"Name": "m1", "Description": "first"}, &m)
	mustStatus(t, resp, 201, "create")
	if m.Uuid.String() == "00000000-0000-0000-0000-000000000000" || m.Name != "m1" || !m.Available {
		t.Fatalf("created machine %+v", m)
	}
	key := m.Uuid.String()

	var got models.Machine
	mustStatus(t, call(t, ts, "GET", "/api/v3/machines/"+key, nil, &got), 200, "get by key")
	if got.Name != "m1" {
		t.Fatalf("get: %+v", got)
	}
	mustStatus(t, call(t, ts, "GET", "/api/v3/machines/Name:m1", nil, &got), 200, "get by Name index")
	if got.Uuid != m.Uuid {
		t.Fatalf("Name:m1 found %s", got.Uuid)
	}
	resp, _ = ts.Do(t, "HEAD", "/api/v3/machines/"+key, nil)
	mustStatus(t, resp, 200, "head")
	if resp.Header.Get("ETag") == "" {
		t.Fatal("HEAD without ETag")
	}

	// Duplicate key and duplicate unique Name.
	resp, body := ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "m2", "Uuid": key})
	wantError(t, resp, body, 409, "CREATE: machines/"+key+": already exists")
	// The error names the object as the client sent it (its Name; the
	// server never chose a Uuid the client saw), in DRP's form.
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "m1"})
	e := wantError(t, resp, body, 409)
	if want := `CREATE: machines/m1: Name "m1" already used by machines/` + key; e.Error() != want || e.Key != "m1" {
		t.Fatalf("duplicate Name: %q (Key %q), want %q (Key m1)", e.Error(), e.Key, want)
	}
	// With the Uuid sent, the Key is that Uuid.
	sent := "0b7d3c4e-5f60-4a1b-9c2d-3e4f5a6b7c8d"
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "m1", "Uuid": sent})
	e = wantError(t, resp, body, 409)
	if want := `CREATE: machines/` + sent + `: Name "m1" already used by machines/` + key; e.Error() != want {
		t.Fatalf("duplicate Name with Uuid: %q, want %q", e.Error(), want)
	}
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Description": "no name"})
	e = wantError(t, resp, body, 422, "ValidationError", "Name must not be empty")
	if e.Key != "" {
		t.Fatalf("validation error of a nameless new machine shows a generated Key %q", e.Key)
	}
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "m9", "Params": map[string]any{"bad name!": 1}})
	if resp.StatusCode < 400 {
		t.Fatalf("bad param name accepted: %s", body)
	}
	if e = wantError(t, resp, body, resp.StatusCode); e.Key != "m9" {
		t.Fatalf("error of a new machine shows Key %q, want its Name m9", e.Key)
	}

	// PUT replaces; the key cannot change.
	got.Description = "replaced"
	var put models.Machine
	mustStatus(t, call(t, ts, "PUT", "/api/v3/machines/"+key, got, &put), 200, "put")
	if put.Description != "replaced" {
		t.Fatalf("put: %+v", put)
	}
	other := got
	other.Uuid[0] ^= 0xff
	resp, body = ts.Do(t, "PUT", "/api/v3/machines/"+key, other)
	wantError(t, resp, body, 400, "Key change")

	// List and counts.
	for i := 2; i <= 4; i++ {
		mustStatus(t, call(t, ts, "POST", "/api/v3/machines", map[string]any{"Name": fmt.Sprintf("m%d", i)}, nil), 201, "create more")
	}
	var list []models.Machine
	resp = call(t, ts, "GET", "/api/v3/machines?Name=Ne(m1)", nil, &list)
	mustStatus(t, resp, 200, "list")
	if len(list) != 3 || resp.Header.Get("X-DRP-LIST-TOTAL-COUNT") != "4" || resp.Header.Get("X-DRP-LIST-FILTER-COUNT") != "3" {
		t.Fatalf("list: %d items, headers %v", len(list), resp.Header)
	}
	resp, body = ts.Do(t, "HEAD", "/api/v3/machines?limit=2", nil)
	mustStatus(t, resp, 200, "head list")
	if resp.Header.Get("X-DRP-LIST-COUNT") != "2" || resp.Header.Get("X-DRP-LIST-TOTAL-COUNT") != "4" || len(body) != 0 {
		t.Fatalf("HEAD list headers %v body %q", resp.Header, body)
	}

	// Delete returns the object; then it is gone.
	var del models.Machine
	mustStatus(t, call(t, ts, "DELETE", "/api/v3/machines/Name:m1", nil, &del), 200, "delete")
	if del.Uuid != m.Uuid {
		t.Fatalf("deleted %s", del.Uuid)
	}
	resp, body = ts.Do(t, "GET", "/api/v3/machines/"+key, nil)
	wantError(t, resp, body, 404, "GET: machines/"+key+": Not Found")
	resp, body = ts.Do(t, "DELETE", "/api/v3/machines/"+key, nil)
	wantError(t, resp, body, 404, "DELETE: machines/"+key+": Not Found")

	// Secret never shown.
	if strings.Contains(string(body), "Secret\":\"x") {
		t.Fatal("secret leaked")
	}
}

func TestGlobalProfileAndPluginKinds(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	var g models.Profile
	mustStatus(t, call(t, ts, "GET", "/api/v3/profiles/global", nil, &g), 200, "global exists")
	resp, body := ts.Do(t, "DELETE", "/api/v3/profiles/global", nil)
	wantError(t, resp, body, 409, "global profile cannot be deleted")

	var p models.Plugin
	mustStatus(t, call(t, ts, "POST", "/api/v3/plugins", map[string]any{"Name": "i-woman", "Provider": "incrementer"}, &p), 201, "create plugin")
	if !p.Available || p.Params == nil || p.PluginErrors == nil {
		t.Fatalf("plugin %+v", p)
	}
	resp, body = ts.Do(t, "POST", "/api/v3/plugins", map[string]any{"Name": "i-woman", "Provider": "incrementer"})
	wantError(t, resp, body, 409, "CREATE: plugins/i-woman: already exists")
	resp, body = ts.Do(t, "POST", "/api/v3/plugins", map[string]any{"Name": "other", "Provider": ""})
	wantError(t, resp, body, 422, "ValidationError: plugins/other: Invalid Provider")
	resp, body = ts.Do(t, "POST", "/api/v3/plugins", map[string]any{"Provider": "x"})
	wantError(t, resp, body, 400, "CREATE: plugins: Empty key not allowed")
	resp, body = ts.Do(t, "GET", "/api/v3/plugins/john", nil)
	wantError(t, resp, body, 404, "GET: plugins/john: Not Found")
	var plugins []models.Plugin
	mustStatus(t, call(t, ts, "GET", "/api/v3/plugins?Provider=incrementer", nil, &plugins), 200, "filter by provider")
	if len(plugins) != 1 {
		t.Fatalf("plugins %v", plugins)
	}
	mustStatus(t, call(t, ts, "POST", "/api/v3/plugin_providers", map[string]any{"Name": "incrementer", "Version": "v1", "PluginVersion": 4, "Content": "big"}, nil), 201, "create provider")
	resp, body = ts.Do(t, "GET", "/api/v3/plugin_providers/incrementer", nil)
	mustStatus(t, resp, 200, "get provider")
	if strings.Contains(string(body), "big") {
		t.Fatalf("provider Content shown: %s", body)
	}
	var idx map[string]models.Index
	mustStatus(t, call(t, ts, "GET", "/api/v3/indexes/machines", nil, &idx), 200, "indexes")
	if !idx["Name"].Unique || !idx["Uuid"].Unique {
		t.Fatalf("indexes %+v", idx)
	}
	var info models.Info
	mustStatus(t, call(t, ts, "GET", "/api/v3/info", nil, &info), 200, "info")
	found := false
	for _, f := range info.Features {
		found = found || f == "secure-param-upgrade"
	}
	if !found || info.ApiPort == 0 {
		t.Fatalf("info %+v", info)
	}
	if r, _ := servertest.DoAs(t, ts.URL, "", "GET", "/healthz", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", r.StatusCode)
	}
}

func TestGeneratedAdminPassword(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.AdminPassword = "" }})
	path := filepath.Join(ts.BaseRoot, server.AdminPasswordFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin password file: %v %v", st, err)
	}
	buf, _ := os.ReadFile(path)
	pw := strings.TrimSpace(string(buf))
	if len(pw) < 16 || !strings.Contains(ts.Logs(), pw) {
		t.Fatalf("generated password %q not printed once", pw)
	}
	resp, _ := servertest.DoAs(t, ts.URL, servertest.BasicAuth(servertest.AdminUser, pw), "GET", "/api/v3/info", nil)
	mustStatus(t, resp, 200, "login with generated password")
}

func TestStaticFileServer(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	dir := filepath.Join(ts.BaseRoot, "tftpboot", "files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("ImaFile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ts.StaticURL, "http://127.0.0.1:") {
		t.Fatalf("static URL %s", ts.StaticURL)
	}
	resp, body := servertest.DoAs(t, ts.StaticURL, "", "GET", "/files/hello.txt", nil)
	if resp.StatusCode != 200 || string(body) != "ImaFile" {
		t.Fatalf("static file: %d %q", resp.StatusCode, body)
	}
	resp, _ = servertest.DoAs(t, ts.StaticURL, "", "GET", "/../provision.db", nil)
	if resp.StatusCode == 200 {
		t.Fatal("static server escaped its root")
	}
}
