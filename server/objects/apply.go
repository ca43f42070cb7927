package objects

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/store"
)

// Buckets the object layer keeps next to one bucket per kind. A colon
// cannot appear in a kind prefix, so they never collide with one.
const (
	// noteBucket holds, under noteKey, the change note of the latest
	// write: written in the same revision as the object, it tells whoever
	// applies that revision from the watch stream which action and
	// principal the event carries.
	noteBucket = "objects:changes"
	noteKey    = "last"
	// indexBucket holds one key per unique index value (see indexKey), so
	// that the store transaction itself refuses a second object claiming
	// a value.
	indexBucket = "objects:index"
)

// changeNote describes the write of one revision.
type changeNote struct {
	Prefix    string `json:"p"`
	Key       string `json:"k"`
	Action    string `json:"a"`
	Principal string `json:"u,omitempty"`
}

// appliedClock is the latest store revision applied to the cache, and a
// channel closed when it next moves or when the watch stream ends.
type appliedClock struct {
	mu   sync.Mutex
	rev  int64
	ch   chan struct{}
	dead error
}

func (c *appliedClock) set(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev < c.rev {
		return
	}
	c.rev = rev
	close(c.ch)
	c.ch = make(chan struct{})
}

func (c *appliedClock) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead == nil {
		c.dead = err
		close(c.ch)
	}
}

// wait returns once revision rev is applied, ctx ends or the stream died.
func (c *appliedClock) wait(ctx context.Context, rev int64) error {
	for {
		c.mu.Lock()
		cur, ch, dead := c.rev, c.ch, c.dead
		c.mu.Unlock()
		if cur >= rev {
			return nil
		}
		if dead != nil {
			return fmt.Errorf("objects: cache stopped at revision %d: %w", cur, dead)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startApplier starts the goroutine that feeds the cache: it applies every
// revision of the store's watch stream in order (the same path by which
// another node's write would arrive) and publishes one event per changed
// object, so events follow commit order. ctl runs functions between
// revisions (Register's load).
func (s *Service) startApplier() error {
	start := s.st.Revision()
	ch, err := s.st.Watch(context.Background(), start+1)
	if err != nil {
		return fmt.Errorf("objects: watch the store: %w", err)
	}
	s.applied.rev, s.applied.ch = start, make(chan struct{})
	go func() {
		for {
			select {
			case r, ok := <-ch:
				if !ok {
					s.applied.stop(store.ErrClosed)
					return
				}
				if r.Err != nil && errors.Is(r.Err, store.ErrCompacted) {
					// Fell behind the change log: reload from a snapshot.
					s.log.Error("object cache fell behind the store's change log; reloading every kind (events of the missed changes are not published)",
						"revision", r.Revision, "error", r.Err)
					next, err := s.resync()
					if err == nil {
						ch = next
						continue
					}
					r.Err = err
				}
				if r.Err != nil {
					if !errors.Is(r.Err, store.ErrClosed) {
						s.log.Error("object cache stopped: store watch failed", "revision", r.Revision, "error", r.Err)
					}
					s.applied.stop(r.Err)
					return
				}
				s.applyRevision(r)
			case fn := <-s.ctl:
				fn()
			}
		}
	}()
	return nil
}

// resync reloads every registered kind from one store snapshot and
// returns a watch from the revision after it. It runs in the applier.
func (s *Service) resync() (<-chan store.WatchResponse, error) {
	s.mu.RLock()
	kinds := make(map[string]*Kind, len(s.kinds))
	for p, k := range s.kinds {
		kinds[p] = k
	}
	s.mu.RUnlock()
	ctx := context.Background()
	var at int64
	loaded := map[string]map[string]*entry{}
	err := s.st.View(ctx, func(tx store.Tx) error {
		at = tx.Revision()
		for prefix, k := range kinds {
			objs := map[string]*entry{}
			err := tx.ForEach(prefix, func(key string, value []byte) error {
				e, err := s.entryFromStore(k, value, tx.ModRevision(prefix, key))
				if err != nil {
					s.log.Error("skipping stored object", "prefix", prefix, "key", key, "error", err)
					return nil
				}
				objs[e.key] = e
				return nil
			})
			if err != nil {
				return err
			}
			loaded[prefix] = objs
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objects: reload after falling behind: %w", err)
	}
	s.mu.Lock()
	for prefix, k := range kinds {
		if s.kinds[prefix] != k {
			continue
		}
		s.data[prefix] = loaded[prefix]
		s.loadedAt[prefix] = at
		for f := range s.uniq[prefix] {
			s.uniq[prefix][f] = map[string]string{}
		}
		keys := make([]string, 0, len(loaded[prefix]))
		for key := range loaded[prefix] {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			s.indexAdd(k, loaded[prefix][key])
		}
	}
	s.mu.Unlock()
	s.applied.set(at)
	ch, err := s.st.Watch(ctx, at+1)
	if err != nil {
		return nil, fmt.Errorf("objects: watch the store after reloading: %w", err)
	}
	return ch, nil
}

// inApplier runs fn in the applier goroutine between two revisions.
func (s *Service) inApplier(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	s.applied.mu.Lock()
	dead := s.applied.dead
	s.applied.mu.Unlock()
	if dead != nil {
		return fmt.Errorf("objects: cache stopped: %w", dead)
	}
	select {
	case s.ctl <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// applied change of one object within a revision.
type appliedChange struct {
	k        *Kind
	key      string
	old, new *entry
}

// applyRevision applies one revision to the cache and publishes its events.
func (s *Service) applyRevision(r store.WatchResponse) {
	var note changeNote
	type built struct {
		k   *Kind
		ev  store.Event
		new *entry
	}
	var todo []built
	s.mu.RLock()
	for _, ev := range r.Events {
		switch ev.Bucket {
		case noteBucket:
			_ = json.Unmarshal(ev.Value, &note)
			continue
		case indexBucket:
			continue
		}
		k, ok := s.kinds[ev.Bucket]
		if !ok || r.Revision <= s.loadedAt[ev.Bucket] {
			continue
		}
		todo = append(todo, built{k: k, ev: ev})
	}
	s.mu.RUnlock()
	// Build entries outside the lock; a local writer already built its own.
	for i := range todo {
		b := &todo[i]
		if b.ev.Delete {
			continue
		}
		if e := s.takePending(b.k.Prefix, b.ev.Key, b.ev.Value); e != nil {
			c := *e
			c.rev = r.Revision
			b.new = &c
			continue
		}
		e, err := s.entryFromStore(b.k, b.ev.Value, r.Revision)
		if err != nil {
			s.log.Error("skipping undecodable stored object", "prefix", b.k.Prefix, "key", b.ev.Key, "revision", r.Revision, "error", err)
			continue
		}
		b.new = e
	}
	var changes []appliedChange
	s.mu.Lock()
	for _, b := range todo {
		k := b.k
		if s.kinds[k.Prefix] != k {
			continue // unregistered meanwhile
		}
		if !b.ev.Delete && b.new == nil {
			continue
		}
		objs := s.data[k.Prefix]
		old := objs[b.ev.Key]
		if old != nil {
			s.indexRemove(k, old)
		}
		if b.ev.Delete {
			if old == nil {
				continue
			}
			delete(objs, b.ev.Key)
		} else {
			objs[b.ev.Key] = b.new
			s.indexAdd(k, b.new)
		}
		changes = append(changes, appliedChange{k: k, key: b.ev.Key, old: old, new: b.new})
	}
	s.mu.Unlock()
	now := time.Now().UTC()
	for _, c := range changes {
		s.bus.Publish(changeEvent(now, c, note))
	}
	s.applied.set(r.Revision)
}

// changeEvent is the event of one applied change: action and principal
// from the writer's note when it names this object, else from the change.
func changeEvent(now time.Time, c appliedChange, note changeNote) models.Event {
	action, principal := ActionUpdate, ""
	switch {
	case note.Prefix == c.k.Prefix && note.Key == c.key:
		action, principal = note.Action, note.Principal
	case c.new == nil:
		action = ActionDelete
	case c.old == nil:
		action = ActionCreate
	}
	ev := models.Event{Time: now, Type: c.k.Prefix, Action: action, Key: c.key, Principal: principal}
	if c.new == nil {
		ev.Object = json.RawMessage(c.old.view)
	} else {
		ev.Object = json.RawMessage(c.new.view)
		if c.old != nil {
			ev.Original = json.RawMessage(c.old.view)
		}
	}
	return ev
}

// entryFromStore builds the cache entry of a stored value.
func (s *Service) entryFromStore(k *Kind, value []byte, rev int64) (*entry, error) {
	obj := k.newObject()
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k.Prefix, err)
	}
	obj.Fill()
	e, err := s.makeEntry(k, obj)
	if err != nil {
		return nil, err
	}
	e.rev = rev
	return e, nil
}

func pendingKey(prefix, key string) string { return prefix + "\x00" + key }

// takePending returns the entry a local writer built for prefix/key if it
// is the one stored as value.
func (s *Service) takePending(prefix, key string, value []byte) *entry {
	v, ok := s.pending.Load(pendingKey(prefix, key))
	if !ok {
		return nil
	}
	e := v.(*entry)
	if !bytes.Equal(e.raw, value) {
		return nil
	}
	s.pending.CompareAndDelete(pendingKey(prefix, key), e)
	return e
}
