package store_test

import (
	"path/filepath"
	"testing"

	"github.com/provisionhq/provision/server/store"
	"github.com/provisionhq/provision/server/store/storetest"
)

// TestBoltConformance runs the store conformance suite on the bbolt backend.
func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, dir string) store.Store {
		s, err := store.OpenBolt(filepath.Join(dir, "provision.db"), store.BoltOptions{})
		if err != nil {
			t.Fatalf("OpenBolt: %v", err)
		}
		return s
	})
}
