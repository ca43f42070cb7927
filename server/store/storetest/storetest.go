// Package storetest is the conformance suite of store.Store: every backend
// (bbolt today, etcd later) runs Run from its own tests, so that the object
// layer can rely on the same revision, transaction, watch and durability
// semantics from any of them.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/store"
)

// Opener opens the backend's store in dir; opening the same dir again
// after Close must see the same data. The suite closes every store it
// opens.
type Opener func(t testing.TB, dir string) store.Store

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Revisions", testRevisions},
		{"TxnCompare", testTxnCompare},
		{"ConcurrentTxns", testConcurrentTxns},
		{"WatchFromRevision", testWatchFromRevision},
		{"WatchLive", testWatchLive},
		{"SnapshotIsolation", testSnapshotIsolation},
		{"DurableAcrossReopen", testDurableAcrossReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// deadline bounds every blocking step of the suite.
func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, open Opener) store.Store {
	s := open(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s store.Store, bucket, key, value string) int64 {
	t.Helper()
	rev, err := s.Txn(deadline(t), nil, []store.Op{{Bucket: bucket, Key: key, Value: []byte(value)}})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return rev
}

func modRev(t *testing.T, s store.Store, bucket, key string) (rev int64, value string, ok bool) {
	t.Helper()
	err := s.View(deadline(t), func(tx store.Tx) error {
		v, found := tx.Get(bucket, key)
		rev, value, ok = tx.ModRevision(bucket, key), string(v), found
		return nil
	})
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	return rev, value, ok
}

// testRevisions: every writing transaction advances the revision by one,
// all its keys carry it, reads and empty transactions do not advance it.
func testRevisions(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := deadline(t)
	r0 := s.Revision()
	r1 := put(t, s, "b", "k1", "v1")
	if r1 != r0+1 || s.Revision() != r1 {
		t.Fatalf("first write at %d (Revision %d), want %d", r1, s.Revision(), r0+1)
	}
	var inTx int64
	err := s.Update(ctx, func(tx store.Tx) error {
		inTx = tx.Revision()
		if err := tx.Put("b", "k2", []byte("v2")); err != nil {
			return err
		}
		return tx.Put("c", "k3", []byte("v3"))
	})
	if err != nil {
		t.Fatal(err)
	}
	r2 := s.Revision()
	if inTx != r1 || r2 != r1+1 {
		t.Fatalf("Update saw %d and committed at %d, want %d and %d", inTx, r2, r1, r1+1)
	}
	for _, k := range [][2]string{{"b", "k2"}, {"c", "k3"}} {
		if rev, _, _ := modRev(t, s, k[0], k[1]); rev != r2 {
			t.Errorf("%s/%s ModRevision %d, want %d", k[0], k[1], rev, r2)
		}
	}
	if rev, _, _ := modRev(t, s, "b", "k1"); rev != r1 {
		t.Errorf("untouched k1 ModRevision %d, want %d", rev, r1)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete("b", "missing") }); err != nil {
		t.Fatal(err)
	}
	if rev, err := s.Txn(ctx, nil, nil); err != nil || rev != r2 || s.Revision() != r2 {
		t.Fatalf("empty txn/no-op delete: rev %d err %v, Revision %d; want all %d", rev, err, s.Revision(), r2)
	}
	rd, err := s.Txn(ctx, nil, []store.Op{{Bucket: "b", Key: "k1", Delete: true}})
	if err != nil || rd != r2+1 {
		t.Fatalf("delete at %d (%v), want %d", rd, err, r2+1)
	}
	if rev, _, ok := modRev(t, s, "b", "k1"); ok || rev != 0 {
		t.Fatalf("deleted key: ModRevision %d exists %v", rev, ok)
	}
}

// testTxnCompare: a Txn writes only when all its comparisons hold, and a
// failed one is a *store.ConflictError wrapping ErrConflict.
func testTxnCompare(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := deadline(t)
	create := []store.Compare{{Bucket: "b", Key: "k", ModRevision: 0}}
	r1, err := s.Txn(ctx, create, []store.Op{{Bucket: "b", Key: "k", Value: []byte("v1")}})
	if err != nil {
		t.Fatalf("create-if-absent: %v", err)
	}
	before := s.Revision()
	_, err = s.Txn(ctx, create, []store.Op{{Bucket: "b", Key: "k", Value: []byte("v2")}, {Bucket: "b", Key: "other", Value: []byte("x")}})
	var ce *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Actual != r1 || ce.Key != "k" {
		t.Fatalf("second create: %v, want a conflict on k at %d", err, r1)
	}
	if s.Revision() != before {
		t.Fatalf("a failed txn advanced the revision to %d", s.Revision())
	}
	if _, v, _ := modRev(t, s, "b", "k"); v != "v1" {
		t.Fatalf("failed txn wrote k = %q", v)
	}
	if _, _, ok := modRev(t, s, "b", "other"); ok {
		t.Fatal("failed txn wrote other")
	}
	r2, err := s.Txn(ctx, []store.Compare{{Bucket: "b", Key: "k", ModRevision: r1}}, []store.Op{{Bucket: "b", Key: "k", Value: []byte("v2")}})
	if err != nil {
		t.Fatalf("update at the read revision: %v", err)
	}
	if _, err := s.Txn(ctx, []store.Compare{{Bucket: "b", Key: "k", ModRevision: r1}}, []store.Op{{Bucket: "b", Key: "k", Delete: true}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale delete: %v, want conflict", err)
	}
	// A comparison on another key guards the write too (a unique index).
	guard := []store.Compare{{Bucket: "b", Key: "k", ModRevision: r2}, {Bucket: "idx", Key: "name=a", ModRevision: 0}}
	if _, err := s.Txn(ctx, guard, []store.Op{{Bucket: "idx", Key: "name=a", Value: []byte("k")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctx, guard, []store.Op{{Bucket: "idx", Key: "name=a", Value: []byte("k2")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken index key: %v, want conflict", err)
	}
}

// testConcurrentTxns: 32 writers incrementing one counter with
// compare-and-swap retries lose no increment, and every successful write
// gets its own revision.
func testConcurrentTxns(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := deadline(t)
	const writers, each = 32, 5
	var mu sync.Mutex
	revs := map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					var n int
					var mod int64
					err := s.View(ctx, func(tx store.Tx) error {
						if v, ok := tx.Get("c", "n"); ok {
							fmt.Sscan(string(v), &n)
						}
						mod = tx.ModRevision("c", "n")
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
					rev, err := s.Txn(ctx, []store.Compare{{Bucket: "c", Key: "n", ModRevision: mod}},
						[]store.Op{{Bucket: "c", Key: "n", Value: []byte(fmt.Sprint(n + 1))}})
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if revs[rev] {
						errs <- fmt.Errorf("revision %d returned twice", rev)
					}
					revs[rev] = true
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, v, _ := modRev(t, s, "c", "n"); v != fmt.Sprint(writers*each) {
		t.Fatalf("counter %s, want %d", v, writers*each)
	}
}

// collect reads n responses from ch.
func collect(t *testing.T, ch <-chan store.WatchResponse, n int) []store.WatchResponse {
	t.Helper()
	var out []store.WatchResponse
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d of %d responses", len(out), n)
			}
			if r.Err != nil {
				t.Fatalf("watch: %v", r.Err)
			}
			out = append(out, r)
		case <-timeout:
			t.Fatalf("watch: %d of %d responses after 30s", len(out), n)
		}
	}
	return out
}

// testWatchFromRevision: a watch from a past revision replays every later
// revision in order, each with its events, then continues live.
func testWatchFromRevision(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := deadline(t)
	first := put(t, s, "b", "a", "1")
	put(t, s, "b", "b", "2")
	if _, err := s.Txn(ctx, nil, []store.Op{{Bucket: "b", Key: "a", Delete: true}, {Bucket: "b", Key: "c", Value: []byte("3")}}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, first+1)
	if err != nil {
		t.Fatal(err)
	}
	last := put(t, s, "b", "d", "4")
	got := collect(t, ch, 3)
	for i, r := range got {
		if r.Revision != first+1+int64(i) {
			t.Fatalf("response %d at revision %d, want %d", i, r.Revision, first+1+int64(i))
		}
	}
	if e := got[0].Events; len(e) != 1 || e[0].Key != "b" || string(e[0].Value) != "2" {
		t.Fatalf("revision %d events %+v", got[0].Revision, e)
	}
	if e := got[1].Events; len(e) != 2 || !e[0].Delete || e[0].Key != "a" || e[1].Key != "c" || string(e[1].Value) != "3" {
		t.Fatalf("revision %d events %+v", got[1].Revision, e)
	}
	if got[2].Revision != last || got[2].Events[0].Key != "d" {
		t.Fatalf("live revision %+v, want %d", got[2], last)
	}
	if _, err := s.Watch(ctx, 0); err == nil {
		t.Fatal("watch from 0 accepted")
	}
}

// testWatchLive: concurrent writers' revisions reach a watcher in order,
// with no gap and no duplicate.
func testWatchLive(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := deadline(t)
	start := s.Revision() + 1
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, start)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 8
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Txn(ctx, nil, []store.Op{{Bucket: "w", Key: fmt.Sprintf("%d-%d", w, i), Value: []byte("x")}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	got := collect(t, ch, writers*each)
	wg.Wait()
	seen := map[string]bool{}
	for i, r := range got {
		if r.Revision != start+int64(i) {
			t.Fatalf("response %d at revision %d, want %d", i, r.Revision, start+int64(i))
		}
		if len(r.Events) != 1 || seen[r.Events[0].Key] {
			t.Fatalf("revision %d events %+v (duplicate or missing)", r.Revision, r.Events)
		}
		seen[r.Events[0].Key] = true
	}
	cancel()
	for range ch { //nolint:revive // drain until the watch closes
	}
}

// testSnapshotIsolation: a View sees neither values nor revisions
// committed after it began.
func testSnapshotIsolation(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := deadline(t)
	r1 := put(t, s, "b", "k", "old")
	err := s.View(ctx, func(tx store.Tx) error {
		done := make(chan error, 1)
		go func() {
			_, err := s.Txn(ctx, nil, []store.Op{{Bucket: "b", Key: "k", Value: []byte("new")}, {Bucket: "b", Key: "n", Value: []byte("x")}})
			done <- err
		}()
		if err := <-done; err != nil {
			return err
		}
		v, _ := tx.Get("b", "k")
		_, hasN := tx.Get("b", "n")
		if string(v) != "old" || hasN || tx.Revision() != r1 || tx.ModRevision("b", "k") != r1 {
			return fmt.Errorf("snapshot sees k=%q n=%v revision %d modrev %d; want old, false, %d, %d",
				v, hasN, tx.Revision(), tx.ModRevision("b", "k"), r1, r1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, v, _ := modRev(t, s, "b", "k"); v != "new" {
		t.Fatalf("after the snapshot k = %q", v)
	}
}

// testDurableAcrossReopen: values, ModRevisions, the revision and the
// change log survive Close and a new open.
func testDurableAcrossReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	ctx := deadline(t)
	s := open(t, dir)
	r1 := put(t, s, "b", "k", "v")
	r2 := put(t, s, "b", "j", "w")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctx, nil, []store.Op{{Bucket: "b", Key: "x", Value: []byte("y")}}); err == nil {
		t.Fatal("Txn on a closed store succeeded")
	}
	s = open(t, dir)
	defer s.Close()
	if s.Revision() != r2 {
		t.Fatalf("reopened at revision %d, want %d", s.Revision(), r2)
	}
	if rev, v, _ := modRev(t, s, "b", "k"); rev != r1 || v != "v" {
		t.Fatalf("k after reopen: %q at %d, want v at %d", v, rev, r1)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, ch, 2)
	if got[0].Revision != r1 || got[1].Revision != r2 {
		t.Fatalf("log after reopen: %d, %d; want %d, %d", got[0].Revision, got[1].Revision, r1, r2)
	}
	if r3 := put(t, s, "b", "k", "v3"); r3 != r2+1 {
		t.Fatalf("first write after reopen at %d, want %d", r3, r2+1)
	}
}
