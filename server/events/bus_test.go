package events

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
)

func TestBusDeliversMatching(t *testing.T) {
	b := NewBus(Options{})
	all := b.Subscribe("all", 10, nil)
	defer all.Close()
	machines := b.Subscribe("machines", 10, models.MustParseEventFilter("machines.*.*").Match)
	defer machines.Close()

	b.Publish(models.Event{Type: "machines", Action: "create", Key: "m1", Object: map[string]any{"Name": "m1"}})
	b.Publish(models.Event{Type: "profiles", Action: "save", Key: "global"})

	got := drain(t, all, 2)
	if got[0].Key != "m1" || got[1].Key != "global" {
		t.Fatalf("all got %v", keys(got))
	}
	if m := got[0].Object.(map[string]any); m["Name"] != "m1" {
		t.Fatalf("object not delivered: %v", got[0].Object)
	}
	if got := drain(t, machines, 1); got[0].Key != "m1" {
		t.Fatalf("machines got %v", keys(got))
	}
	select {
	case e := <-machines.C():
		t.Fatalf("machines got unexpected %s.%s.%s", e.Type, e.Action, e.Key)
	default:
	}
	if b.Published() != 2 || b.Dropped() != 0 || b.Subscribers() != 2 {
		t.Fatalf("published=%d dropped=%d subscribers=%d", b.Published(), b.Dropped(), b.Subscribers())
	}
}

func TestBusDropsWhenFullAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := NewBus(Options{Metrics: reg})
	full := b.Subscribe("full", 3, nil)
	defer full.Close()
	roomy := b.Subscribe("roomy", 100, nil)
	defer roomy.Close()
	for i := 0; i < 10; i++ {
		b.Publish(models.Event{Type: "t", Action: "a", Key: fmt.Sprint(i)})
	}
	if full.Dropped() != 7 || roomy.Dropped() != 0 || b.Dropped() != 7 {
		t.Fatalf("dropped full=%d roomy=%d total=%d", full.Dropped(), roomy.Dropped(), b.Dropped())
	}
	// The queue keeps the oldest events.
	if got := keys(drain(t, full, 3)); got != "0,1,2" {
		t.Fatalf("full kept %s", got)
	}
	if got := keys(drain(t, roomy, 10)); got != "0,1,2,3,4,5,6,7,8,9" {
		t.Fatalf("roomy got %s", got)
	}
	m := gather(t, reg)
	if m[MetricPublished] != 10 || m[MetricDropped] != 7 || m[MetricSubscribers] != 2 {
		t.Fatalf("metrics = %v", m)
	}
	// A second bus on the same registry reuses the collectors.
	b2 := NewBus(Options{Metrics: reg})
	b2.Publish(models.Event{Type: "t"})
	if v := gather(t, reg)[MetricPublished]; v != 11 {
		t.Errorf("shared %s = %v, want 11", MetricPublished, v)
	}
}

func TestBusCloseStopsDelivery(t *testing.T) {
	b := NewBus(Options{})
	s := b.Subscribe("s", 5, nil)
	b.Publish(models.Event{Key: "before"})
	s.Close()
	s.Close() // harmless
	b.Publish(models.Event{Key: "after"})
	var got []models.Event
	for e := range s.C() { // closed by Close, still drains queued events
		got = append(got, e)
	}
	if keys(got) != "before" {
		t.Fatalf("got %s", keys(got))
	}
	if b.Subscribers() != 0 {
		t.Fatalf("subscribers = %d", b.Subscribers())
	}
}

func TestBusMatchPanicIsContained(t *testing.T) {
	b := NewBus(Options{})
	bad := b.Subscribe("bad", 5, func(*models.Event) bool { panic("boom") })
	defer bad.Close()
	good := b.Subscribe("good", 5, nil)
	defer good.Close()
	b.Publish(models.Event{Key: "k"})
	if keys(drain(t, good, 1)) != "k" {
		t.Fatal("good subscriber missed the event")
	}
	if len(bad.C()) != 0 {
		t.Fatal("panicking subscriber got the event")
	}
}

func TestBusConcurrentPublishSubscribe(t *testing.T) {
	b := NewBus(Options{})
	stable := b.Subscribe("stable", 4*500, nil)
	defer stable.Close()
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				b.Publish(models.Event{Type: "t", Key: fmt.Sprint(i)})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			s := b.Subscribe("churn", 1, nil)
			s.Close()
			for range s.C() {
			}
		}
	}()
	wg.Wait()
	if len(stable.C()) != 2000 || stable.Dropped() != 0 {
		t.Fatalf("stable has %d queued, dropped %d", len(stable.C()), stable.Dropped())
	}
}

func drain(t *testing.T, s *Subscription, n int) []models.Event {
	t.Helper()
	var out []models.Event
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-s.C():
			if !ok {
				t.Fatalf("%s closed after %d events", s.Name(), len(out))
			}
			out = append(out, e)
		case <-timeout:
			t.Fatalf("%s: timed out after %d of %d events", s.Name(), len(out), n)
		}
	}
	return out
}

func keys(es []models.Event) string {
	var k []string
	for _, e := range es {
		k = append(k, e.Key)
	}
	return strings.Join(k, ",")
}

// gather returns the value of every unlabelled counter and gauge in reg.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestBusEncodesOnceAtPublish: websocket subscribers receive one shared
// envelope whose frame Publish has already encoded, so no writer encodes
// or waits for another's encoding.
func TestBusEncodesOnceAtPublish(t *testing.T) {
	b := NewBus(Options{})
	s1 := b.subscribeEnvelopes("a", 1, nil)
	defer s1.Close()
	s2 := b.subscribeEnvelopes("b", 1, nil)
	defer s2.Close()
	e := models.Event{Type: "machines", Action: "update", Key: "m1", Object: map[string]any{"Name": "n"}}
	b.Publish(e)
	e1, e2 := <-s1.envs, <-s2.envs
	if e1 != e2 {
		t.Fatal("subscribers got different envelopes for one event")
	}
	want, err := encodeFrame(&e)
	if err != nil {
		t.Fatal(err)
	}
	if e1.err != nil || string(e1.frame) != string(want) {
		t.Fatalf("envelope frame %q (%v), want %q", e1.frame, e1.err, want)
	}
}
