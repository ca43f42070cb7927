package hostmodule

import (
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// Every plugin-host line, the host's own and those of plugin processes,
// carries component=pluginhost exactly once.
func TestHostLogLinesLabelledOnce(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	// The fake plugin writes "fake plugin listening" to stderr at start.
	waitFor(t, 10*time.Second, "plugin stderr logged", func() bool {
		return strings.Contains(e.ts.Logs(), "fake plugin listening")
	})
	seen := map[string]bool{}
	for _, line := range strings.Split(e.ts.Logs(), "\n") {
		n := strings.Count(line, "component=pluginhost")
		if n > 1 {
			t.Fatalf("component logged %d times: %s", n, line)
		}
		for _, msg := range []string{"plugin provider loaded", "plugin stderr"} {
			if strings.Contains(line, "msg=\""+msg+"\"") {
				if n != 1 {
					t.Fatalf("%q line without component=pluginhost: %s", msg, line)
				}
				seen[msg] = true
			}
		}
	}
	if !seen["plugin provider loaded"] || !seen["plugin stderr"] {
		t.Fatalf("expected host and plugin lines, saw %v in\n%s", seen, e.ts.Logs())
	}
}

// TestPluginLogLinesInGetLogs: what a plugin POSTs to
// /api-server-plugin/v4/log shows in GET /api/v3/logs under the service
// it logged as, and its stderr under the plugin's name.
func TestPluginLogLinesInGetLogs(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	var structured, stderr bool
	waitFor(t, 10*time.Second, "the plugin's log lines in GET /api/v3/logs", func() bool {
		var lines []models.LogLine
		if code, raw := e.do("GET", "/api/v3/logs", nil, &lines); code != 200 {
			t.Fatalf("GET logs: %d %s", code, raw)
		}
		for _, l := range lines {
			structured = structured || (l.Service == "fake" && l.Level == "info" && strings.HasPrefix(l.Message, "configured"))
			stderr = stderr || (l.Service == "fake1" && strings.Contains(l.Message, "fake plugin listening"))
		}
		return structured && stderr
	})
}
