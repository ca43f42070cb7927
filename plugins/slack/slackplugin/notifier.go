package slackplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provisionhq/provision/plugins/internal/pluginutil"
)

// ErrQueueFull is returned by Enqueue when the bounded queue is full; the
// message is dropped rather than blocking the caller.
var ErrQueueFull = errors.New("slack queue full, message dropped")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("slack notifier closed")

// ErrNoSender is returned when no destination is configured yet.
var ErrNoSender = errors.New("slack destination not configured")

// NotifierOptions tunes a Notifier. Zero values take the defaults noted.
type NotifierOptions struct {
	// QueueLen bounds the number of pending messages (default 256).
	QueueLen int
	// MaxAttempts is how many times one message is tried (default 5).
	MaxAttempts int
	// BaseBackoff is the wait after the first failure, doubled after each
	// further one (default 1s).
	BaseBackoff time.Duration
	// MaxBackoff caps the doubling (default 1m).
	MaxBackoff time.Duration
	// MaxRetryAfter caps a 429 Retry-After so a bogus header cannot stall the
	// queue for hours (default 10m).
	MaxRetryAfter time.Duration
	// AttemptTimeout bounds one HTTP attempt (default 30s).
	AttemptTimeout time.Duration
	// Wait sleeps for d or until ctx ends; tests replace it to record the
	// requested delays without sleeping. Default: a timer.
	Wait func(ctx context.Context, d time.Duration) error
	// Logger receives delivery failures (default slog.Default()).
	Logger *slog.Logger
}

func (o *NotifierOptions) fill() {
	if o.QueueLen <= 0 {
		o.QueueLen = 256
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 10 * time.Minute
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 30 * time.Second
	}
	if o.Wait == nil {
		o.Wait = pluginutil.Sleep
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats counts what a Notifier did with its messages.
type Stats struct {
	// Delivered messages were accepted by Slack.
	Delivered uint64
	// Failed messages were given up after a permanent error or MaxAttempts.
	Failed uint64
	// Dropped messages did not fit in the queue.
	Dropped uint64
}

// Notifier owns the bounded message queue and the single worker that
// delivers it. The destination (Sender) can be swapped at any time, e.g.
// when the plugin is re-configured; queued messages go to the destination
// current at delivery time.
type Notifier struct {
	opts  NotifierOptions
	queue chan string

	mu     sync.Mutex
	sender Sender
	closed bool

	delivered, failed, dropped atomic.Uint64

	cancel context.CancelFunc
	drain  chan struct{}
	done   chan struct{}
}

// NewNotifier starts a notifier whose worker runs until Close.
func NewNotifier(opts NotifierOptions) *Notifier {
	opts.fill()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{
		opts:   opts,
		queue:  make(chan string, opts.QueueLen),
		cancel: cancel,
		drain:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	go n.run(ctx)
	return n
}

// SetSender replaces the destination.
func (n *Notifier) SetSender(s Sender) {
	n.mu.Lock()
	n.sender = s
	n.mu.Unlock()
}

func (n *Notifier) currentSender() Sender {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sender
}

// Enqueue queues text for delivery without ever blocking.
func (n *Notifier) Enqueue(text string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	select {
	case n.queue <- text:
		return nil
	default:
		n.dropped.Add(1)
		return ErrQueueFull
	}
}

// Stats returns the counters so far.
func (n *Notifier) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

// Pending is the number of queued, not yet attempted messages.
func (n *Notifier) Pending() int { return len(n.queue) }

// Close stops accepting messages, lets the worker deliver what is queued
// until ctx ends, then stops it. Messages still queued are counted as
// Failed and logged. A Close after the first one waits for the worker to
// stop, but returns when its own ctx ends; it leaves the first Close's
// deadline in charge of the worker.
func (n *Notifier) Close(ctx context.Context) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		select {
		case <-n.done:
		case <-ctx.Done():
		}
		return
	}
	n.closed = true
	n.mu.Unlock()
	close(n.drain)
	select {
	case <-n.done:
	case <-ctx.Done():
		n.cancel()
		<-n.done
	}
	n.cancel()
}

func (n *Notifier) run(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case text := <-n.queue:
			n.deliverQueued(ctx, text)
		case <-n.drain:
			for {
				select {
				case text := <-n.queue:
					n.deliverQueued(ctx, text)
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func (n *Notifier) deliverQueued(ctx context.Context, text string) {
	defer func() {
		if r := recover(); r != nil {
			n.failed.Add(1)
			n.opts.Logger.Error("slack delivery panicked", "panic", fmt.Sprint(r))
		}
	}()
	if err := n.Deliver(ctx, text); err != nil {
		n.opts.Logger.Warn("slack notification not delivered", "error", err)
	}
}

// Deliver sends text now, retrying with exponential backoff and honouring
// Slack's Retry-After, until it succeeds, a permanent error occurs,
// MaxAttempts is reached or ctx ends. The worker uses it for queued
// messages; the slack-notify action calls it directly.
func (n *Notifier) Deliver(ctx context.Context, text string) error {
	var last error
	backoff := n.opts.BaseBackoff
	for attempt := 1; attempt <= n.opts.MaxAttempts; attempt++ {
		s := n.currentSender()
		if s == nil {
			n.failed.Add(1)
			return ErrNoSender
		}
		actx, cancel := context.WithTimeout(ctx, n.opts.AttemptTimeout)
		err := s.Send(actx, text)
		cancel()
		if err == nil {
			n.delivered.Add(1)
			return nil
		}
		last = fmt.Errorf("%s: attempt %d/%d: %w", s.Describe(), attempt, n.opts.MaxAttempts, err)
		retry, retryAfter := classify(err)
		if !retry || attempt == n.opts.MaxAttempts || ctx.Err() != nil {
			break
		}
		wait := backoff
		if retryAfter > 0 {
			wait = min(retryAfter, n.opts.MaxRetryAfter)
		} else {
			backoff = min(backoff*2, n.opts.MaxBackoff)
		}
		n.opts.Logger.Info("slack delivery will be retried", "error", last, "wait", wait)
		if err := n.opts.Wait(ctx, wait); err != nil {
			last = fmt.Errorf("%w (gave up waiting: %v)", last, err)
			break
		}
	}
	n.failed.Add(1)
	return last
}
