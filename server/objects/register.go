package objects

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/store"
)

// Register adds a kind at any time (also while serving) and loads its
// existing objects from the store. Registering a prefix twice is an error.
//
// The load runs in the cache's applier between two revisions: it reads a
// snapshot at some revision S no older than the last applied one, and
// revisions up to S are then skipped for this kind, so no change is lost
// or applied twice.
func (s *Service) Register(ctx context.Context, k Kind) error {
	if err := k.check(); err != nil {
		return err
	}
	kc := k
	idx := map[string]models.Index{}
	for name, v := range k.Indexes {
		idx[name] = v
	}
	ki := idx[k.KeyField]
	ki.Unique = true
	if ki.Type == "" {
		ki.Type = "string"
	}
	idx[k.KeyField] = ki
	kc.Indexes = idx
	var err error
	if ierr := s.inApplier(ctx, func() { err = s.install(ctx, &kc) }); ierr != nil {
		return fmt.Errorf("register %s: %w", k.Prefix, ierr)
	}
	return err
}

// install loads k's objects from a store snapshot and adds k to the cache.
func (s *Service) install(ctx context.Context, k *Kind) error {
	s.mu.RLock()
	_, dup := s.kinds[k.Prefix]
	s.mu.RUnlock()
	if dup {
		return fmt.Errorf("object kind %s is already registered", k.Prefix)
	}
	loaded := map[string]*entry{}
	var at int64
	missing := map[string]string{} // index key → object key
	err := s.st.View(ctx, func(tx store.Tx) error {
		at = tx.Revision()
		var keys []string
		err := tx.ForEach(k.Prefix, func(key string, value []byte) error {
			e, err := s.entryFromStore(k, value, tx.ModRevision(k.Prefix, key))
			if err != nil {
				s.log.Error("skipping stored object", "prefix", k.Prefix, "key", key, "error", err)
				return nil
			}
			loaded[e.key] = e
			keys = append(keys, e.key)
			return nil
		})
		if err != nil {
			return err
		}
		sort.Strings(keys)
		for _, key := range keys {
			for f, v := range s.uniqueValues(k, loaded[key]) {
				ik := indexKey(k.Prefix, f, v)
				if _, ok := tx.Get(indexBucket, ik); !ok {
					if _, taken := missing[ik]; !taken {
						missing[ik] = key
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load %s: %w", k.Prefix, err)
	}
	if err := s.claimIndexKeys(ctx, k, missing); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinds[k.Prefix] = k
	s.data[k.Prefix] = loaded
	s.loadedAt[k.Prefix] = at
	s.uniq[k.Prefix] = map[string]map[string]string{}
	for _, f := range k.uniqueFields() {
		s.uniq[k.Prefix][f] = map[string]string{}
	}
	keys := make([]string, 0, len(loaded))
	for key := range loaded {
		keys = append(keys, key)
	}
	sort.Strings(keys) // a duplicate value (older data) goes to the last key, as before
	for _, key := range keys {
		s.indexAdd(k, loaded[key])
	}
	return nil
}

// claimIndexKeys writes the index keys of objects stored before unique
// values were reserved in the store (each only if still free).
func (s *Service) claimIndexKeys(ctx context.Context, k *Kind, missing map[string]string) error {
	if len(missing) == 0 {
		return nil
	}
	cmps := make([]store.Compare, 0, len(missing))
	ops := make([]store.Op, 0, len(missing))
	for ik, key := range missing {
		cmps = append(cmps, store.Compare{Bucket: indexBucket, Key: ik})
		ops = append(ops, store.Op{Bucket: indexBucket, Key: ik, Value: []byte(key)})
	}
	if _, err := s.st.Txn(ctx, cmps, ops); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("load %s: reserve unique values: %w", k.Prefix, err)
	}
	return nil
}
