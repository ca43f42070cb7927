package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
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
	// stuckBatch is BenchmarkFanoutStuck's smaller batch: more batches,
	// finer alternation between its two handlers, a steadier median.
	stuckBatch = benchQueueLen / 10
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

// fanoutSink is one fan-out under measurement: publish sends an event to
// all its subscribers, whose readers signal done once they have read
// target events.
type fanoutSink struct {
	target  *atomic.Int64
	done    <-chan struct{}
	publish func(models.Event)

	sent    int           // events published so far
	elapsed time.Duration // time spent in batch
	rates   []float64     // each batch's deliveries/s
}

// batch publishes n events and waits until every reader has them all.
func (s *fanoutSink) batch(b *testing.B, ev models.Event, n int) {
	start := time.Now()
	s.sent += n
	s.target.Store(int64(s.sent))
	for i := 0; i < n; i++ {
		s.publish(ev)
	}
	for i := 0; i < benchSubscribers; i++ {
		select {
		case <-s.done:
		case <-time.After(60 * time.Second):
			b.Fatalf("subscribers did not catch up with %d events", s.sent)
		}
	}
	took := time.Since(start)
	s.elapsed += took
	s.rates = append(s.rates, float64(n)*benchSubscribers/took.Seconds())
}

// medianDeliveries is the median of the batches' delivery rates: a burst
// of load from elsewhere on the machine slows a few batches, not the
// median.
func (s *fanoutSink) medianDeliveries() float64 {
	if len(s.rates) == 0 {
		return 0
	}
	r := slices.Clone(s.rates)
	slices.Sort(r)
	return r[len(r)/2]
}

// runFanout publishes b.N events in batches and waits after each batch
// until all readers (which call done once they have `target` events) are
// caught up.
func runFanout(b *testing.B, target *atomic.Int64, done <-chan struct{}, publish func(models.Event)) {
	ev := benchEvent(0)
	s := &fanoutSink{target: target, done: done, publish: publish}
	b.ResetTimer()
	for s.sent < b.N {
		s.batch(b, ev, min(benchBatch, b.N-s.sent))
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "events/s")
	b.ReportMetric(float64(b.N)*benchSubscribers/secs, "deliveries/s")
}

// wsReaders dials benchSubscribers reading websocket clients registered
// for machines.*.*; each calls done once it has read `target` messages.
func wsReaders(b *testing.B, env *wsEnv, target *atomic.Int64, done chan<- struct{}) {
	for i := 0; i < benchSubscribers; i++ {
		c := env.dial(b, fmt.Sprintf("reader%d", i), nil)
		c.register("machines.*.*")
		go func() {
			var n int64
			for {
				// No deadline: a context with Done would cost a timer per
				// message on the reading side. The clients are closed by
				// the environment's cleanup, which ends the loop.
				_, r, err := c.c.Reader(context.Background())
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
}

// BenchmarkFanout100WS measures event fan-out through the bus and the
// websocket handler to 100 reading websocket clients over loopback.
func BenchmarkFanout100WS(b *testing.B) {
	env := newWSEnv(b, WSOptions{QueueLen: benchQueueLen, WriteTimeout: 10 * time.Minute}, nil)
	var target atomic.Int64
	done := make(chan struct{}, benchSubscribers)
	wsReaders(b, env, &target, done)
	runFanout(b, &target, done, env.bus.Publish)
	b.ReportMetric(float64(env.bus.Dropped()), "drops")
}

// BenchmarkFanoutStuck measures what one stuck websocket client costs
// the others. Two handlers run side by side, each with 100 reading
// websocket clients; one of them also has a client, registered for
// everything, that never reads. Before the timer starts that client's
// queue is made to overflow (large events only it wants, until the bus
// drops one for it), so during the measured run its queue is full and
// its socket is stuck: every measured event is dropped for it. Batches
// alternate between the two handlers, so both see the same machine load;
// stuck-deliveries/s (the 100 readers beside the stuck client, median
// over its batches) is reported against its floor nostuck-deliveries/s.
func BenchmarkFanoutStuck(b *testing.B) {
	opts := WSOptions{QueueLen: benchQueueLen, WriteTimeout: 10 * time.Minute}
	free, stuckEnv := newWSEnv(b, opts, nil), newWSEnv(b, opts, nil)
	stuck := stuckEnv.dial(b, "stuck", stuckDialOptions())
	stuck.register("*.*.*")
	sinks := make([]*fanoutSink, 2)
	for i, env := range []*wsEnv{free, stuckEnv} {
		var target atomic.Int64
		done := make(chan struct{}, benchSubscribers)
		wsReaders(b, env, &target, done)
		sinks[i] = &fanoutSink{target: &target, done: done, publish: env.bus.Publish}
	}

	fill := models.Event{Type: "fill", Action: "x", Key: "stuck", Object: bulkPayload(b, 12<<10)}
	for i := 0; stuckEnv.bus.Dropped() == 0; i++ {
		if i == 1_000_000 {
			b.Fatal("the stuck client's queue never overflowed")
		}
		stuckEnv.bus.Publish(fill)
	}
	before := stuckEnv.bus.Dropped()

	ev := benchEvent(0)
	b.ResetTimer()
	for round, sent := 0, 0; sent < b.N; round++ {
		// Alternate which handler goes first, so neither always follows
		// the other's batch.
		order := []*fanoutSink{sinks[round%2], sinks[1-round%2]}
		for _, s := range order {
			n := min(stuckBatch, b.N-sent)
			if n == 0 {
				break
			}
			s.batch(b, ev, n)
			sent += n
		}
	}
	b.StopTimer()
	// The fill left at least benchQueueLen*12 KiB (12 MiB) for the stuck
	// client, more than its queue's share can push into socket buffers
	// (tcp_wmem's 4 MiB ceiling by default), so its writer is blocked with
	// its queue mostly full: a run longer than the queue must overflow it.
	stuckDrops := stuckEnv.bus.Dropped() - before
	if b.N > benchQueueLen && stuckDrops == 0 {
		b.Fatal("the stuck client did not drop during the measured run")
	}
	b.ReportMetric(sinks[0].medianDeliveries(), "nostuck-deliveries/s")
	b.ReportMetric(sinks[1].medianDeliveries(), "stuck-deliveries/s")
	b.ReportMetric(float64(stuckDrops), "stuck-drops")
	b.ReportMetric(float64(free.bus.Dropped()), "nostuck-drops")
	_ = stuck.c.CloseNow()
}

// BenchmarkFanoutTCP is the floor for BenchmarkFanout100WS: the same
// events, already encoded as websocket frames, fanned out to 100 plain
// TCP connections over loopback through bounded per-connection queues,
// one write per event, read by clients that only count bytes.
func BenchmarkFanoutTCP(b *testing.B) {
	ev := benchEvent(0)
	frame, err := encodeFrame(&ev)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var target atomic.Int64
	done := make(chan struct{}, benchSubscribers)
	queues := make([]chan []byte, benchSubscribers)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range queues {
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, cc, sc)
		q := make(chan []byte, benchQueueLen)
		queues[i] = q
		go func() { // server side: one write per event
			for f := range q {
				if _, err := sc.Write(f); err != nil {
					return
				}
			}
		}()
		go func() { // client side: count whole frames
			buf := make([]byte, 64<<10)
			var bytes, n int64
			for {
				m, err := cc.Read(buf)
				if err != nil {
					return
				}
				bytes += int64(m)
				for ; bytes >= int64(len(frame)); bytes -= int64(len(frame)) {
					n++
					if n == target.Load() {
						done <- struct{}{}
					}
				}
			}
		}()
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
	}()
	var drops int
	runFanout(b, &target, done, func(models.Event) {
		for _, q := range queues {
			select {
			case q <- frame:
			default:
				drops++
			}
		}
	})
	b.ReportMetric(float64(drops), "drops")
}

// BenchmarkFanoutChannels is the fan-out to 100 plain Bus subscriptions
// (plus one never drained), no websockets, no JSON: the bus's own cost.
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
