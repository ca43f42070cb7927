package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The write benchmarks run 32 concurrent writers (b.SetParallelism on
// GOMAXPROCS) of one ~300-byte key each, every write durable (fsync)
// before it returns. Floors measured in the same run:
//
//	BenchmarkStoreWrite32Update     one bbolt Update per write (today's objects path)
//	BenchmarkStoreWrite32BoltBatch  bbolt's own Batch (the goal)
//	BenchmarkStoreWrite32Txn        Store.Txn: group commit, revisions, change log
func benchDB(b *testing.B) *boltStore {
	b.Helper()
	s, err := OpenBolt(filepath.Join(b.TempDir(), "bench.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s.(*boltStore)
}

var benchValue = make([]byte, 300)

func parallel32(b *testing.B, write func(key string) error) {
	var n atomic.Int64
	b.SetParallelism(max(1, 32/max(1, testingProcs())))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := write(fmt.Sprintf("k%09d", n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkStoreWrite32Update(b *testing.B) {
	s := benchDB(b)
	parallel32(b, func(key string) error {
		return s.db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
			if err != nil {
				return err
			}
			return bk.Put([]byte(key), benchValue)
		})
	})
}

func BenchmarkStoreWrite32BoltBatch(b *testing.B) {
	s := benchDB(b)
	parallel32(b, func(key string) error {
		return s.db.Batch(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
			if err != nil {
				return err
			}
			return bk.Put([]byte(key), benchValue)
		})
	})
}

func BenchmarkStoreWrite32Txn(b *testing.B) {
	s := benchDB(b)
	ctx := context.Background()
	parallel32(b, func(key string) error {
		_, err := s.Txn(ctx, []Compare{{Bucket: "bench", Key: key}}, []Op{{Bucket: "bench", Key: key, Value: benchValue}})
		return err
	})
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
