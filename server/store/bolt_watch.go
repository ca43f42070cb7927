package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// watchChunk bounds how many revisions one read of the change log returns.
const watchChunk = 256

// Watch streams revisions from from on, read from the change log: past
// ones first, then each new durable revision as it is committed.
func (s *boltStore) Watch(ctx context.Context, from int64) (<-chan WatchResponse, error) {
	if from < 1 {
		return nil, fmt.Errorf("store: watch from revision %d: revisions start at 1", from)
	}
	if cur, _, closed := s.rev.state(); closed {
		return nil, ErrClosed
	} else if from <= cur {
		if _, err := s.readLog(from, from); err != nil {
			return nil, err
		}
	}
	ch := make(chan WatchResponse, 16)
	go s.watch(ctx, from, ch)
	return ch, nil
}

func (s *boltStore) watch(ctx context.Context, next int64, ch chan<- WatchResponse) {
	defer close(ch)
	send := func(r WatchResponse) bool {
		select {
		case ch <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		cur, changed, closed := s.rev.state()
		if next <= cur {
			to := min(cur, next+watchChunk-1)
			resps, err := s.readLog(next, to)
			if err != nil {
				send(WatchResponse{Revision: next, Err: err})
				return
			}
			for _, r := range resps {
				if !send(r) {
					return
				}
			}
			next = to + 1
			continue
		}
		if closed {
			send(WatchResponse{Revision: next, Err: ErrClosed})
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// readLog returns revisions from..to of the change log; a missing one
// (compacted) is ErrCompacted.
func (s *boltStore) readLog(from, to int64) ([]WatchResponse, error) {
	out := make([]WatchResponse, 0, to-from+1)
	err := s.db.View(func(tx *bolt.Tx) error {
		lb := tx.Bucket([]byte(logBucket))
		for rev := from; rev <= to; rev++ {
			var v []byte
			if lb != nil {
				v = lb.Get(be64(rev))
			}
			if v == nil {
				return fmt.Errorf("store: revision %d: %w", rev, ErrCompacted)
			}
			evs, err := decodeEvents(v)
			if err != nil {
				return fmt.Errorf("store: revision %d: %w", rev, err)
			}
			out = append(out, WatchResponse{Revision: rev, Events: evs})
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCompacted) {
			return nil, err
		}
		return nil, fmt.Errorf("store: read change log: %w", err)
	}
	return out, nil
}
