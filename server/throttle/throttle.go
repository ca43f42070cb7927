// Package throttle limits failed logins per key (a source address, a user
// name) with token buckets: each key may fail Burst times, then earns one
// more attempt every Window/Burst, so a throttled key is never locked out
// for longer than that and is fully forgiven after Window without failures.
package throttle

import (
	"math"
	"sync"
	"time"
)

// maxKeys bounds the buckets kept; beyond it, buckets that have refilled
// (and so hold no information) are dropped.
const maxKeys = 100_000

// Throttle is a set of token buckets, one per key. It is safe for
// concurrent use.
type Throttle struct {
	burst  float64
	window time.Duration
	rate   float64 // tokens per second
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a throttle allowing burst failures per key, refilled evenly
// over window. now is the clock (nil uses time.Now); tests inject one.
func New(burst int, window time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{burst: float64(burst), window: window, rate: float64(burst) / window.Seconds(), now: now, buckets: map[string]*bucket{}}
}

// Burst is how many failures a key may make before it is throttled.
func (t *Throttle) Burst() int { return int(t.burst) }

// Window is the time in which Burst failures are forgiven.
func (t *Throttle) Window() time.Duration { return t.window }

// refill brings b up to now (callers hold mu).
func (t *Throttle) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = math.Min(t.burst, b.tokens+d*t.rate)
	}
	b.at = now
}

func (t *Throttle) get(key string, now time.Time) *bucket {
	b, ok := t.buckets[key]
	if !ok {
		if len(t.buckets) >= maxKeys {
			t.sweep(now)
		}
		b = &bucket{tokens: t.burst, at: now}
		t.buckets[key] = b
	}
	t.refill(b, now)
	return b
}

func (t *Throttle) sweep(now time.Time) {
	for k, b := range t.buckets {
		if t.refill(b, now); b.tokens >= t.burst {
			delete(t.buckets, k)
		}
	}
}

// Take reserves one attempt from every key's bucket. When any key is out
// of attempts nothing is taken and Take returns that key and how long
// until it has one again. Take before checking credentials (so parallel
// guesses cannot overrun the burst) and Refund when they were right.
func (t *Throttle) Take(keys ...string) (blocked string, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		if b := t.get(k, now); b.tokens < 1 {
			wait := time.Duration((1 - b.tokens) / t.rate * float64(time.Second))
			return k, max(wait, time.Second)
		}
	}
	for _, k := range keys {
		t.buckets[k].tokens--
	}
	return "", 0
}

// Refund returns the attempt Take reserved: the credentials were right,
// so it was no failure.
func (t *Throttle) Refund(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		b := t.get(k, now)
		b.tokens = math.Min(t.burst, b.tokens+1)
	}
}
