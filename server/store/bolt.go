package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultLockTimeout is how long OpenBolt waits for the database file lock
// when BoltOptions.LockTimeout is zero. It is short on purpose: a second
// provisiond on the same base directory should fail at once, not hang.
const DefaultLockTimeout = 100 * time.Millisecond

// BoltOptions configures OpenBolt.
type BoltOptions struct {
	// LockTimeout bounds the wait for the exclusive file lock
	// (default DefaultLockTimeout). When it expires OpenBolt returns an
	// error wrapping ErrLocked.
	LockTimeout time.Duration
	// FileMode is the permission of a newly created database file
	// (default 0600: the database holds secrets).
	FileMode os.FileMode
}

// boltStore implements Store over a bbolt database file.
type boltStore struct {
	db   *bolt.DB
	path string
}

// OpenBolt opens (creating if needed, with its parent directory) the bbolt
// database at path and takes an exclusive lock on it for the life of the
// Store. If another process holds the lock it fails after
// opts.LockTimeout with an error that wraps ErrLocked and names the file.
//
// Durability: bbolt fsyncs every committed write transaction (NoSync is
// left false), so a nil return from Update means the change is on disk.
func OpenBolt(path string, opts BoltOptions) (Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	mode := opts.FileMode
	if mode == 0 {
		mode = 0o600
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, mode, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("another provisiond is using %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &boltStore{db: db, path: path}, nil
}

// View runs fn in a read-only bbolt transaction. It returns ctx.Err()
// without running fn if ctx is already done.
func (s *boltStore) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error { return fn(boltTx{btx}) })
}

// Update runs fn in a read-write bbolt transaction and commits (with fsync)
// if fn returns nil; any error or panic from fn rolls everything back. It
// returns ctx.Err() without running fn if ctx is already done.
func (s *boltStore) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error { return fn(boltTx{btx}) })
}

// Close waits for open transactions, then releases the file and its lock.
func (s *boltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// boltTx adapts a bbolt transaction to Tx.
//
// bbolt hands out slices that point into its memory map and are only valid
// until the transaction ends (and must never be written to). Get and
// ForEach therefore return copies, so callers may keep and modify values
// freely.
type boltTx struct{ tx *bolt.Tx }

// Get returns a copy of the value under bucket/key.
func (t boltTx) Get(bucket, key string) ([]byte, bool) {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, false
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, false
	}
	return bytes.Clone(v), true
}

// Put stores value under bucket/key, creating the bucket if needed.
func (t boltTx) Put(bucket, key string, value []byte) error {
	if !t.tx.Writable() {
		return fmt.Errorf("put %s/%s: %w", bucket, key, ErrReadOnly)
	}
	if key == "" {
		return fmt.Errorf("store: put %s: empty key", bucket)
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("store: create bucket %q: %w", bucket, err)
	}
	if value == nil {
		// bbolt treats a nil value as empty; be explicit so Get finds it.
		value = []byte{}
	}
	if err := b.Put([]byte(key), value); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Delete removes bucket/key; a missing bucket or key is not an error.
func (t boltTx) Delete(bucket, key string) error {
	if !t.tx.Writable() {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, ErrReadOnly)
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// ForEach calls fn with a copy of every key/value of bucket in key order;
// a missing bucket has no keys. An error from fn stops the walk and is
// returned as is.
func (t boltTx) ForEach(bucket string, fn func(key string, value []byte) error) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			continue // nested bucket, not a value
		}
		if err := fn(string(k), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return nil
}
