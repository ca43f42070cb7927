// Package objects is provisiond's generic object layer: a registry of object
// kinds (machines, profiles, params, users, plugins, plugin_providers and
// kinds added at run time, such as a plugin provider's StoreObjects) and a
// Service that creates, reads, lists, filters, patches and deletes them in
// the store, enforces unique indexes and param schemas, seals secure params,
// publishes a models.Event for every change and runs change hooks.
//
// The REST layer (server/api) is a thin translation of HTTP onto Service;
// other subsystems (the plugin host) use Service directly with the same
// semantics.
package objects

import (
	"context"
	"fmt"
	"strings"

	"github.com/provisionhq/provision/models"
)

// Change actions used in events and hooks.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionSave   = "save"
	ActionDelete = "delete"
)

// Kind describes one object collection. Only Prefix and KeyField are
// required; everything else is optional.
type Kind struct {
	// Prefix is the collection name used in URLs and as the store bucket,
	// e.g. "machines".
	Prefix string
	// KeyField is the JSON field holding the key, e.g. "Uuid", "Name", "Id".
	KeyField string
	// New returns a pointer to a zero object (e.g. &models.Machine{}). When
	// nil, objects are *models.RawModel with Type set to Prefix.
	New func() models.Model
	// Indexes are the filterable and sortable fields. A Unique index can be
	// used in URLs as <Index>:<value> and is enforced on every write. The key
	// field is always indexed and unique.
	Indexes map[string]models.Index
	// NormalizeKey turns a key from a URL into its canonical form (e.g. a
	// lower-case UUID); it returns "" for a key that can never exist.
	NormalizeKey func(string) string
	// Prepare is called on every write before validation. old is nil on
	// create. It may fill generated fields (a create's key), and must carry
	// over fields the API hides (Sanitize) when the new object leaves them
	// empty.
	Prepare func(v View, old, obj models.Model) error
	// Validate rejects an object that may not be stored. A *models.Error keeps
	// its Code; any other error becomes 422 ValidationError.
	Validate func(v View, obj models.Model) error
	// ValidateDelete vetoes a delete (e.g. the global profile).
	ValidateDelete func(v View, obj models.Model) error
	// Sanitize removes fields the API never shows (it gets a private copy).
	Sanitize func(obj models.Model)
	// SlashKeys allows keys containing "/" (param names); the API then
	// takes everything after /<prefix>/ as the key and offers no sub-paths.
	SlashKeys bool
	// NoParams disables param handling for a kind whose objects implement
	// Paramer but whose params are not DRP params.
	NoParams bool
}

func (k *Kind) newObject() models.Model {
	if k.New != nil {
		return k.New()
	}
	r := models.RawModel{"Type": k.Prefix}
	return &r
}

func (k *Kind) check() error {
	if k.Prefix == "" || strings.ContainsAny(k.Prefix, "/:?#") {
		return fmt.Errorf("object kind: invalid prefix %q", k.Prefix)
	}
	if k.KeyField == "" {
		return fmt.Errorf("object kind %s: KeyField is required", k.Prefix)
	}
	return nil
}

func (k *Kind) uniqueFields() []string {
	var out []string
	for name, idx := range k.Indexes {
		if idx.Unique && name != k.KeyField {
			out = append(out, name)
		}
	}
	return out
}

// Change describes one committed (After) or proposed (Before) change.
type Change struct {
	// Prefix is the kind of the object.
	Prefix string
	// Action is create, update, save or delete.
	Action string
	// Key is the object key.
	Key string
	// Principal is who made the change.
	Principal string
	// Old is the object before the change (nil on create). Hooks get their
	// own copy.
	Old models.Model
	// New is the object after the change (nil on delete). A Before hook may
	// modify it.
	New models.Model
}

// BeforeFunc may inspect or modify c.New, or veto the change by returning
// an error (a *models.Error keeps its Code; others become 422). It runs
// with the writer turn and the service read lock held: read other objects
// through v, never through the Service: what it reads through v is part
// of the write's commit conditions (a List makes the write commit alone,
// see Service.validateWrite). A write whose store commit conflicts with a
// concurrent one, or that listed a kind, is validated again, so a
// BeforeFunc may run more than once for one change.
type BeforeFunc func(ctx context.Context, v View, c *Change) error

// AfterFunc runs after a change is durable and its event is published, in
// the goroutine that made the change and without locks held, so it may call
// the Service. Concurrent changes may run their hooks concurrently: read the
// current state rather than trusting the order of calls.
type AfterFunc func(ctx context.Context, c Change)

// View is a consistent read-only view of all objects, handed to hooks that
// run inside a write. In a write, Get and Param are cheap to keep
// consistent (the commit compares what they returned), while List, or a
// Get by <Index>:<value> that finds nothing, makes the write validate and
// commit with no other write in flight: prefer Get when it will do.
type View interface {
	// Get returns a copy of the object with key or <Index>:<value> id.
	Get(prefix, id string) (models.Model, bool)
	// List returns copies of every object of prefix in key order.
	List(prefix string) []models.Model
	// Param returns the param definition called name.
	Param(name string) (*models.Param, bool)
}
