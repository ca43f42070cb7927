package throttle

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestBurstThenRetryAfterThenForgiven(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	th := New(3, time.Minute, c.now)
	for i := range 3 {
		if k, _ := th.Take("ip:a", "user:x"); k != "" {
			t.Fatalf("failure %d throttled by %s", i+1, k)
		}
	}
	k, wait := th.Take("ip:a", "user:x")
	if k != "ip:a" || wait != 20*time.Second {
		t.Fatalf("4th = %q %s, want ip:a after 20s", k, wait)
	}
	// Another address guessing the same user is throttled by the user key.
	if k, _ := th.Take("ip:b", "user:x"); k != "user:x" {
		t.Fatalf("other address, same user: %q, want user:x", k)
	}
	if k, _ := th.Take("ip:b", "user:y"); k != "" {
		t.Fatalf("other address and user throttled by %q", k)
	}
	c.add(20 * time.Second)
	if k, _ := th.Take("ip:a", "user:x"); k != "" {
		t.Fatalf("after Retry-After still throttled by %q", k)
	}
	c.add(time.Minute)
	for i := range 3 {
		if k, _ := th.Take("ip:a", "user:x"); k != "" {
			t.Fatalf("after a quiet window, failure %d throttled by %s", i+1, k)
		}
	}
}

func TestRefundKeepsGoodLoginsFree(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	th := New(2, time.Hour, c.now)
	for range 10 {
		if k, _ := th.Take("ip:a"); k != "" {
			t.Fatalf("successful logins throttled by %q", k)
		}
		th.Refund("ip:a")
	}
}

func TestSweepBoundsKeys(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	th := New(1, time.Second, c.now)
	for i := range maxKeys {
		th.Take(strconv.Itoa(i))
	}
	c.add(2 * time.Second)
	th.Take("new")
	if n := len(th.buckets); n != 1 {
		t.Fatalf("%d buckets kept after refill, want 1", n)
	}
}
