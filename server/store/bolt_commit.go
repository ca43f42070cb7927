package store

import (
	"context"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds how many Txns share one bbolt transaction (one fsync).
const maxGroup = 256

// txnRequest is one queued Txn and, once done is closed, its outcome.
type txnRequest struct {
	ctx  context.Context
	cmps []Compare
	ops  []Op
	rev  int64
	err  error
	done chan struct{}
}

// commitQueue is a group commit queue: one goroutine takes every request
// queued while the previous group was being written and synced, and
// commits them together. There is no artificial delay: a lone writer is
// committed at once, and under load a group is as large as the writers
// that arrived during one fsync.
type commitQueue struct {
	mu     sync.RWMutex
	closed bool
	ch     chan *txnRequest
	quit   chan struct{}
	wg     sync.WaitGroup
}

func (q *commitQueue) start(commit func([]*txnRequest)) {
	q.ch = make(chan *txnRequest, maxGroup)
	q.quit = make(chan struct{})
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		for {
			select {
			case r := <-q.ch:
				group := []*txnRequest{r}
			drain:
				for len(group) < maxGroup {
					select {
					case r := <-q.ch:
						group = append(group, r)
					default:
						break drain
					}
				}
				commit(group)
			case <-q.quit:
				for {
					select {
					case r := <-q.ch:
						r.err = ErrClosed
						close(r.done)
					default:
						return
					}
				}
			}
		}
	}()
}

// submit queues r and waits until it is committed or refused. Once
// queued, r is waited for even if its context ends, because it may
// already be part of a group being written; the commit skips a request
// whose context ended before its group started.
func (q *commitQueue) submit(r *txnRequest) error {
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return ErrClosed
	}
	select {
	case q.ch <- r:
	case <-r.ctx.Done():
		q.mu.RUnlock()
		return r.ctx.Err()
	}
	q.mu.RUnlock()
	<-r.done
	return r.err
}

// stop refuses new requests, fails the queued ones and waits for the
// goroutine (and so for a group being committed).
func (q *commitQueue) stop() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.quit)
	q.mu.Unlock()
	q.wg.Wait()
}

// Txn checks cmps and applies ops in one revision, committed together with
// the other Txns queued at the same time (one fsync for all of them).
func (s *boltStore) Txn(ctx context.Context, cmps []Compare, ops []Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for _, op := range ops {
		if err := checkOp(op); err != nil {
			return 0, err
		}
	}
	r := &txnRequest{ctx: ctx, cmps: cmps, ops: ops, done: make(chan struct{})}
	if err := s.queue.submit(r); err != nil {
		return 0, err
	}
	return r.rev, nil
}

// checkOp refuses an op bbolt would refuse, before it can fail a whole
// group.
func checkOp(op Op) error {
	switch {
	case op.Bucket == "" || isSystemBucket(op.Bucket):
		return fmt.Errorf("store: txn on %q/%s: invalid bucket name", op.Bucket, op.Key)
	case op.Key == "":
		return fmt.Errorf("store: txn on %s: empty key", op.Bucket)
	case len(op.Key)+len(op.Bucket)+1 > bolt.MaxKeySize:
		return fmt.Errorf("store: txn on %s: key of %d bytes is too long", op.Bucket, len(op.Key))
	case len(op.Value) > bolt.MaxValueSize:
		return fmt.Errorf("store: txn on %s/%s: value of %d bytes is too large", op.Bucket, op.Key, len(op.Value))
	}
	return nil
}

// commitGroup commits group in one bbolt transaction. If that fails as a
// whole (a disk error), each request is retried alone so that one bad
// request cannot fail the others.
func (s *boltStore) commitGroup(group []*txnRequest) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, r := range group {
			if err := s.applyTxn(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		for _, r := range group {
			s.commitGroup([]*txnRequest{r})
		}
		return
	}
	var top int64
	for _, r := range group {
		if err != nil {
			r.rev, r.err = 0, fmt.Errorf("store: commit: %w", err)
		} else if r.err == nil && r.rev > top {
			top = r.rev
		}
	}
	s.rev.advance(top)
	for _, r := range group {
		close(r.done)
	}
}

// applyTxn runs one request inside the group's transaction. A failed
// comparison or an ended context is the request's own outcome (r.err) and
// writes nothing; the returned error is a write failure that aborts the
// whole transaction.
func (s *boltStore) applyTxn(tx *bolt.Tx, r *txnRequest) error {
	r.rev, r.err = 0, nil
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return nil
	}
	for _, c := range r.cmps {
		if actual := modRevision(tx, c.Bucket, c.Key); actual != c.ModRevision {
			r.err = &ConflictError{Compare: c, Actual: actual}
			return nil
		}
	}
	w := newRevWriter(tx)
	bt := boltTx{tx: tx, w: w}
	for _, op := range r.ops {
		var err error
		if op.Delete {
			err = bt.Delete(op.Bucket, op.Key)
		} else {
			err = bt.Put(op.Bucket, op.Key, op.Value)
		}
		if err != nil {
			return err
		}
	}
	if err := w.finish(tx, s.retain); err != nil {
		return err
	}
	r.rev = w.rev
	if r.rev == 0 {
		r.rev = w.base
	}
	return nil
}
