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

// initialMmapSize is the bbolt memory map reserved at open.
const initialMmapSize = 1 << 30

// BoltOptions configures OpenBolt.
type BoltOptions struct {
	// LockTimeout bounds the wait for the exclusive file lock
	// (default DefaultLockTimeout). When it expires OpenBolt returns an
	// error wrapping ErrLocked.
	LockTimeout time.Duration
	// FileMode is the permission of a newly created database file
	// (default 0600: the database holds secrets).
	FileMode os.FileMode
	// Retain is how many revisions of change log are kept for Watch
	// (default DefaultRetain).
	Retain int64
}

// boltStore implements Store over a bbolt database file.
type boltStore struct {
	db     *bolt.DB
	path   string
	retain int64
	rev    revisionClock
	queue  commitQueue
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
	// A large initial mapping (address space, not memory or disk) means
	// the file rarely needs a remap, which would make a writer wait for
	// every open read transaction: snapshots stay cheap to hold.
	db, err := bolt.Open(path, mode, &bolt.Options{Timeout: timeout, InitialMmapSize: initialMmapSize})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("another provisiond is using %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.Update(migrate); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	var rev int64
	_ = db.View(func(tx *bolt.Tx) error { rev = currentRevision(tx); return nil })
	retain := opts.Retain
	if retain <= 0 {
		retain = DefaultRetain
	}
	s := &boltStore{db: db, path: path, retain: retain}
	s.rev.init(rev)
	s.queue.start(s.commitGroup)
	return s, nil
}

// View runs fn in a read-only bbolt transaction. It returns ctx.Err()
// without running fn if ctx is already done.
func (s *boltStore) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error { return fn(boltTx{tx: btx}) })
}

// Update runs fn in a read-write bbolt transaction and commits (with fsync)
// if fn returns nil; any error or panic from fn rolls everything back. It
// returns ctx.Err() without running fn if ctx is already done.
func (s *boltStore) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rev int64
	err := s.db.Update(func(btx *bolt.Tx) error {
		w := newRevWriter(btx)
		if err := fn(boltTx{tx: btx, w: w}); err != nil {
			return err
		}
		rev = w.rev
		return w.finish(btx, s.retain)
	})
	if err != nil {
		return err
	}
	s.rev.advance(rev)
	return nil
}

// Revision returns the latest durable revision.
func (s *boltStore) Revision() int64 { return s.rev.current() }

// Close stops the commit queue (queued Txns fail with ErrClosed) and the
// watchers, waits for open transactions, then releases the file and its
// lock.
func (s *boltStore) Close() error {
	s.queue.stop()
	s.rev.close()
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
// In a write transaction w records every change for the revision.
type boltTx struct {
	tx *bolt.Tx
	w  *revWriter
}

// Revision returns the revision the transaction started from.
func (t boltTx) Revision() int64 {
	if t.w != nil {
		return t.w.base
	}
	return currentRevision(t.tx)
}

// ModRevision returns the revision at which bucket/key last changed.
func (t boltTx) ModRevision(bucket, key string) int64 {
	if t.w != nil && t.w.rev != 0 {
		for i := len(t.w.events) - 1; i >= 0; i-- {
			if ev := t.w.events[i]; ev.Bucket == bucket && ev.Key == key {
				if ev.Delete {
					return 0
				}
				return t.w.rev
			}
		}
	}
	return modRevision(t.tx, bucket, key)
}

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
	if bucket == "" || isSystemBucket(bucket) {
		return fmt.Errorf("store: put %q/%s: invalid bucket name", bucket, key)
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
	return t.w.record(t.tx, Event{Bucket: bucket, Key: key, Value: bytes.Clone(value)})
}

// Delete removes bucket/key; a missing bucket or key is not an error.
func (t boltTx) Delete(bucket, key string) error {
	if !t.tx.Writable() {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, ErrReadOnly)
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil || isSystemBucket(bucket) || b.Get([]byte(key)) == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: delete %s/%s: %w", bucket, key, err)
	}
	return t.w.record(t.tx, Event{Bucket: bucket, Key: key, Delete: true})
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
