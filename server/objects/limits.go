package objects

import (
	"fmt"

	"github.com/provisionhq/provision/models"
)

// Limits bound what one write may store, so that no request (however
// small: a JSON Patch of copy operations doubles an object per op) can
// make the server hold or persist a huge object. Zero fields take the
// DefaultLimits values.
type Limits struct {
	// MaxObjectBytes bounds the stored JSON size of an object after any
	// write (create, replace, patch, param change), and the size of the
	// document while a patch is being applied.
	MaxObjectBytes int64
	// MaxNameBytes bounds an object's key, its Name, every unique index
	// value and every param name.
	MaxNameBytes int
	// MaxPatchOps bounds the operations of one JSON Patch.
	MaxPatchOps int
}

// Default write limits (see Limits); provisiond's --max-object-bytes,
// --max-name-bytes and --max-patch-ops default to the same values.
const (
	DefaultMaxObjectBytes = 1 << 20
	DefaultMaxNameBytes   = 1024
	DefaultMaxPatchOps    = 1000
)

// MaxStoreKeyBytes is the longest key the store (bbolt) accepts; Limits
// never allow a longer MaxNameBytes.
const MaxStoreKeyBytes = 32768

// patchWorkFactor bounds the bytes a patch may insert or remove over all
// its operations, as a multiple of MaxObjectBytes: a patch that copies and
// removes a large value again and again stays under the size limit but
// would still burn CPU for nothing.
const patchWorkFactor = 16

// Flags naming each limit in error messages, so the client (or the
// operator reading it) knows which setting to change.
const (
	objectBytesFlag = "--max-object-bytes, RS_MAX_OBJECT_BYTES"
	nameBytesFlag   = "--max-name-bytes, RS_MAX_NAME_BYTES"
	patchOpsFlag    = "--max-patch-ops, RS_MAX_PATCH_OPS"
)

// DefaultLimits returns the limits used when none are configured.
func DefaultLimits() Limits {
	return Limits{MaxObjectBytes: DefaultMaxObjectBytes, MaxNameBytes: DefaultMaxNameBytes, MaxPatchOps: DefaultMaxPatchOps}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxObjectBytes <= 0 {
		l.MaxObjectBytes = d.MaxObjectBytes
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = d.MaxNameBytes
	}
	// A longer key would reach the store and fail there (a 507).
	l.MaxNameBytes = min(l.MaxNameBytes, MaxStoreKeyBytes)
	if l.MaxPatchOps <= 0 {
		l.MaxPatchOps = d.MaxPatchOps
	}
	return l
}

// Limits returns the write limits the service enforces.
func (s *Service) Limits() Limits { return s.limits }

// shortKey cuts an over-long key for use in an error (an error must not
// echo a 100 KB name back).
func shortKey(key string) string {
	const keep = 64
	if len(key) <= keep {
		return key
	}
	return key[:keep] + "..."
}

// limitError is the 422 of a write that exceeds a limit; nothing was stored.
func limitError(prefix, key, format string, args ...any) *models.Error {
	return &models.Error{Model: prefix, Key: shortKey(key), Type: "ValidationError", Code: 422,
		Messages: []string{fmt.Sprintf(format, args...) + "; nothing was stored"}}
}

// checkNames refuses a key, Name or unique index value longer than
// MaxNameBytes (before anything is written: bbolt cannot store a key above
// 32 KiB at all, and an index value that long is of no use to anyone).
func (s *Service) checkNames(k *Kind, key string, obj models.Model, fields map[string]any) *models.Error {
	max := s.limits.MaxNameBytes
	if len(key) > max {
		return limitError(k.Prefix, key, "%s (the key) is %d bytes long, more than the limit of %d bytes (%s)",
			k.KeyField, len(key), max, nameBytesFlag)
	}
	if n := nameOf(obj); len(n) > max {
		return limitError(k.Prefix, key, "Name is %d bytes long, more than the limit of %d bytes (%s)", len(n), max, nameBytesFlag)
	}
	for f := range s.uniq[k.Prefix] {
		if v, ok := fieldString(fields[f]); ok && len(v) > max {
			return limitError(k.Prefix, key, "%s is %d bytes long, more than the limit of %d bytes (%s)", f, len(v), max, nameBytesFlag)
		}
	}
	return nil
}

// checkSize refuses a new stored form larger than MaxObjectBytes. An
// object already above the limit (stored before the limit was lowered)
// may still be changed as long as it does not grow, so it can be shrunk.
func (s *Service) checkSize(k *Kind, key string, old, e *entry) *models.Error {
	n := int64(len(e.raw))
	if n <= s.limits.MaxObjectBytes || (old != nil && n <= int64(len(old.raw))) {
		return nil
	}
	return limitError(k.Prefix, key, "the object would be %d bytes, more than the limit of %d bytes on a stored object (%s)",
		n, s.limits.MaxObjectBytes, objectBytesFlag)
}
