package objects

import (
	"context"
	"strings"
	"sync"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/store"
)

// readSet records what a write's validation read of objects other than
// the one it writes (kinds' Prepare, Validate and ValidateDelete, before
// hooks, param definitions), so that the commit can be made conditional
// on it: validation reads the cache under the writer turn, but commits
// after releasing it, so another write may change what it read in
// between.
//
// A point read (one object, or the certain absence of one key) becomes a
// store comparison of the write's Txn. A read the store cannot compare
// (a list of a kind, or a miss through a unique index) makes the set
// exclusive: the write is then validated again with no other write
// validating or in flight (see Service.validateWrite).
type readSet struct {
	cmps      []store.Compare
	seen      map[[2]string]bool
	exclusive bool
}

// point records that validation depended on bucket/key being at rev (0:
// absent).
func (r *readSet) point(bucket, key string, rev int64) {
	if r == nil {
		return
	}
	id := [2]string{bucket, key}
	if r.seen[id] {
		return
	}
	if r.seen == nil {
		r.seen = map[[2]string]bool{}
	}
	r.seen[id] = true
	r.cmps = append(r.cmps, store.Compare{Bucket: bucket, Key: key, ModRevision: rev})
}

// rangeRead records a read the store cannot compare.
func (r *readSet) rangeRead() {
	if r != nil {
		r.exclusive = true
	}
}

// compares returns the recorded comparisons, without the one on
// bucket/key (the written object, which the write compares itself).
func (r *readSet) compares(bucket, key string) []store.Compare {
	if r == nil {
		return nil
	}
	out := make([]store.Compare, 0, len(r.cmps))
	for _, c := range r.cmps {
		if c.Bucket != bucket || c.Key != key {
			out = append(out, c)
		}
	}
	return out
}

// lockedView implements View under the read lock: for hooks and
// validators running under the writer turn (rs records their reads), and
// for Service.View (rs is nil).
type lockedView struct {
	s  *Service
	rs *readSet
}

// Get returns a copy of the object with key or <Index>:<value> id.
func (v lockedView) Get(prefix, id string) (models.Model, bool) {
	k, ok := v.s.kinds[prefix]
	if !ok {
		// No such kind: nothing of it can be written either.
		return nil, false
	}
	e, ok := v.s.lookup(k, id)
	if !ok {
		if strings.Contains(id, ":") {
			// It may have been an index lookup: which key would answer
			// it later is not known.
			v.rs.rangeRead()
		} else {
			v.rs.point(prefix, normalizedKey(k, id), 0)
		}
		return nil, false
	}
	v.rs.point(prefix, e.key, e.rev)
	return v.s.decodeEntry(k, e), true
}

// List returns copies of every object of prefix in key order.
func (v lockedView) List(prefix string) []models.Model {
	k, ok := v.s.kinds[prefix]
	if !ok {
		return nil
	}
	v.rs.rangeRead()
	ents := make([]*entry, 0, len(v.s.data[prefix]))
	for _, e := range v.s.data[prefix] {
		ents = append(ents, e)
	}
	sortEntries(k, ents, "", false)
	out := make([]models.Model, 0, len(ents))
	for _, e := range ents {
		out = append(out, v.s.decodeEntry(k, e))
	}
	return out
}

// Param returns the param definition called name.
func (v lockedView) Param(name string) (*models.Param, bool) {
	v.s.recordParamDef(v.rs, name)
	return v.s.paramDefLocked(name)
}

// recordParamDef records in rs that validation depended on the definition
// of param name (or on its absence). Caller holds the lock.
func (s *Service) recordParamDef(rs *readSet, name string) {
	if rs == nil {
		return
	}
	if _, ok := s.kinds["params"]; !ok {
		return
	}
	var rev int64
	if e, ok := s.data["params"][name]; ok {
		rev = e.rev
	}
	rs.point("params", name, rev)
}

// normalizedKey is the key lookup tries first for id.
func normalizedKey(k *Kind, id string) string {
	if k.NormalizeKey != nil {
		if n := k.NormalizeKey(id); n != "" {
			return n
		}
	}
	return id
}

// flights counts writes that were validated and released the writer turn
// but have not finished their store commit, so that an exclusive write,
// holding the turn (no write can start one), can wait until there are
// none.
type flights struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil while n is 0
}

// add counts one more write in flight. Caller holds the writer turn.
func (f *flights) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
}

// done ends one write counted by add.
func (f *flights) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.idle)
		f.idle = nil
	}
}

// wait returns once no write is in flight, or when ctx ends. Caller holds
// the writer turn, so none can start meanwhile.
func (f *flights) wait(ctx context.Context) error {
	f.mu.Lock()
	ch := f.idle
	f.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
