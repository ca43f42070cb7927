package drpcompat

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// drpLevel mirrors logger.Level (github.com/digitalrebar/logger): JSON
// text decoded by ParseLevel, which refuses any other name; one such line
// would make Client.Logs fail as a whole.
type drpLevel int32

// UnmarshalText mirrors logger.Level.UnmarshalText / ParseLevel.
func (l *drpLevel) UnmarshalText(t []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(t))) {
	case "trace":
		*l = 0
	case "debug":
		*l = 1
	case "info":
		*l = 2
	case "warn":
		*l = 3
	case "error", "err":
		*l = 4
	case "fatal":
		*l = 5
	case "panic":
		*l = 6
	case "audit":
		*l = 7
	default:
		return fmt.Errorf("Invalid level: %s", t)
	}
	return nil
}

// drpLine mirrors logger.Line, what Client.Logs decodes each element into.
type drpLine struct {
	Group         int64
	Seq           int64
	Time          time.Time
	Service       string
	Principal     string
	Level         drpLevel
	File          string
	Line          int
	Message       string
	Data          []any
	IgnorePublish bool
}

// TestLogs mirrors Client.Logs (api/client.go: res := []logger.Line{};
// c.Req().UrlFor("logs").Do(&res)), which `drpcli logs get` prints: the
// server's buffered lines, including those a plugin sent to
// /api-server-plugin/v4/log, under the plugin's service.
func TestLogs(t *testing.T) {
	ts := startWithPlugins(t)
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	f, err := os.Open(incrementerBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	c.req().post(f).urlFor("plugin_providers", "incrementer").mustDo(t, &map[string]any{})
	f.Close()
	c.req().post(map[string]any{"Name": "incr", "Provider": "incrementer"}).urlFor("plugins").mustDo(t, &map[string]any{})

	// The incrementer logs "configured" once its Config succeeded.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := []drpLine{}
		c.req().urlFor("logs").mustDo(t, &res)
		found := false
		for _, l := range res {
			if l.Service == "incrementer" && strings.HasPrefix(l.Message, "configured") && l.Level == 2 {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no incrementer line with Service incrementer in Client.Logs:\n%s", c.last().Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	last := c.last()
	if last.Method != "GET" || last.URL != ts.URL+"/api/v3/logs" || last.Status != 200 {
		t.Fatalf("Client.Logs sent %s %s, answered %d", last.Method, last.URL, last.Status)
	}
	var server bool
	res := []drpLine{}
	c.req().urlFor("logs").mustDo(t, &res)
	for _, l := range res {
		server = server || (l.Service == "provisiond" && strings.HasPrefix(l.Message, "provisiond serving"))
	}
	if !server {
		t.Fatalf("the server's own start-up line is missing:\n%s", c.last().Body)
	}
}
