package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

const (
	benchSubscribers = 100
	benchQueueLen    = 1000
	// benchBatch events are published, then the benchmark waits until every
	// reading subscriber has them all, so readers never overflow and the
	// measured rate is end-to-end delivered fan-out.
	benchBatch = benchQueueLen / 2
)

// benchEvent is a typical machine update (about 300 bytes of JSON).
func benchEvent(i int) models.Event {
	return models.Event{
		Time: time.Now(), Type: "machines", Action: "update", Key: fmt.Sprintf("3e70a8e6-0000-4000-8000-%012d", i), Principal: "rocketskates",
		Object: map[string]any{
			"Name": "node-42.example.com", "Uuid": "3e70a8e6-0000-4000-8000-000000000042", "Stage": "discover",
			"BootEnv": "sledgehammer", "Runnable": true, "CurrentTask": 3, "Address": "192.0.2.42",
			"Params": map[string]any{"incrementer/parameter": "parm5", "incrementer/step": 10},
		},
	}
}

// runFanout publishes b.N events in batches and waits after each batch
// until all readers (which call done once they have `target` events) are
// caught up.
func runFanout(b *testing.B, target *atomic.Int64, done <-chan struct{}, publish func(models.Event)) {
	ev := benchEvent(0)
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(benchBatch, b.N-sent)
		sent += n
		target.Store(int64(sent))
		for i := 0; i < n; i++ {
			publish(ev)
		}
		for i := 0; i < benchSubscribers; i++ {
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				b.Fatalf("subscribers did not catch up with %d events", sent)
			}
		}
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "events/s")
	b.ReportMetric(float64(b.N)*benchSubscribers/secs, "deliveries/s")
}

// BenchmarkFanout100WS measures event fan-out through the websocket
// handler to 100 reading websocket clients over loopback while one more
// client, registered for everything, never reads.
func BenchmarkFanout100WS(b *testing.B) {
	env := newWSEnv(b, WSOptions{QueueLen: benchQueueLen, WriteTimeout: 10 * time.Minute}, nil)
	stuck := env.dial(b, "stuck", stuckDialOptions())
	stuck.register("*.*.*")

	var target atomic.Int64
	done := make(chan struct{}, benchSubscribers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < benchSubscribers; i++ {
		c := env.dial(b, fmt.Sprintf("reader%d", i), nil)
		c.register("machines.*.*")
		go func() {
			var n int64
			for {
				_, r, err := c.c.Reader(ctx)
				if err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					return
				}
				n++
				if n == target.Load() {
					done <- struct{}{}
				}
			}
		}()
	}
	runFanout(b, &target, done, env.bus.Publish)
	b.ReportMetric(float64(env.bus.Dropped()), "stuck-drops")
	cancel()
	_ = stuck.c.CloseNow()
}

// BenchmarkFanoutChannels is the floor for BenchmarkFanout100WS: the same
// fan-out to 100 plain Bus subscriptions (plus one never drained), no
// websockets, no JSON.
func BenchmarkFanoutChannels(b *testing.B) {
	bus := NewBus(Options{Logger: slog.New(slog.DiscardHandler)})
	stuck := bus.Subscribe("stuck", benchQueueLen, nil)
	defer stuck.Close()
	var target atomic.Int64
	done := make(chan struct{}, benchSubscribers)
	match := models.MustParseEventFilter("machines.*.*").Match
	for i := 0; i < benchSubscribers; i++ {
		s := bus.Subscribe(fmt.Sprintf("reader%d", i), benchQueueLen, match)
		defer s.Close()
		go func() {
			var n int64
			for range s.C() {
				n++
				if n == target.Load() {
					done <- struct{}{}
				}
			}
		}()
	}
	runFanout(b, &target, done, bus.Publish)
	b.ReportMetric(float64(bus.Dropped()), "stuck-drops")
}
