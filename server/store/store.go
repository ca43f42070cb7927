// Package store is provisiond's persistence layer: a small transactional
// key/value interface over named buckets, so that the API never depends on
// the backend. The default backend is bbolt (embedded, crash safe; see
// OpenBolt); a distributed backend such as etcd only has to implement Store.
package store

import (
	"context"
	"errors"
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: database is locked by another process")

// ErrReadOnly is returned by Put and Delete inside a View transaction.
var ErrReadOnly = errors.New("store: write in a read-only transaction")

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
}

// Store is a transactional bucketed key/value store.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction. When it returns nil the
	// change is durable on disk.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the database and its lock.
	Close() error
}
