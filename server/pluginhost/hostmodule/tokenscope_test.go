package hostmodule

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// tokenLifetime returns exp-iat of a JWT.
func tokenLifetime(t *testing.T, tok string) time.Duration {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	buf, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Exp, Iat int64 }
	if err := json.Unmarshal(buf, &c); err != nil || c.Exp == 0 || c.Iat == 0 {
		t.Fatalf("token payload %s: %v", buf, err)
	}
	return time.Duration(c.Exp-c.Iat) * time.Second
}

// The RS_TOKEN a running plugin gets works for what plugins do but can
// neither mint tokens nor change users, and stops working when the
// instance stops.
func TestPluginTokenScope(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	code, v := e.action("/api/v3/system", "token", nil)
	tok, _ := v.(string)
	if code != 200 || tok == "" {
		t.Fatalf("token action: %d %v", code, v)
	}
	for _, c := range []struct {
		method, path string
		body         string
		want         int
	}{
		{"GET", "/api/v3/info", "", 200},
		{"POST", "/api/v3/machines", `{"Name":"tm"}`, 201},
		{"POST", "/api/v3/machines/Name:tm/params/fake/step", `3`, 200},
		{"POST", "/api/v3/fakes", `{"Id":"f1","Size":1}`, 201},
		{"POST", "/api/v3/events", `{"Type":"fake","Action":"x","Key":"k"}`, 204},
		{"GET", "/api/v3/users/rocketskates/token?ttl=999999", "", 403},
		{"POST", "/api/v3/users", `{"Name":"tokuser","Roles":["superuser"]}`, 403},
		{"PUT", "/api/v3/users/rocketskates/password", `{"Password":"stolen1"}`, 403},
	} {
		code, raw := e.doRaw(c.method, c.path, "application/json", []byte(c.body), tok)
		if code != c.want {
			t.Fatalf("%s %s with RS_TOKEN: %d %s, want %d", c.method, c.path, code, raw, c.want)
		}
		if code == 403 && !strings.Contains(string(raw), "minted for a plugin or define") {
			t.Fatalf("%s %s: 403 without saying why: %s", c.method, c.path, raw)
		}
	}
	if code, raw := e.do("DELETE", "/api/v3/plugins/fake1", nil, nil); code != 200 {
		t.Fatalf("delete plugin: %d %s", code, raw)
	}
	waitFor(t, 20*time.Second, "RS_TOKEN revoked", func() bool {
		code, _ := e.doRaw("GET", "/api/v3/machines", "", nil, tok)
		return code == 401
	})
}

// define gets a read-only token that expires shortly after the define time
// limit, cannot mint tokens or create users, and is revoked once define
// has run.
func TestDefineTokenIsReadOnlyAndShortLived(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"probe": "probe"})
	var pp models.PluginProvider
	if code, raw := e.do("GET", "/api/v3/plugin_providers/probe", nil, &pp); code != 200 {
		t.Fatalf("provider record: %d %s", code, raw)
	}
	var probe map[string]any
	if err := json.Unmarshal([]byte(pp.Documentation), &probe); err != nil {
		t.Fatalf("probe report %q: %v", pp.Documentation, err)
	}
	want := map[string]float64{"info": 200, "getGlobal": 200, "createMachine": 403, "setGlobalParam": 403,
		"mintToken": 403, "createUser": 403}
	for k, w := range want {
		if probe[k] != w {
			t.Errorf("define token %s: %v, want %v (report %v)", k, probe[k], w, probe)
		}
	}
	tok, _ := probe["token"].(string)
	// Spec §1.2: DRP gives define a one-hour token; ours is bounded by the
	// define time limit (30 s by default) plus a minute.
	if life := tokenLifetime(t, tok); life <= 0 || life > time.Hour {
		t.Errorf("define token lifetime %s, want short (at most 1h)", life)
	}
	if code, raw := e.doRaw("GET", "/api/v3/info", "", nil, tok); code != 401 {
		t.Errorf("define token after define: %d %s, want 401", code, raw)
	}
	var machines []models.Machine
	if code, raw := e.do("GET", "/api/v3/machines", nil, &machines); code != 200 || len(machines) != 0 {
		t.Errorf("define token changed something: %d %s", code, raw)
	}
}
