// Package events is provisiond's event bus and websocket stream. Publish
// never blocks: every subscriber has a bounded queue and events that do not
// fit are dropped and counted, so a slow or stuck subscriber never slows the
// server or other subscribers.
//
// CONTRACT STUB: signatures agreed; implementation in progress.
package events

import (
	"github.com/provisionhq/provision/models"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Bus.
type Options struct {
	// Metrics, when set, receives the bus counters (events published,
	// events dropped).
	Metrics prometheus.Registerer
}

// Bus fans events out to subscribers.
type Bus struct{}

// NewBus returns a ready bus.
func NewBus(opts Options) *Bus { return &Bus{} }

// Publish delivers e to every matching subscriber without blocking.
func (b *Bus) Publish(e models.Event) {}

// Subscribe registers a subscriber with a queue of queueLen events; match
// decides which events it wants (nil = all). name labels it in logs/metrics.
func (b *Bus) Subscribe(name string, queueLen int, match func(*models.Event) bool) *Subscription {
	return &Subscription{}
}

// Dropped is the total number of events dropped across subscribers.
func (b *Bus) Dropped() uint64 { return 0 }

// Subscription is one subscriber's queue.
type Subscription struct{}

// C delivers the subscriber's events; it is closed by Close.
func (s *Subscription) C() <-chan models.Event { return nil }

// Dropped is how many events this subscriber lost because its queue was full.
func (s *Subscription) Dropped() uint64 { return 0 }

// Close unsubscribes.
func (s *Subscription) Close() {}
