package hostmodule

import (
	"strings"
	"testing"
	"time"
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
