package store

import "sync"

// revisionClock is the latest durable revision of a store and a way to
// wait for it to move: changed returns a channel that is closed at the next
// advance (or at close).
type revisionClock struct {
	mu     sync.Mutex
	rev    int64
	ch     chan struct{}
	closed bool
}

func (c *revisionClock) init(rev int64) {
	c.rev = rev
	c.ch = make(chan struct{})
}

// advance records that every revision up to rev is durable.
func (c *revisionClock) advance(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev <= c.rev || c.closed {
		return
	}
	c.rev = rev
	close(c.ch)
	c.ch = make(chan struct{})
}

func (c *revisionClock) current() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev
}

// state returns the revision, a channel closed when it next changes, and
// whether the clock is closed.
func (c *revisionClock) state() (int64, <-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev, c.ch, c.closed
}

// close wakes every waiter for the last time.
func (c *revisionClock) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.ch)
	}
}
