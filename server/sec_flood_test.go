package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// TestConnectionFloodFigures rides out a bounded loopback flood and logs
// the figures (go test -run TestConnectionFloodFigures -v ./server/):
// 600 idle connections from one address, then 3,200 from 8 more, against
// an API listener capped at 2,000 (500 per address, 16 reserved), and
// 800 from one address against the static listener, while the admin and
// a static client from elsewhere keep being served. Counts stay well
// below the descriptor limit (each connection costs two descriptors in
// this process, client and server side).
func TestConnectionFloodFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test skipped in -short mode")
	}
	const max, perIP, reserve, spread, each, single = 2000, 500, 16, 8, 400, 600
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) {
		c.APIMaxConns, c.APIMaxConnsPerIP, c.AdminReserveConns = max, perIP, reserve
		c.StaticMaxConns, c.StaticMaxConnsPerIP = max, perIP
		c.ReadHeaderTimeout = 5 * time.Minute // idle flood connections stay for the test
	}})
	addr := apiAddr(ts)
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	adminHC := clientFrom("127.0.1.1")
	latencies := func(n int) []time.Duration {
		out := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			if code, body, _ := do(t, adminHC, ts, admin, "GET", "/api/v3/info", ""); code != 200 {
				t.Fatalf("admin during the flood: %d %s", code, body)
			}
			out = append(out, time.Since(start))
		}
		slices.Sort(out)
		return out
	}
	before := latencies(20)

	handled0 := handledConns(t, ts, "api")
	start := time.Now()
	flood(t, addr, "127.0.0.99", single) // one host first: held to its per-address cap
	for i := range spread {
		flood(t, addr, fmt.Sprintf("127.0.0.%d", 10+i), each)
	}
	dialTime := time.Since(start)
	eventually(t, "the flood accepted", func() bool { return handledConns(t, ts, "api")-handled0 >= spread*each+single })
	during := latencies(20)
	// A fresh admin connection (TLS handshake, Basic auth) on the full port
	// gets a reserve slot.
	freshStart := time.Now()
	if code, body, _ := do(t, clientFrom("127.0.1.3"), ts, admin, "GET", "/api/v3/info", ""); code != 200 {
		t.Fatalf("fresh admin connection on the full port: %d %s", code, body)
	}
	fresh := time.Since(freshStart)
	open := openConns(t, ts, "api")
	if open > max {
		t.Fatalf("%v API connections open, cap %d", open, max)
	}

	// Static: one address floods, another still gets files.
	staticAddr := strings.TrimPrefix(ts.StaticURL, "http://")
	flood(t, staticAddr, "127.0.0.98", 800)
	eventually(t, "the static flood accepted", func() bool {
		return refusedConns(t, ts, "static", "per_ip") >= 800-perIP
	})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialerFrom("127.0.1.2").DialContext}}
	resp, err := hc.Get(ts.StaticURL + "/missing")
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("static client from another address during the flood: %v %v", resp, err)
	}
	resp.Body.Close()

	p := func(d []time.Duration, q float64) time.Duration {
		return d[int(q*float64(len(d)-1))].Round(10 * time.Microsecond)
	}
	t.Logf("API flood: %d idle connections (%d from one address, then %d from each of %d more), dialled in %s (%.0f/s)",
		spread*each+single, single, each, spread, dialTime.Round(time.Millisecond), float64(spread*each+single)/dialTime.Seconds())
	t.Logf("API listener: %v open (cap %d), refused per_ip %v, total %v, evicted from the reserve %v",
		open, max, refusedConns(t, ts, "api", "per_ip"), refusedConns(t, ts, "api", "total"), refusedConns(t, ts, "api", "evicted"))
	t.Logf("admin GET /api/v3/info latency: before p50 %s p95 %s max %s; during p50 %s p95 %s max %s",
		p(before, .5), p(before, .95), before[len(before)-1].Round(10*time.Microsecond), p(during, .5), p(during, .95), during[len(during)-1].Round(10*time.Microsecond))
	t.Logf("fresh admin connection on the full port: served in %s (TLS handshake, Basic auth from the credential cache, request)", fresh.Round(10*time.Microsecond))
	t.Logf("static listener: 800 from one address, %v open, refused per_ip %v; other clients served",
		openConns(t, ts, "static"), refusedConns(t, ts, "static", "per_ip"))
}
