// Package events is provisiond's event bus and websocket stream. Publish
// never blocks: every subscriber has a bounded queue and events that do not
// fit are dropped and counted, so a slow or stuck subscriber never slows the
// server or other subscribers.
//
// The package has three parts: Bus (in-process fan-out), FilterSet (sets
// of DRP's "<type>.<action>.<key>" event filters, drp-protocol §5.8,
// parsed by models.ParseEventFilter) and
// WebsocketHandler (the /api/v3/ws endpoint built on the bus).
package events

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
)

// Options configures a Bus.
type Options struct {
	// Metrics, when set, receives the bus counters (events published,
	// events dropped).
	Metrics prometheus.Registerer
	// Logger receives drop warnings and recovered match panics
	// (default slog.Default()).
	Logger *slog.Logger
}

// Metric names registered on Options.Metrics.
const (
	// MetricPublished counts events given to Publish.
	MetricPublished = "provision_events_published_total"
	// MetricDropped counts deliveries lost because a subscriber's queue
	// was full.
	MetricDropped = "provision_events_dropped_total"
	// MetricSubscribers is the number of open subscriptions.
	MetricSubscribers = "provision_events_subscribers"
)

// Bus fans events out to subscribers. It is safe for concurrent use; the
// zero Bus is not usable, build one with NewBus.
type Bus struct {
	log *slog.Logger

	// subs is the current subscriber list, replaced (never modified in
	// place) under mu, so Publish matches and encodes without any lock.
	subs atomic.Pointer[[]*Subscription]
	// mu serialises add/remove; Publish holds it shared only while
	// sending, so that remove never closes a channel Publish sends on.
	mu sync.RWMutex

	// matches recycles Publish's lists of matching subscribers
	// (*[]*Subscription).
	matches sync.Pool

	published atomic.Uint64
	dropped   atomic.Uint64

	mPublished  prometheus.Counter
	mDropped    prometheus.Counter
	mSubscribed prometheus.Gauge
}

// NewBus returns a ready bus. When opts.Metrics is set the counters are
// registered there (an already registered identical collector is reused,
// so several buses can share a registry); no global registry is touched.
func NewBus(opts Options) *Bus {
	b := &Bus{
		log: opts.Logger,
		mPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricPublished,
			Help: "Events published on the provisiond event bus.",
		}),
		mDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricDropped,
			Help: "Event deliveries dropped because a subscriber's queue was full.",
		}),
		mSubscribed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricSubscribers,
			Help: "Open event bus subscriptions (websocket connections included).",
		}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if opts.Metrics != nil {
		b.mPublished = registerOrReuse(opts.Metrics, b.mPublished, b.log)
		b.mDropped = registerOrReuse(opts.Metrics, b.mDropped, b.log)
		b.mSubscribed = registerOrReuse(opts.Metrics, b.mSubscribed, b.log)
	}
	return b
}

// registerOrReuse registers c, or returns the collector already registered
// under the same description.
func registerOrReuse[C prometheus.Collector](r prometheus.Registerer, c C, log *slog.Logger) C {
	err := r.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("events: cannot register metric", "error", err)
	return c
}

// envelope carries one published event to every subscriber. When a
// websocket subscriber wants the event, Publish encodes it once into a
// complete websocket frame before fanning out, outside any lock, and every
// connection writes that same frame: no writer ever encodes or waits for
// another writer's encoding.
type envelope struct {
	ev    models.Event
	frame []byte // the event as one websocket text frame (encodeFrame)
	err   error  // why frame could not be encoded
}

// Publish delivers e to every matching subscriber without blocking. A
// subscriber whose queue is full loses the event; the loss is counted on
// the subscription, the bus and the dropped metric. Subscribers share e's
// Object and Original: they must treat them as read-only.
//
// Matching and encoding run without locks, on the publisher's goroutine;
// only the non-blocking sends hold the bus lock (shared).
func (b *Bus) Publish(e models.Event) {
	b.published.Add(1)
	b.mPublished.Inc()
	subs := b.subs.Load()
	if subs == nil {
		return
	}
	mp, _ := b.matches.Get().(*[]*Subscription)
	if mp == nil {
		mp = new([]*Subscription)
	}
	matched := (*mp)[:0]
	frame := false
	for _, s := range *subs {
		if s.wants(&e) {
			matched = append(matched, s)
			frame = frame || s.envs != nil
		}
	}
	if len(matched) > 0 {
		env := &envelope{ev: e}
		if frame {
			env.frame, env.err = encodeFrame(&env.ev)
		}
		b.mu.RLock()
		for _, s := range matched {
			if s.closed {
				continue // unsubscribed after the snapshot
			}
			if !s.offer(env) {
				s.noteDrop()
			}
		}
		b.mu.RUnlock()
	}
	clear(matched) // do not pin subscriptions from the pool
	*mp = matched[:0]
	b.matches.Put(mp)
}

// Subscribe registers a subscriber with a queue of queueLen events
// (minimum 1); match decides which events it wants (nil = all) and must be
// fast and must not block: it runs inside Publish. name labels it in logs.
func (b *Bus) Subscribe(name string, queueLen int, match func(*models.Event) bool) *Subscription {
	s := b.newSubscription(name, match)
	s.ch = make(chan models.Event, max(queueLen, 1))
	b.add(s)
	return s
}

// subscribeEnvelopes is Subscribe for the websocket writer: it receives the
// shared envelopes so each event is JSON-encoded once for all connections.
func (b *Bus) subscribeEnvelopes(name string, queueLen int, match func(*models.Event) bool) *Subscription {
	s := b.newSubscription(name, match)
	s.envs = make(chan *envelope, max(queueLen, 1))
	b.add(s)
	return s
}

func (b *Bus) newSubscription(name string, match func(*models.Event) bool) *Subscription {
	return &Subscription{bus: b, name: name, match: match}
}

func (b *Bus) add(s *Subscription) {
	b.mu.Lock()
	var cur []*Subscription
	if p := b.subs.Load(); p != nil {
		cur = *p
	}
	next := append(cur[:len(cur):len(cur)], s) // always a new array
	b.subs.Store(&next)
	b.mu.Unlock()
	b.mSubscribed.Inc()
}

// remove unsubscribes s and closes its channel; it reports whether s was
// still subscribed.
func (b *Bus) remove(s *Subscription) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.subs.Load()
	if p == nil {
		return false
	}
	for i, x := range *p {
		if x == s {
			// A new array: a concurrent Publish may still be reading
			// the old one.
			next := append((*p)[:i:i], (*p)[i+1:]...)
			b.subs.Store(&next)
			// Publish checks closed under the read lock before sending,
			// so it never sends on the channels closed here.
			s.closed = true
			if s.ch != nil {
				close(s.ch)
			}
			if s.envs != nil {
				close(s.envs)
			}
			b.mSubscribed.Dec()
			return true
		}
	}
	return false
}

// Published is the total number of events given to Publish.
func (b *Bus) Published() uint64 { return b.published.Load() }

// Dropped is the total number of events dropped across subscribers.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Subscribers is the number of open subscriptions.
func (b *Bus) Subscribers() int {
	if p := b.subs.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// Subscription is one subscriber's queue.
type Subscription struct {
	bus   *Bus
	name  string
	match func(*models.Event) bool

	// Exactly one of ch (public subscribers) and envs (websocket
	// connections) is set.
	ch   chan models.Event
	envs chan *envelope

	dropped atomic.Uint64
	closed  bool // set by remove; guarded by bus.mu
}

// wants runs the subscriber's match function; a panicking match is logged
// and treated as "no", so one bad subscriber cannot break Publish.
func (s *Subscription) wants(e *models.Event) (ok bool) {
	if s.match == nil {
		return true
	}
	defer func() {
		if r := recover(); r != nil {
			s.bus.log.Error("events: subscriber match panicked", "subscriber", s.name, "panic", r)
			ok = false
		}
	}()
	return s.match(e)
}

// offer queues env without blocking and reports whether it fit.
func (s *Subscription) offer(env *envelope) bool {
	if s.envs != nil {
		select {
		case s.envs <- env:
			return true
		default:
			return false
		}
	}
	select {
	case s.ch <- env.ev:
		return true
	default:
		return false
	}
}

func (s *Subscription) noteDrop() {
	n := s.dropped.Add(1)
	s.bus.dropped.Add(1)
	s.bus.mDropped.Inc()
	// Log the first drop and then every power of two, so a stuck
	// subscriber is visible without flooding the log.
	if n&(n-1) == 0 {
		s.bus.log.Warn("events: subscriber queue full, dropping events", "subscriber", s.name, "dropped", n)
	}
}

// Name is the label given at Subscribe.
func (s *Subscription) Name() string { return s.name }

// C delivers the subscriber's events; it is closed by Close.
func (s *Subscription) C() <-chan models.Event { return s.ch }

// Dropped is how many events this subscriber lost because its queue was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. Events still queued can be drained from
// C. Closing twice is harmless.
func (s *Subscription) Close() {
	s.bus.remove(s)
}
