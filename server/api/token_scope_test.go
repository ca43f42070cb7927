package api_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

// jwtExpiry reads the exp claim of a token (the signature is the server's
// business; the test only looks at the lifetime it was given).
func jwtExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	buf, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(buf, &c); err != nil || c.Exp == 0 {
		t.Fatalf("token payload %s: %v", buf, err)
	}
	return time.Unix(c.Exp, 0)
}

// A process token (what a plugin instance gets as RS_TOKEN: claims *:*:*)
// keeps everything plugins need but can neither mint tokens nor change
// users, so it cannot outlive its revocation through a user token.
func TestProcessTokenCannotMintOrChangeUsers(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	tok, revoke, err := ts.Server.Auth().MintToken(t.Context(), "fake1",
		[]models.Claim{{Scope: "*", Action: "*", Specific: "*"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer revoke()
	as := servertest.Bearer(tok)
	do := func(method, path string, body any) (int, []byte) {
		resp, raw := servertest.DoAs(t, ts.URL, as, method, path, body)
		return resp.StatusCode, raw
	}

	// What plugins legitimately do.
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v3/info", nil, 200},
		{"POST", "/api/v3/machines", map[string]any{"Name": "m1"}, 201},
		{"GET", "/api/v3/machines", nil, 200},
		{"POST", "/api/v3/machines/Name:m1/params/incrementer/step", 2, 200},
		{"PATCH", "/api/v3/machines/Name:m1", []map[string]any{{"op": "replace", "path": "/Description", "value": "d"}}, 200},
		{"POST", "/api/v3/profiles", map[string]any{"Name": "p1"}, 201},
		{"POST", "/api/v3/params", map[string]any{"Name": "incrementer/step", "Schema": map[string]any{"type": "integer"}}, 201},
		{"POST", "/api/v3/profiles/global/params/some/flag", true, 200},
		{"POST", "/api/v3/events", map[string]any{"Type": "plugins", "Action": "note", "Key": "fake1"}, 204},
		{"GET", "/api/v3/users", nil, 200},
		{"DELETE", "/api/v3/machines/Name:m1", nil, 200},
	} {
		if code, raw := do(c.method, c.path, c.body); code != c.want {
			t.Fatalf("%s %s with a plugin token: %d %s, want %d", c.method, c.path, code, raw, c.want)
		}
	}

	// What no process token may do, whatever its claims.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v3/users/rocketskates/token?ttl=999999", nil},
		{"GET", "/api/v3/users/rocketskates/token?scope=machines&action=get", nil},
		{"POST", "/api/v3/users", map[string]any{"Name": "tokuser", "Roles": []string{"superuser"}}},
		{"PUT", "/api/v3/users/rocketskates/password", map[string]any{"Password": "stolen"}},
		{"PUT", "/api/v3/users/rocketskates", map[string]any{"Name": "rocketskates", "Roles": []string{"superuser"}}},
		{"PATCH", "/api/v3/users/rocketskates", []map[string]any{{"op": "replace", "path": "/Secret", "value": "x"}}},
		{"DELETE", "/api/v3/users/rocketskates", nil},
	} {
		resp, raw := servertest.DoAs(t, ts.URL, as, c.method, c.path, c.body)
		wantError(t, resp, raw, 403, "minted for a plugin or define")
	}
	// Nothing changed: no new user, the admin password still works.
	var users []models.User
	call(t, ts, "GET", "/api/v3/users", nil, &users)
	if len(users) != 1 || users[0].Name != servertest.AdminUser {
		t.Fatalf("users after refused changes: %+v", users)
	}
}

// A token can only mint tokens within its own rights and lifetime.
func TestTokenCannotMintWiderToken(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)

	// A token that may only mint tokens: asking for a full token (the
	// user's superuser rights) with it is refused, asking for a token no
	// wider than itself is not.
	minter := token(t, ts, admin, servertest.AdminUser, "?scope=users&action=token&specific=*&ttl=120")
	resp, body := servertest.DoAs(t, ts.URL, servertest.Bearer(minter), "GET", "/api/v3/users/rocketskates/token", nil)
	wantError(t, resp, body, 403, "exceeds the rights of the caller")
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(minter), "GET", "/api/v3/users/rocketskates/token?roles=superuser", nil)
	wantError(t, resp, body, 403, "exceeds the rights of the caller")
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(minter), "GET", "/api/v3/users/rocketskates/token?scope=machines&action=get", nil)
	wantError(t, resp, body, 403, "machines:get:*")
	narrow := token(t, ts, servertest.Bearer(minter), servertest.AdminUser, "?scope=users&action=token&specific=*&ttl=36000")
	// ... and never outlives its minter.
	if got, limit := jwtExpiry(t, narrow), jwtExpiry(t, minter); got.After(limit) {
		t.Fatalf("derived token expires %s, after its minter's %s", got, limit)
	}
	resp, body = servertest.DoAs(t, ts.URL, servertest.Bearer(narrow), "GET", "/api/v3/machines", nil)
	wantError(t, resp, body, 403, "Forbidden")

	// The password (the user's full rights) still mints full tokens.
	full := token(t, ts, admin, servertest.AdminUser, "?ttl=600")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(full), "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "full token")
	// A full token may mint a restricted one.
	ro := token(t, ts, servertest.Bearer(full), servertest.AdminUser, "?scope=machines&action=list")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.Bearer(ro), "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "restricted token")
}
