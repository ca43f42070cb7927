package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The bbolt backend keeps its revision bookkeeping in buckets whose names
// start with a NUL byte, which callers cannot use (Put refuses them):
//
//	sysBucket  "rev": the current revision (8 bytes, big endian)
//	modBucket  <bucket> NUL <key>: that key's ModRevision
//	logBucket  <revision>: the revision's events (see encodeEvents), the
//	           change log Watch reads; the oldest entries are compacted
//	           away once more than BoltOptions.Retain revisions exist.
const (
	sysBucket = "\x00store"
	modBucket = "\x00modrev"
	logBucket = "\x00log"
	revKey    = "rev"
)

// DefaultRetain is how many revisions of change log the bbolt backend keeps
// for Watch when BoltOptions.Retain is zero.
const DefaultRetain = 10000

func isSystemBucket(name string) bool { return strings.HasPrefix(name, "\x00") }

func be64(v int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return b
}

func fromBE64(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func modKey(bucket, key string) []byte { return []byte(bucket + "\x00" + key) }

// currentRevision reads the revision stored in tx.
func currentRevision(tx *bolt.Tx) int64 {
	b := tx.Bucket([]byte(sysBucket))
	if b == nil {
		return 0
	}
	return fromBE64(b.Get([]byte(revKey)))
}

// modRevision reads bucket/key's ModRevision in tx (0: absent).
func modRevision(tx *bolt.Tx, bucket, key string) int64 {
	b := tx.Bucket([]byte(modBucket))
	if b == nil {
		return 0
	}
	return fromBE64(b.Get(modKey(bucket, key)))
}

// revWriter collects the writes of one revision inside a bbolt write
// transaction: the first write claims revision base+1, and finish records
// the revision and its change log entry.
type revWriter struct {
	base   int64
	rev    int64
	events []Event
}

func newRevWriter(tx *bolt.Tx) *revWriter { return &revWriter{base: currentRevision(tx)} }

// record notes one write of bucket/key and stamps its ModRevision.
func (w *revWriter) record(tx *bolt.Tx, ev Event) error {
	if w.rev == 0 {
		w.rev = w.base + 1
	}
	w.events = append(w.events, ev)
	mb, err := tx.CreateBucketIfNotExists([]byte(modBucket))
	if err != nil {
		return fmt.Errorf("store: create revision bucket: %w", err)
	}
	if ev.Delete {
		err = mb.Delete(modKey(ev.Bucket, ev.Key))
	} else {
		err = mb.Put(modKey(ev.Bucket, ev.Key), be64(w.rev))
	}
	if err != nil {
		return fmt.Errorf("store: revision of %s/%s: %w", ev.Bucket, ev.Key, err)
	}
	return nil
}

// finish stores the new revision and its log entry, and compacts the log
// to retain revisions. It does nothing when nothing was written.
func (w *revWriter) finish(tx *bolt.Tx, retain int64) error {
	if w.rev == 0 {
		return nil
	}
	sb, err := tx.CreateBucketIfNotExists([]byte(sysBucket))
	if err != nil {
		return fmt.Errorf("store: create system bucket: %w", err)
	}
	if err := sb.Put([]byte(revKey), be64(w.rev)); err != nil {
		return fmt.Errorf("store: store revision %d: %w", w.rev, err)
	}
	lb, err := tx.CreateBucketIfNotExists([]byte(logBucket))
	if err != nil {
		return fmt.Errorf("store: create log bucket: %w", err)
	}
	if err := lb.Put(be64(w.rev), encodeEvents(w.events)); err != nil {
		return fmt.Errorf("store: log revision %d: %w", w.rev, err)
	}
	cutoff := w.rev - retain
	c := lb.Cursor()
	for k, _ := c.First(); k != nil && fromBE64(k) <= cutoff; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("store: compact log: %w", err)
		}
	}
	return nil
}

// migrate gives a database written before revisions existed its first
// revision: every key gets ModRevision 1 (with no log entry, so Watch
// starts after it).
func migrate(tx *bolt.Tx) error {
	if tx.Bucket([]byte(sysBucket)) != nil {
		return nil
	}
	var names [][]byte
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !isSystemBucket(string(name)) {
			names = append(names, append([]byte{}, name...))
		}
		return nil
	}); err != nil {
		return err
	}
	sb, err := tx.CreateBucket([]byte(sysBucket))
	if err != nil {
		return fmt.Errorf("store: create system bucket: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	mb, err := tx.CreateBucketIfNotExists([]byte(modBucket))
	if err != nil {
		return fmt.Errorf("store: create revision bucket: %w", err)
	}
	one := be64(1)
	for _, name := range names {
		err := tx.Bucket(name).ForEach(func(k, v []byte) error {
			if v == nil {
				return nil
			}
			return mb.Put(modKey(string(name), string(k)), one)
		})
		if err != nil {
			return fmt.Errorf("store: migrate bucket %q: %w", name, err)
		}
	}
	return sb.Put([]byte(revKey), one)
}

// encodeEvents serialises one revision's events: per event a flag byte
// (1 = delete) and the length-prefixed bucket, key and value.
func encodeEvents(evs []Event) []byte {
	var out []byte
	for _, ev := range evs {
		flag := byte(0)
		if ev.Delete {
			flag = 1
		}
		out = append(out, flag)
		for _, s := range [][]byte{[]byte(ev.Bucket), []byte(ev.Key), ev.Value} {
			out = binary.AppendUvarint(out, uint64(len(s)))
			out = append(out, s...)
		}
	}
	return out
}

var errBadLog = errors.New("store: corrupt change log entry")

// decodeEvents is the inverse of encodeEvents; the result does not alias buf.
func decodeEvents(buf []byte) ([]Event, error) {
	var out []Event
	for len(buf) > 0 {
		ev := Event{Delete: buf[0] == 1}
		buf = buf[1:]
		var parts [3][]byte
		for i := range parts {
			n, w := binary.Uvarint(buf)
			if w <= 0 || uint64(len(buf)-w) < n {
				return nil, errBadLog
			}
			parts[i] = append([]byte{}, buf[w:w+int(n)]...)
			buf = buf[w+int(n):]
		}
		ev.Bucket, ev.Key = string(parts[0]), string(parts[1])
		if !ev.Delete {
			ev.Value = parts[2]
		}
		out = append(out, ev)
	}
	return out, nil
}
