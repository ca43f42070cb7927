package store

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMigrateLegacyDatabase: a database written before revisions existed
// opens at revision 1 with every key at ModRevision 1, and the next write
// is revision 2.
func TestMigrateLegacyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "legacy.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("machines"))
		if err != nil {
			return err
		}
		return b.Put([]byte("m1"), []byte(`{"Name":"m1"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if s.Revision() != 1 {
		t.Fatalf("legacy database at revision %d, want 1", s.Revision())
	}
	_ = s.View(ctx, func(tx Tx) error {
		if r := tx.ModRevision("machines", "m1"); r != 1 {
			t.Errorf("legacy key at ModRevision %d, want 1", r)
		}
		return nil
	})
	rev, err := s.Txn(ctx, []Compare{{Bucket: "machines", Key: "m1", ModRevision: 1}},
		[]Op{{Bucket: "machines", Key: "m1", Value: []byte(`{"Name":"m1","Description":"x"}`)}})
	if err != nil || rev != 2 {
		t.Fatalf("first write after migration: %d %v", rev, err)
	}
}
