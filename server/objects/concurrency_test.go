package objects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/events"
	"github.com/provisionhq/provision/server/store"
)

// gatedStore holds every Txn that writes bucket until the test opens the
// gate, reporting each held Txn on entered: the store write of a Service
// write can be paused at will, like a slow fsync.
type gatedStore struct {
	store.Store
	bucket  string
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Txn(ctx context.Context, cmps []store.Compare, ops []store.Op) (int64, error) {
	for _, op := range ops {
		if op.Bucket == g.bucket {
			g.entered <- struct{}{}
			<-g.gate
			break
		}
	}
	return g.Store.Txn(ctx, cmps, ops)
}

func newGatedService(t *testing.T) (*Service, *gatedStore, *events.Bus) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "test.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	g := &gatedStore{Store: st, bucket: "machines", entered: make(chan struct{}, 16), gate: make(chan struct{})}
	s, bus := quietService(t, dir, g, Limits{})
	registerKinds(t, s, standardKinds(s)...)
	return s, g, bus
}

func waitEntered(t *testing.T, g *gatedStore) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no write reached the store")
	}
}

// TestReadsDoNotWaitForStoreWrites: while a write is in its store commit
// (held by the test as a slow fsync would), reads of every kind and other
// kinds' writes go on; the write's caller then reads its own write.
func TestReadsDoNotWaitForStoreWrites(t *testing.T) {
	s, g, _ := newGatedService(t)
	ctx := t.Context()
	done := make(chan error, 1)
	go func() {
		_, err := s.Create(ctx, "test", "machines", &models.Machine{Name: "m1"})
		done <- err
	}()
	waitEntered(t, g)
	if _, err := s.Get(ctx, "profiles", GlobalProfile); err == nil {
		t.Fatal("global profile exists in a fresh service")
	}
	if _, err := s.List(ctx, "machines", All(), RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Peek("machines", "x", func(models.Model) {})
	if _, err := s.Create(ctx, "test", "profiles", &models.Profile{Name: "p1"}); err != nil {
		t.Fatalf("a profile write behind a held machine write: %v", err)
	}
	if _, err := s.Get(ctx, "machines", "Name:m1"); err == nil {
		t.Fatal("an uncommitted machine is visible")
	}
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "machines", "Name:m1"); err != nil {
		t.Fatalf("the writer's own write is not visible after it returned: %v", err)
	}
}

// TestUniqueNameIsEnforcedByTheStore: two creates of the same Name that
// both validate before either commits (neither sees the other in the
// cache) cannot both commit: the store transaction refuses the second
// index key, and its write, validated again, answers DRP's 409.
func TestUniqueNameIsEnforcedByTheStore(t *testing.T) {
	s, g, _ := newGatedService(t)
	ctx := t.Context()
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := s.Create(ctx, "test", "machines", &models.Machine{Name: "dup"})
			errs <- err
		}()
	}
	waitEntered(t, g)
	waitEntered(t, g) // both validated against a cache without the other
	close(g.gate)
	var ok, conflict int
	for i := 0; i < 2; i++ {
		err := <-errs
		var me *models.Error
		switch {
		case err == nil:
			ok++
		case errors.As(err, &me) && me.Code == 409 && strings.Contains(me.Error(), `Name "dup" already used by machines/`):
			conflict++
		default:
			t.Fatalf("unexpected outcome: %v", err)
		}
	}
	if ok != 1 || conflict != 1 {
		t.Fatalf("%d created, %d conflicts; want 1 and 1", ok, conflict)
	}
	if n := s.Count("machines"); n != 1 {
		t.Fatalf("%d machines stored", n)
	}
}

// TestConcurrentUpdatesFollowCommitOrder: concurrent updates of one object
// all apply (each validated again after a conflict), and the events chain:
// each event's Original is the previous event's Object.
func TestConcurrentUpdatesFollowCommitOrder(t *testing.T) {
	s := newTestService(t, Limits{})
	ctx := t.Context()
	sub := s.bus.Subscribe("test", 1000, nil)
	defer sub.Close()
	if _, err := s.Create(ctx, "test", "profiles", &models.Profile{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.SetParam(ctx, "test", "profiles", "shared", fmt.Sprintf("w%02d", i), i); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	params, err := s.GetParams(ctx, "profiles", "shared", ParamOptions{})
	if err != nil || len(params) != writers {
		t.Fatalf("params after %d concurrent writes: %v %v", writers, params, err)
	}
	var prev json.RawMessage
	for i := 0; i < writers+1; i++ {
		var ev models.Event
		select {
		case ev = <-sub.C():
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d missing", i)
		}
		orig, _ := ev.Original.(json.RawMessage)
		if i > 0 && string(orig) != string(prev) {
			t.Fatalf("event %d: Original is not the previous event's Object", i)
		}
		prev, _ = ev.Object.(json.RawMessage)
	}
}

// TestLegacyObjectsReserveTheirNames: objects stored before unique values
// were reserved in the store get their index keys when the kind loads, so
// the store refuses a second object with the same Name from then on.
func TestLegacyObjectsReserveTheirNames(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "test.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	legacy := `{"Name":"old-one","Uuid":"3e9c3c1e-8ad8-4bb8-9f5a-3a7b6a0b2a11"}`
	if err := st.Update(ctx, func(tx store.Tx) error {
		return tx.Put("machines", "3e9c3c1e-8ad8-4bb8-9f5a-3a7b6a0b2a11", []byte(legacy))
	}); err != nil {
		t.Fatal(err)
	}
	s, _ := quietService(t, dir, st, Limits{})
	registerKinds(t, s, MachinesKind())
	var owner string
	_ = st.View(ctx, func(tx store.Tx) error {
		v, _ := tx.Get(indexBucket, indexKey("machines", "Name", "old-one"))
		owner = string(v)
		return nil
	})
	if owner != "3e9c3c1e-8ad8-4bb8-9f5a-3a7b6a0b2a11" {
		t.Fatalf("index key of the legacy Name holds %q", owner)
	}
	if _, err := s.Get(ctx, "machines", "Name:old-one"); err != nil {
		t.Fatal(err)
	}
}

// TestCacheReloadsAfterFallingBehind: when the applier falls further
// behind than the store keeps its change log, it reloads every kind from a
// snapshot instead of stopping, and writes and reads go on.
func TestCacheReloadsAfterFallingBehind(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "test.db"), store.BoltOptions{Retain: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	s, _ := quietService(t, dir, st, Limits{})
	registerKinds(t, s, ProfilesKind())
	// Hold the applier while 60 profiles are written straight to the store
	// (more than the log keeps plus what the watch channel buffers).
	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.inApplier(ctx, func() { close(held); <-release })
	}()
	<-held
	var last int64
	for i := 0; i < 60; i++ {
		buf, _ := json.Marshal(&models.Profile{Name: fmt.Sprintf("direct%d", i)})
		if last, err = st.Txn(ctx, nil, []store.Op{{Bucket: "profiles", Key: fmt.Sprintf("direct%d", i), Value: buf}}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := s.applied.wait(ctx, last); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("profiles"); n != 60 {
		t.Fatalf("%d profiles after the reload, want 60", n)
	}
	s.mu.RLock()
	reloadedAt := s.loadedAt["profiles"]
	s.mu.RUnlock()
	if reloadedAt == 0 {
		t.Fatal("the cache never fell behind: the test did not exercise the reload")
	}
	if _, err := s.Create(ctx, "test", "profiles", &models.Profile{Name: "after"}); err != nil {
		t.Fatalf("write after the reload: %v", err)
	}
	if _, err := s.Get(ctx, "profiles", "after"); err != nil {
		t.Fatal(err)
	}
}
