package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// checkConsistent runs bbolt's page-level consistency check.
func checkConsistent(s Store) error {
	bs := s.(*boltStore)
	return bs.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
