package api_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

const (
	// postBatch events are posted per batch, then the benchmark waits
	// until every subscriber has them all: below the default websocket
	// queue (1000), so nothing may be dropped, and any loss shows as a
	// subscriber that never catches up.
	postBatch = 500
	// posters post concurrently, each over its own client (the many
	// machine agents and runners of a busy server).
	posters = 32
)

// eventSubscribers dials n websockets as authz, registers filter on each
// and counts the events each receives; done gets one value per
// subscriber that has reached target.
type eventSubscribers struct {
	n      int
	target atomic.Int64
	done   chan struct{}
	sent   int
	took   time.Duration
}

func dialEventSubscribers(b *testing.B, ts *servertest.Server, authz, filter string, n int) *eventSubscribers {
	b.Helper()
	s := &eventSubscribers{n: n, done: make(chan struct{}, n)}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}}
	url := strings.Replace(ts.URL, "https://", "wss://", 1) + "/api/v3/ws"
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {authz}}})
		if err != nil {
			cancel()
			b.Fatalf("dial websocket %d: %v", i, err)
		}
		b.Cleanup(func() { _ = c.CloseNow() })
		if err := c.Write(ctx, websocket.MessageText, []byte("register "+filter)); err != nil {
			cancel()
			b.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil { // the acknowledgement
			cancel()
			b.Fatal(err)
		}
		cancel()
		go func() {
			var got int64
			for {
				// No deadline (a timer per message); Cleanup's CloseNow
				// ends the loop.
				_, r, err := c.Reader(context.Background())
				if err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					return
				}
				got++
				if got == s.target.Load() {
					s.done <- struct{}{}
				}
			}
		}()
	}
	return s
}

// postBatch posts n events of type typ through POST /api/v3/events from
// `posters` goroutines and waits until every subscriber has them all.
func (s *eventSubscribers) postBatch(b *testing.B, clients []*http.Client, base, authz, typ string, n int) {
	start := time.Now()
	s.sent += n
	s.target.Store(int64(s.sent))
	var wg sync.WaitGroup
	var failed atomic.Value
	for p := range clients {
		share := n / len(clients)
		if p < n%len(clients) {
			share++
		}
		wg.Add(1)
		go func(hc *http.Client, share int) {
			defer wg.Done()
			for i := 0; i < share; i++ {
				body := fmt.Sprintf(`{"Type":%q,"Action":"update","Key":"3e70a8e6-0000-4000-8000-%012d","Object":{"Name":"node-42.example.com","Stage":"discover","BootEnv":"sledgehammer","Runnable":true,"Params":{"incrementer/step":10}}}`, typ, i)
				req, _ := http.NewRequest("POST", base+"/api/v3/events", strings.NewReader(body))
				req.Header.Set("Authorization", authz)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					failed.Store(fmt.Errorf("POST /events: %d", resp.StatusCode))
					return
				}
			}
		}(clients[p], share)
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < s.n; i++ {
		select {
		case <-s.done:
		case <-time.After(60 * time.Second):
			b.Fatalf("%d subscribers: events lost, not all of %d arrived", s.n, s.sent)
		}
	}
	s.took += time.Since(start)
}

// BenchmarkEventsPost posts events through the REST API (HTTPS, token
// auth, 32 concurrent posters) to websocket subscribers of a real
// in-process provisiond. One subscriber is registered for "solo" events,
// 100 others for "crowd" events; batches of each alternate, so both see
// the same machine load. Each batch waits until every subscriber has
// every event, so a loss fails the benchmark. Reported: solo-posts/s (the
// post rate with 1 subscriber, the floor), crowd-posts/s and
// crowd-deliveries/s (100 subscribers).
func BenchmarkEventsPost(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{Config: func(c *config.Config) {
		c.LogLevel = "warn"
		c.WSMaxPerPrincipal = 256
	}})
	resp, body := ts.Do(b, "GET", "/api/v3/users/rocketskates/token?ttl=3600", nil)
	if resp.StatusCode != 200 {
		b.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var ut models.UserToken
	models.Remarshal(jsonAny(b, body), &ut)
	authz := servertest.Bearer(ut.Token)
	solo := dialEventSubscribers(b, ts, authz, "solo.*.*", 1)
	crowd := dialEventSubscribers(b, ts, authz, "crowd.*.*", 100)
	clients := make([]*http.Client, posters)
	for i := range clients {
		clients[i] = servertest.HTTPClient()
		b.Cleanup(clients[i].CloseIdleConnections)
	}
	dropped := ts.Server.Bus().Dropped()
	b.ResetTimer()
	for round, sent := 0, 0; sent < b.N; round++ {
		sets := []*eventSubscribers{solo, crowd}
		if round%2 == 1 {
			sets[0], sets[1] = crowd, solo
		}
		for _, s := range sets {
			n := min(postBatch, b.N-sent)
			if n == 0 {
				break
			}
			typ := "solo"
			if s == crowd {
				typ = "crowd"
			}
			s.postBatch(b, clients, ts.URL, authz, typ, n)
			sent += n
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(solo.sent)/solo.took.Seconds(), "solo-posts/s")
	b.ReportMetric(float64(crowd.sent)/crowd.took.Seconds(), "crowd-posts/s")
	b.ReportMetric(float64(crowd.sent)*float64(crowd.n)/crowd.took.Seconds(), "crowd-deliveries/s")
	// Every batch waited for every event at every subscriber, so this is
	// 0 or the benchmark failed; reported to make "nothing lost" visible.
	b.ReportMetric(float64(ts.Server.Bus().Dropped()-dropped), "dropped")
}
