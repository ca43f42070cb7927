package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// TestLogsServesRecentLinesWithoutSecrets: GET /api/v3/logs answers the
// buffered log lines as DRP's []logger.Line (oldest first, bounded by
// --log-lines) to holders of logs:get (superuser, readonly) only, and
// neither passwords nor secure param values reach them.
func TestLogsServesRecentLinesWithoutSecrets(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.LogLines = 50 }})
	const secret = "s3cret-param-value"
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v3/params", map[string]any{"Name": "my/secret", "Secure": true, "Schema": map[string]any{"type": "string"}}},
		{"POST", "/api/v3/profiles/global/params/my/secret", `"` + secret + `"`},
		{"POST", "/api/v3/users", map[string]any{"Name": "viewer", "Roles": []string{"readonly"}}},
		{"PUT", "/api/v3/users/viewer/password", map[string]any{"password": "viewer-pass-123"}},
		{"POST", "/api/v3/users", map[string]any{"Name": "narrow", "Roles": []string{"machines:get,list:*"}}},
		{"PUT", "/api/v3/users/narrow/password", map[string]any{"password": "narrow-pass-123"}},
	} {
		if resp, raw := ts.Do(t, r.method, r.path, r.body); resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", r.method, r.path, resp.StatusCode, raw)
		}
	}
	// A failed login is logged (INFO request line) without its password.
	servertest.DoAs(t, ts.URL, servertest.BasicAuth("viewer", "wrong-pass-456"), "GET", "/api/v3/info", nil)

	resp, raw := ts.Do(t, "GET", "/api/v3/logs", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET logs: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var lines []models.LogLine
	if err := json.Unmarshal(raw, &lines); err != nil {
		t.Fatalf("decode: %v\n%s", err, raw)
	}
	if len(lines) == 0 || len(lines) > 50 {
		t.Fatalf("%d lines, want 1..50 (--log-lines 50)", len(lines))
	}
	var serving bool
	for i, l := range lines {
		if i > 0 && l.Seq <= lines[i-1].Seq {
			t.Fatalf("lines not oldest first: Seq %d after %d", l.Seq, lines[i-1].Seq)
		}
		switch l.Level {
		case "debug", "info", "warn", "error":
		default:
			t.Fatalf("line %d has level %q, which DRP's logger.ParseLevel refuses", i, l.Level)
		}
		if l.Service == "" || l.Time.IsZero() || l.Data == nil {
			t.Fatalf("line %d incomplete: %+v", i, l)
		}
		serving = serving || strings.HasPrefix(l.Message, "provisiond serving")
	}
	if !serving {
		t.Fatalf("the start-up line is missing from %s", raw)
	}
	for _, s := range []string{secret, ts.AdminPassword, "viewer-pass-123", "narrow-pass-123", "wrong-pass-456"} {
		if strings.Contains(string(raw), s) {
			t.Fatalf("GET logs reveals a secret (%q)", s)
		}
	}

	// readonly may read them; a user without logs:get may not.
	if resp, raw := servertest.DoAs(t, ts.URL, servertest.BasicAuth("viewer", "viewer-pass-123"), "GET", "/api/v3/logs", nil); resp.StatusCode != 200 {
		t.Fatalf("readonly user: %d %s", resp.StatusCode, raw)
	}
	resp, raw = servertest.DoAs(t, ts.URL, servertest.BasicAuth("narrow", "narrow-pass-123"), "GET", "/api/v3/logs", nil)
	wantError(t, resp, raw, 403, "AUTH: logs/*")
	if resp, raw := servertest.DoAs(t, ts.URL, "", "GET", "/api/v3/logs", nil); resp.StatusCode != 401 {
		t.Fatalf("anonymous: %d %s", resp.StatusCode, raw)
	}
	// /info advertises the scope.
	var info models.Info
	_, raw = ts.Do(t, "GET", "/api/v3/info", nil)
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	if _, ok := info.Scopes["logs"]["get"]; !ok {
		t.Fatalf("info scopes lack logs:get: %v", info.Scopes["logs"])
	}
}
