package objects

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/store"
	bolt "go.etcd.io/bbolt"
)

// Benchmarks of issue #10. Each comes with a floor measured in the same
// run, and README reports the ratio:
//
//	BenchmarkObjectsWrite32 / BenchmarkObjectsWrite32BoltBatchFloor
//	    32 concurrent creates against bbolt's own Batch of the same bytes
//	BenchmarkObjectsReadWhileWriting / BenchmarkObjectsReadIdle
//	    a token-check-like Peek while 8 writers keep fsyncing, against idle
//	BenchmarkObjectsListNameEq10k, ...Limit10_10k / BenchmarkObjectsGetByName10k
//	    Name=Eq(x) and limit=10 lists of 10,000 machines against an index lookup
//	BenchmarkObjectsListSlim10k / BenchmarkObjectsList10k
//	    slim=Params,Meta of 10,000 machines against the plain list

// benchService returns a Service with n machines (bulk-loaded into the
// store before the kind is registered, so setup is fast) and the Name of
// the middle one.
func benchService(b *testing.B, n int) (*Service, string) {
	b.Helper()
	dir := b.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "bench.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	err = st.Update(context.Background(), func(tx store.Tx) error {
		for i := 0; i < n; i++ {
			m := &models.Machine{Name: fmt.Sprintf("m%06d", i), Uuid: uuid.New(),
				Params: map[string]any{"rack": i % 40, "role": "compute"}}
			m.Meta = map[string]string{"color": "blue"}
			buf, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := tx.Put("machines", m.Uuid.String(), buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := quietService(b, dir, st, Limits{})
	registerKinds(b, s, standardKinds(s)...)
	return s, fmt.Sprintf("m%06d", n/2)
}

func parallel32(b *testing.B, fn func(i int64) error) {
	var n atomic.Int64
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := fn(n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkObjectsWrite32(b *testing.B) {
	s, _ := benchService(b, 0)
	ctx := context.Background()
	parallel32(b, func(i int64) error {
		_, err := s.Create(ctx, "bench", "machines", &models.Machine{Name: fmt.Sprintf("w%09d", i)})
		return err
	})
}

func BenchmarkObjectsWrite32BoltBatchFloor(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	buf, _ := json.Marshal(&models.Machine{Name: "w000000000", Uuid: uuid.New()})
	parallel32(b, func(i int64) error {
		return db.Batch(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("machines"))
			if err != nil {
				return err
			}
			return bk.Put([]byte(fmt.Sprintf("k%09d", i)), buf)
		})
	})
}

// peekLoop measures Peek of one user-like object, optionally while 8
// writers keep writing (each write an fsync).
func peekLoop(b *testing.B, writing bool) {
	s, name := benchService(b, 100)
	ctx, cancel := context.WithCancel(context.Background())
	m, err := s.Get(ctx, "machines", "Name:"+name)
	if err != nil {
		b.Fatal(err)
	}
	key := m.Key()
	var wg sync.WaitGroup
	if writing {
		var n atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					_, _ = s.Create(ctx, "bench", "machines", &models.Machine{Name: fmt.Sprintf("bg%09d", n.Add(1))})
				}
			}()
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !s.Peek("machines", key, func(models.Model) {}) {
			b.Fatal("not found")
		}
	}
	b.StopTimer()
	cancel()
	wg.Wait()
}

func BenchmarkObjectsReadIdle(b *testing.B)         { peekLoop(b, false) }
func BenchmarkObjectsReadWhileWriting(b *testing.B) { peekLoop(b, true) }

func BenchmarkObjectsGetByName10k(b *testing.B) {
	s, name := benchService(b, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.GetRendered(ctx, "GET", "machines", "Name:"+name, RenderOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func listBench(b *testing.B, q ListQuery, ro RenderOptions, want int) {
	s, name := benchService(b, 10000)
	for i := range q.Filters {
		if q.Filters[i].Args[0] == "$name" {
			q.Filters[i].Args[0] = name
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.List(ctx, "machines", q, ro)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Items) != want {
			b.Fatalf("%d items, want %d", len(res.Items), want)
		}
	}
}

func BenchmarkObjectsListNameEq10k(b *testing.B) {
	q := All()
	q.Filters = []Filter{{Field: "Name", Op: "Eq", Args: []string{"$name"}}}
	listBench(b, q, RenderOptions{}, 1)
}

func BenchmarkObjectsListLimit10_10k(b *testing.B) {
	q := All()
	q.Limit = 10
	listBench(b, q, RenderOptions{}, 10)
}

func BenchmarkObjectsList10k(b *testing.B) { listBench(b, All(), RenderOptions{}, 10000) }

func BenchmarkObjectsListSlim10k(b *testing.B) {
	listBench(b, All(), RenderOptions{Slim: []string{"Params", "Meta"}}, 10000)
}

// BenchmarkObjectsGetParam resolves one param of a machine over its own
// params, the global profile and the definition's default, decrypted, as a
// plugin action does for each param it needs; floor BenchmarkObjectsReadIdle.
func BenchmarkObjectsGetParam(b *testing.B) {
	s, name := benchService(b, 100)
	ctx := context.Background()
	if _, err := s.Create(ctx, "bench", "profiles", &models.Profile{Name: GlobalProfile,
		Params: map[string]any{"ntp": []any{"a", "b"}, "dns": map[string]any{"x": 1.0}}}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, err := s.GetParam(ctx, "machines", "Name:"+name, "ntp", ParamOptions{Aggregate: true, Decode: true, Defaults: true}); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
