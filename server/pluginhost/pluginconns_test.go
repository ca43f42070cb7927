package pluginhost

import (
	"bufio"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// A plugin cannot hold more than maxPluginConns connections to its host
// socket: the next is answered 503 and closed, and once it lets go the
// socket serves again.
func TestPluginHostSocketConnectionCap(t *testing.T) {
	_, _, p := runningPlugin(t, "fake", &models.Plugin{Name: "f", Provider: "fake"}, nil)
	from := filepath.Join(p.dir, "from")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < maxPluginConns; i++ {
		c, err := net.DialTimeout("unix", from, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	extra, err := net.DialTimeout("unix", from, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(extra).ReadString('\n')
	if err != nil || !strings.Contains(line, "503") {
		t.Fatalf("connection over the cap: %q, %v; want a 503", line, err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", from) }}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := cl.Post("http://unix/api-server-plugin/v4/log", "application/json",
			strings.NewReader(`{"Level":"info","Message":"after the flood","Service":"f"}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("host socket does not serve after the connections closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll until the closed slots are released
	}
}
