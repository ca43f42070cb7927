package objects

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/provisionhq/provision/server/store"
)

// maxIndexValue is the longest unique index value stored as is in an index
// key; longer ones are stored as their SHA-256 (bbolt keys are bounded).
const maxIndexValue = 512

// indexKey is the store key that reserves value of the unique field of
// prefix.
func indexKey(prefix, field, value string) string {
	if len(value) > maxIndexValue {
		sum := sha256.Sum256([]byte(value))
		value = "sha256:" + hex.EncodeToString(sum[:])
	}
	return prefix + "\x00" + field + "\x00" + value
}

// uniqueValues returns field → value of e's unique (non-key) indexes.
func (s *Service) uniqueValues(k *Kind, e *entry) map[string]string {
	if e == nil {
		return nil
	}
	out := map[string]string{}
	for _, f := range k.uniqueFields() {
		if v, ok := fieldString(e.fields[f]); ok {
			out[f] = v
		}
	}
	return out
}

// txnFor turns a prepared change into a conditional store transaction: it
// commits only if the object is still at the revision it was validated
// against (absent for a create), every other object its validation read
// is too (see readSet), and every unique value it newly claims is still
// free in the store.
func (s *Service) txnFor(p *prepared) ([]store.Compare, []store.Op) {
	k := p.k
	key := p.change.Key
	var oldRev int64
	if p.old != nil {
		oldRev, key = p.old.rev, p.old.key
	}
	note, _ := json.Marshal(changeNote{Prefix: k.Prefix, Key: key, Action: p.action, Principal: p.change.Principal})
	cmps := []store.Compare{{Bucket: k.Prefix, Key: key, ModRevision: oldRev}}
	// What validation read of other objects must not have changed either.
	cmps = append(cmps, p.reads.compares(k.Prefix, key)...)
	ops := []store.Op{{Bucket: noteBucket, Key: noteKey, Value: note}}
	if p.new == nil {
		ops = append(ops, store.Op{Bucket: k.Prefix, Key: key, Delete: true})
	} else {
		ops = append(ops, store.Op{Bucket: k.Prefix, Key: key, Value: p.new.raw})
	}
	oldVals, newVals := s.uniqueValues(k, p.old), s.uniqueValues(k, p.new)
	for f, v := range newVals {
		if ov, had := oldVals[f]; had && ov == v {
			continue // still ours: the object's own comparison covers it
		}
		ik := indexKey(k.Prefix, f, v)
		cmps = append(cmps, store.Compare{Bucket: indexBucket, Key: ik})
		ops = append(ops, store.Op{Bucket: indexBucket, Key: ik, Value: []byte(key)})
	}
	for f, v := range oldVals {
		if nv, has := newVals[f]; !has || nv != v {
			ops = append(ops, store.Op{Bucket: indexBucket, Key: indexKey(k.Prefix, f, v), Delete: true})
		}
	}
	return cmps, ops
}
