// Package fakewait is test support for code that takes a wait function
// (func(ctx, d) error, pluginutil.Sleep in production): a Recorder returns
// at once and remembers each delay asked for, so retry tests neither sleep
// nor time anything and can assert the back-off schedule exactly.
package fakewait

import (
	"context"
	"sync"
	"time"
)

// Recorder is a wait function that records instead of sleeping. The zero
// value is ready; it is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

// Wait records d and returns at once: ctx.Err(), like a real wait that
// ended with its context, or nil.
func (r *Recorder) Wait(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return ctx.Err()
}

// Waits returns a copy of the delays asked for so far, in order.
func (r *Recorder) Waits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}
