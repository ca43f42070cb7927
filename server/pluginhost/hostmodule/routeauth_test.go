package hostmodule

import (
	"encoding/json"

	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// routeCase is one method and path of the API, with the object it names
// existing so a handler cannot answer 404 before it checks rights.
type routeCase struct{ method, path string }

// credential is one way of presenting (bad or insufficient) credentials.
type credential struct {
	name  string
	authz string
	want  int // 401 or 403
	// sampled credentials cost a bcrypt comparison per request (a wrong
	// Basic password is never cached), so they walk one route of each
	// shape rather than all of them: authentication is one middleware
	// in front of every route, and -race makes bcrypt slow.
	sampled bool
}

// authenticatedOnly are the routes any authenticated principal may use,
// whatever its rights: DRP's /objects and /indexes describe the schema,
// and a user may mint a token no wider than its own rights or change its
// own password (each checked by its handler).
var authenticatedOnly = []string{
	"GET /api/v3/objects", "GET /api/v3/indexes", "GET /api/v3/indexes/:prefix", "GET /api/v3/indexes/:prefix/:field",
	// The event stream filters each event by the subscriber's rights.
	"GET /api/v3/ws",
}

// routeTableAnswer reports whether a 403-class caller got the answer that
// only describes the route table (no such route, or not that method),
// which is the same for every caller and reveals no object or state.
func routeTableAnswer(code int, raw []byte) bool {
	var me models.Error
	if json.Unmarshal(raw, &me) != nil || len(me.Messages) != 1 {
		return false
	}
	return (code == 404 && me.Messages[0] == "No route") || (code == 405 && me.Messages[0] == "Method not allowed")
}

// TestEveryRouteNeedsCredentials walks every route of a real provisiond
// with the plugin host (gin's fixed routes, and every object kind's list,
// item, params, param and sub-resource routes with each method) under
// every kind of bad credential (401) and every kind of valid but
// insufficient one (403), and checks the answer is that models.Error and
// never a success, a 404 or a 5xx that would leak existence or state. A
// valid caller may instead learn that a route or method does not exist
// (the route table is the same for everyone).
func TestEveryRouteNeedsCredentials(t *testing.T) {
	// Thousands of failed logins from one address would be throttled
	// (429, TestLoginThrottle's subject); this test is about the answer
	// each route gives one of them.
	e := startEnvConfig(t, "", "", map[string]string{"fake": "fake"}, func(c *config.Config) { c.LoginBurst = 1 << 20 })
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	admin := servertest.BasicAuth(servertest.AdminUser, e.ts.AdminPassword)
	adminDo := func(method, path string, body any) []byte {
		t.Helper()
		resp, raw := servertest.DoAs(t, e.ts.URL, admin, method, path, body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return raw
	}
	var m models.Machine
	_ = json.Unmarshal(adminDo("POST", "/api/v3/machines", map[string]any{"Name": "m1"}), &m)
	adminDo("POST", "/api/v3/profiles", map[string]any{"Name": "p1"})
	adminDo("POST", "/api/v3/users", map[string]any{"Name": "nobody"})
	adminDo("PUT", "/api/v3/users/nobody/password", map[string]any{"Password": "nobodypass"})
	adminDo("POST", "/api/v3/users", map[string]any{"Name": "revoked", "Roles": []string{"superuser"}})
	adminDo("PUT", "/api/v3/users/revoked/password", map[string]any{"Password": "revokedpass"})

	// One existing key per kind, so rights are checked before existence.
	keys := map[string]string{"machines": m.Uuid.String(), "profiles": "p1", "users": "nobody", "plugins": "fake1",
		"plugin_providers": "fake", "params": "fake/step"}
	objs := e.ts.Server.Objects()
	for _, p := range objs.Prefixes() {
		if keys[p] != "" {
			continue
		}
		var list []map[string]any
		_ = json.Unmarshal(adminDo("GET", "/api/v3/"+p, nil), &list)
		keys[p] = "missing"
		if len(list) > 0 {
			if k, ok := objs.Kind(p); ok {
				if v, ok := list[0][k.KeyField].(string); ok {
					keys[p] = v
				}
			}
		}
	}

	// Credentials that must be refused outright.
	adminToken := token(t, e, admin, servertest.AdminUser, "?ttl=3600")
	tampered := adminToken[:len(adminToken)-4] + flip(adminToken[len(adminToken)-4:])
	expiring := token(t, e, admin, servertest.AdminUser, "?ttl=1")
	revoked := token(t, e, servertest.BasicAuth("revoked", "revokedpass"), "revoked", "?ttl=3600")
	adminDo("PATCH", "/api/v3/users/revoked", []map[string]any{{"op": "replace", "path": "/Secret", "value": "rotated"}})
	waitFor(t, 30*time.Second, "the 1 s token to expire", func() bool {
		resp, _ := servertest.DoAs(t, e.ts.URL, servertest.Bearer(expiring), "GET", "/api/v3/info", nil)
		return resp.StatusCode == 401
	})
	creds := []credential{
		{"no credentials", "", 401, false},
		{"wrong password", servertest.BasicAuth(servertest.AdminUser, "wrong"), 401, true},
		{"unknown user", servertest.BasicAuth("ghost", "x"), 401, true},
		{"malformed bearer", "Bearer not.a.token", 401, false},
		{"tampered token", servertest.Bearer(tampered), 401, false},
		{"expired token", servertest.Bearer(expiring), 401, false},
		{"revoked token", servertest.Bearer(revoked), 401, false},
		{"other scheme", "Digest username=rocketskates", 401, false},
		// Valid credentials without the right.
		{"user without roles", servertest.BasicAuth("nobody", "nobodypass"), 403, false},
		{"token for another scope", servertest.Bearer(token(t, e, admin, servertest.AdminUser, "?scope=profiles&action=get&specific=none")), 403, false},
	}

	routes := allRoutes(e, keys)
	checked := 0
	for _, r := range routes {
		for _, c := range creds {
			want := c.want
			if (want == 403 && slices.Contains(authenticatedOnly, r.pattern)) || (c.sampled && !r.sample) {
				continue
			}
			resp, raw := servertest.DoAs(t, e.ts.URL, c.authz, r.method, r.path, map[string]any{})
			checked++
			if want == 403 && routeTableAnswer(resp.StatusCode, raw) {
				continue
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s with %s: %d, want %d: %.200s", r.method, r.path, c.name, resp.StatusCode, want, raw)
				continue
			}
			if r.method == http.MethodHead {
				continue
			}
			var me models.Error
			if err := json.Unmarshal(raw, &me); err != nil || me.Code != want || len(me.Messages) == 0 {
				t.Errorf("%s %s with %s: not a models.Error with code %d: %.200s", r.method, r.path, c.name, want, raw)
			}
		}
	}
	if len(routes) < 60 {
		t.Fatalf("only %d routes found; the walk misses some", len(routes))
	}
	t.Logf("checked %d routes x %d credential kinds (the 2 bcrypt-bound kinds on a sample of routes): %d requests", len(routes), len(creds), checked)
}

// route is a concrete request and the pattern it exercises; sample marks
// one route of each shape (every fixed route, and the machines routes).
type route struct {
	method, path, pattern string
	sample                bool
}

// allRoutes lists gin's fixed routes with their parameters filled in, and
// every object kind's generic routes (served by the API's dispatcher
// rather than gin's tree) with every method they answer.
func allRoutes(e *env, keys map[string]string) []route {
	fill := strings.NewReplacer(":prefix", "machines", ":field", "Name", ":name", "fake", ":plugin", "fake1",
		":cmd", "pid", "*path", "/anything", "*id", "/"+keys["machines"])
	var out []route
	for _, ri := range e.ts.Server.API().Engine().Routes() {
		if ri.Path == "/healthz" {
			continue // liveness is public by design
		}
		if ri.Path == "/metrics" && e.ts.Server.Config().MetricsOpen {
			continue
		}
		out = append(out, route{ri.Method, fill.Replace(ri.Path), ri.Method + " " + ri.Path, true})
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	for _, p := range e.ts.Server.Objects().Prefixes() {
		first := len(out)
		base := "/api/v3/" + p
		item := base + "/" + keys[p]
		for _, mth := range []string{"GET", "HEAD", "POST"} {
			out = append(out, route{mth, base, mth + " /" + p, false})
		}
		for _, mth := range methods {
			out = append(out, route{mth, item, mth + " /" + p + "/:id", false})
		}
		for _, mth := range []string{"GET", "POST", "PATCH"} {
			out = append(out, route{mth, item + "/params", mth + " /" + p + "/:id/params", false})
		}
		for _, mth := range []string{"GET", "POST", "PUT", "DELETE"} {
			out = append(out, route{mth, item + "/params/fake/step", mth + " /" + p + "/:id/params/:key", false})
		}
		out = append(out, route{"GET", item + "/pubkey", "GET /" + p + "/:id/pubkey", false},
			route{"GET", item + "/actions", "GET /" + p + "/:id/actions", false},
			route{"GET", item + "/actions/echo", "GET /" + p + "/:id/actions/:cmd", false},
			route{"POST", item + "/actions/echo", "POST /" + p + "/:id/actions/:cmd", false})
		if p == "machines" {
			for i := first; i < len(out); i++ {
				out[i].sample = true
			}
		}
	}
	out = append(out, route{"GET", "/api/v3/plugin_providers/fake/binary", "GET /plugin_providers/:id/binary", true},
		route{"GET", "/api/v3/nowhere", "GET /nowhere", true})
	return out
}

// flip changes every character of s, so a token's signature no longer
// verifies while its header and claims stay intact.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// token mints a token for user with authz and the query (?ttl=, ?scope=).
func token(t *testing.T, e *env, authz, user, query string) string {
	t.Helper()
	resp, raw := servertest.DoAs(t, e.ts.URL, authz, "GET", "/api/v3/users/"+user+"/token"+query, nil)
	var ut models.UserToken
	if resp.StatusCode != 200 || json.Unmarshal(raw, &ut) != nil || ut.Token == "" {
		t.Fatalf("token for %s%s: %d %s", user, query, resp.StatusCode, raw)
	}
	return ut.Token
}
