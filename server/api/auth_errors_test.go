package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

func token(t *testing.T, ts *servertest.Server, authz, user, query string) string {
	t.Helper()
	resp, body := servertest.DoAs(t, ts.URL, authz, "GET", "/api/v3/users/"+user+"/token"+query, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("token for %s: %d %s", user, resp.StatusCode, body)
	}
	var ut models.UserToken
	if err := json.Unmarshal(body, &ut); err != nil || ut.Token == "" {
		t.Fatalf("token answer %s: %v", body, err)
	}
	return ut.Token
}

func TestAuth(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)

	for name, authz := range map[string]string{
		"none":         "",
		"bad password": servertest.BasicAuth(servertest.AdminUser, "wrong"),
		"no user":      servertest.BasicAuth("ghost", "x"),
		"bad token":    "Bearer not.a.token",
		"bad scheme":   "Digest abc",
	} {
		resp, body := servertest.DoAs(t, ts.URL, authz, "GET", "/api/v3/machines", nil)
		wantError(t, resp, body, 401)
		_ = name
	}
	// Unknown routes also need credentials.
	resp, body := servertest.DoAs(t, ts.URL, "", "GET", "/api/v3/nowhere", nil)
	wantError(t, resp, body, 401)

	// A full token works; a restricted one gets 403 outside its claim.
	full := token(t, ts, admin, servertest.AdminUser, "?ttl=600")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(full), "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "full token")
	ro := token(t, ts, admin, servertest.AdminUser, "?scope=machines&action=list")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(ro), "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "restricted token in scope")
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(ro), "GET", "/api/v3/profiles", nil)
	wantError(t, resp, body, 403, "Forbidden")
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(ro), "POST", "/api/v3/machines", map[string]any{"Name": "x"})
	wantError(t, resp, body, 403)
	// A restricted token cannot mint itself a wider one.
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(ro), "GET", "/api/v3/users/rocketskates/token", nil)
	wantError(t, resp, body, 403)
	resp, body = servertest.DoAs(t, ts.URL, admin, "GET", "/api/v3/users/rocketskates/token?ttl=-3", nil)
	wantError(t, resp, body, 400, "ttl")

	// A read-only user: list/get yes, writes and secure decode no.
	mustStatus(t, call(t, ts, "POST", "/api/v3/users", map[string]any{"Name": "viewer", "Roles": []string{"readonly"}}, nil), 201, "create user")
	resp, body = ts.Do(t, "PUT", "/api/v3/users/viewer/password", map[string]any{"Password": "viewpass"})
	mustStatus(t, resp, 200, "set password")
	if strings.Contains(string(body), "PasswordHash") || strings.Contains(string(body), "viewpass") {
		t.Fatalf("user answer shows the password: %s", body)
	}
	viewer := servertest.BasicAuth("viewer", "viewpass")
	resp, _ = servertest.DoAs(t, ts.URL, viewer, "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "viewer list")
	resp, body = servertest.DoAs(t, ts.URL, viewer, "POST", "/api/v3/machines", map[string]any{"Name": "x"})
	wantError(t, resp, body, 403)
	resp, body = servertest.DoAs(t, ts.URL, viewer, "GET", "/api/v3/users/viewer?decode=true", nil)
	wantError(t, resp, body, 403)
	vt := token(t, ts, viewer, "viewer", "")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(vt), "GET", "/api/v3/users", nil)
	mustStatus(t, resp, 200, "viewer token")
	var users []map[string]any
	call(t, ts, "GET", "/api/v3/users", nil, &users)
	for _, u := range users {
		if _, ok := u["PasswordHash"]; ok || u["Secret"] != "" {
			t.Fatalf("user listing shows secrets: %v", u)
		}
	}

	// Revocation: changing the user's Secret invalidates its tokens.
	patch := []map[string]any{{"op": "replace", "path": "/Secret", "value": "rotated"}}
	mustStatus(t, call(t, ts, "PATCH", "/api/v3/users/viewer", patch, nil), 200, "rotate secret")
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(vt), "GET", "/api/v3/users", nil)
	wantError(t, resp, body, 401, "revoked")
	// Basic still works after rotation (password unchanged by the patch).
	resp, _ = servertest.DoAs(t, ts.URL, viewer, "GET", "/api/v3/users", nil)
	mustStatus(t, resp, 200, "viewer basic after rotate")

	// Minted process tokens are revoked by their revoke function.
	tok, revoke, err := ts.Server.Auth().MintToken(t.Context(), "plugin:incr", []models.Claim{{Scope: "machines", Action: "*", Specific: "*"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(tok), "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "minted token")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(tok), "GET", "/api/v3/users", nil)
	mustStatus(t, resp, 403, "minted token out of scope")
	revoke()
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(tok), "GET", "/api/v3/machines", nil)
	wantError(t, resp, body, 401, "revoked")
}

func TestBadInputErrors(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.MaxBodyBytes = 4096 }})
	resp, body := ts.Do(t, "GET", "/api/v3/freds/john", nil)
	e := wantError(t, resp, body, 404, "No route")
	if e.Type != "GET" || e.Key != "/api/v3/freds/john" {
		t.Fatalf("no route error %+v", e)
	}
	resp, body = ts.Do(t, "GET", "/not/api", nil)
	wantError(t, resp, body, 404, "No route")
	resp, body = ts.Do(t, "DELETE", "/api/v3/machines", nil)
	wantError(t, resp, body, 405, "Method not allowed")
	resp, body = ts.Do(t, "POST", "/api/v3/info", nil)
	wantError(t, resp, body, 405, "Method not allowed")
	resp, body = ts.Do(t, "POST", "/api/v3/machines", `{"Name": "x",`)
	wantError(t, resp, body, 400, "Invalid JSON")
	resp, body = ts.Do(t, "POST", "/api/v3/machines", `[1,2]`)
	wantError(t, resp, body, 400, "JSON object")
	resp, body = ts.Do(t, "POST", "/api/v3/machines", `{"Name": 7}`)
	wantError(t, resp, body, 400, "Invalid JSON")
	big := `{"Name":"big","Description":"` + strings.Repeat("x", 8192) + `"}`
	resp, body = ts.Do(t, "POST", "/api/v3/machines", big)
	wantError(t, resp, body, 413, "larger than 4096")
	// Chunked body (no Content-Length) is cut off too.
	req, _ := http.NewRequest("POST", ts.URL+"/api/v3/machines", strings.NewReader(big))
	req.ContentLength = -1
	req.SetBasicAuth(servertest.AdminUser, ts.AdminPassword)
	r2, err := servertest.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 413 {
		t.Fatalf("chunked oversized body: %d", r2.StatusCode)
	}
	resp, body = ts.Do(t, "POST", "/api/v3/events", `{"Type":""}`)
	wantError(t, resp, body, 422, "Type")
	resp, body = ts.Do(t, "GET", "/api/v3/machines/x/params/a/b", nil)
	wantError(t, resp, body, 404, "Not Found")
	resp, body = ts.Do(t, "GET", "/api/v3/machines?limit=abc", nil)
	wantError(t, resp, body, 400, "limit")

	var list []models.Machine
	call(t, ts, "GET", "/api/v3/machines", nil, &list)
	if len(list) != 0 {
		t.Fatalf("bad input created machines: %v", list)
	}
	resp, _ = ts.Do(t, "POST", "/api/v3/events", map[string]any{"Type": "custom", "Action": "poke", "Key": "k"})
	mustStatus(t, resp, 204, "post event")
}
