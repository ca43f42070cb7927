// Package store is provisiond's persistence layer: a small transactional
// key/value interface over named buckets, so that the API never depends on
// the backend. The default backend is bbolt (embedded, crash safe; see
// OpenBolt); a distributed backend such as etcd only has to implement Store
// and pass the conformance suite in server/store/storetest.
//
// The model follows etcd's: every committed write transaction advances the
// store revision by one, and every key carries the revision at which it
// last changed (its ModRevision). Txn makes writes conditional on the
// revisions a caller read (optimistic concurrency), and Watch streams every
// change from a given revision on, in revision order.
package store

import (
	"context"
	"errors"
	"fmt"
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: database is locked by another process")

// ErrReadOnly is returned by Put and Delete inside a View transaction.
var ErrReadOnly = errors.New("store: write in a read-only transaction")

// ErrConflict is wrapped by the error Txn returns when one of its
// comparisons fails (see ConflictError); nothing was written.
var ErrConflict = errors.New("store: conflict")

// ErrCompacted is returned by Watch when the requested revision is older
// than the oldest change the store still keeps.
var ErrCompacted = errors.New("store: revision compacted")

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("store: closed")

// Tx is one transaction. Values must not be retained after the transaction
// ends (copy them).
type Tx interface {
	// Get returns the value under bucket/key and whether it exists.
	Get(bucket, key string) ([]byte, bool)
	// Put stores value under bucket/key, creating the bucket if needed.
	Put(bucket, key string, value []byte) error
	// Delete removes bucket/key; deleting a missing key is not an error.
	Delete(bucket, key string) error
	// ForEach calls fn for every key of bucket in key order.
	ForEach(bucket string, fn func(key string, value []byte) error) error
	// Revision is the store revision this transaction sees: in a View the
	// revision of its snapshot, in an Update the revision before its own
	// writes.
	Revision() int64
	// ModRevision returns the revision at which bucket/key last changed,
	// 0 when it does not exist.
	ModRevision(bucket, key string) int64
}

// Compare is one condition of a Txn: the key's ModRevision must equal
// ModRevision; 0 means the key must not exist.
type Compare struct {
	Bucket, Key string
	ModRevision int64
}

// Op is one write of a Txn: Put Value under Bucket/Key, or Delete it.
type Op struct {
	Bucket, Key string
	Value       []byte
	Delete      bool
}

// Event is one changed key of a revision, as Watch delivers it.
type Event struct {
	Bucket, Key string
	// Value is the new value (nil for a delete).
	Value []byte
	// Delete reports a removed key.
	Delete bool
}

// WatchResponse is one revision's changes, delivered in revision order.
type WatchResponse struct {
	// Revision is the revision of Events.
	Revision int64
	// Events are every key the revision changed, in the order written.
	Events []Event
	// Err ends the stream (the channel is closed after it): the store
	// closed or the watcher fell behind compaction.
	Err error
}

// ConflictError names the first comparison of a Txn that failed.
type ConflictError struct {
	Compare
	// Actual is the key's ModRevision at commit time (0: absent).
	Actual int64
}

// Error describes the failed comparison.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: conflict on %s/%s: expected revision %d, found %d",
		e.Bucket, e.Key, e.ModRevision, e.Actual)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Store is a transactional bucketed key/value store with revisions.
type Store interface {
	// View runs fn in a read-only transaction: a consistent snapshot at
	// tx.Revision().
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction. When it returns nil the
	// change is durable on disk. A transaction that writes advances the
	// revision by one.
	Update(ctx context.Context, fn func(Tx) error) error
	// Txn applies ops atomically if every comparison holds, and returns the
	// revision of the write (the current revision when ops is empty). A
	// failed comparison returns an error wrapping ErrConflict (a
	// *ConflictError) and writes nothing. Concurrent Txns may share one
	// disk sync, but each returns only after its write is durable.
	Txn(ctx context.Context, cmps []Compare, ops []Op) (int64, error)
	// Revision returns the latest durable revision.
	Revision() int64
	// Watch streams every revision after from-1 (so from itself first),
	// including past ones the store still keeps, in order, without gaps or
	// duplicates, until ctx ends or the store closes (then the channel is
	// closed). from must be at least 1.
	Watch(ctx context.Context, from int64) (<-chan WatchResponse, error)
	// Close releases the database and its lock.
	Close() error
}
