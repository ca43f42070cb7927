package pluginhost

import (
	"context"
	"time"

	"github.com/provisionhq/provision/models"
)

// The host needs a handful of things from the rest of provisiond. Each is a
// small interface so the host can be built and tested on its own and wired
// to the real server in one place.

// Tokens mints API tokens for the processes the host runs.
type Tokens interface {
	// MintToken returns a bearer token for principal carrying claims that
	// expires after ttl, and a revoke function that makes it stop working
	// at once (called when the process it was minted for stops).
	MintToken(ctx context.Context, principal string, claims []models.Claim, ttl time.Duration) (token string, revoke func(), err error)
}

// Plugins reads and updates the Plugin objects the host runs.
type Plugins interface {
	// ListPlugins returns every Plugin object.
	ListPlugins(ctx context.Context) ([]*models.Plugin, error)
	// GetPlugin returns the current Plugin object named name, or nil
	// when there is none.
	GetPlugin(ctx context.Context, name string) (*models.Plugin, error)
	// CreatePlugin creates p unless a plugin of that name exists (then it
	// returns nil and changes nothing); used for AutoStart providers.
	CreatePlugin(ctx context.Context, p *models.Plugin) error
	// SetPluginErrors replaces the PluginErrors of the named plugin without
	// touching anything else. A missing plugin is not an error.
	SetPluginErrors(ctx context.Context, name string, errs []string) error
}

// PluginMeta is implemented by a Plugins that can record facts of the
// host on a Plugin object (what the sandbox enforces, MetaSandbox).
type PluginMeta interface {
	// SetPluginMeta sets Meta[key] = value on the named plugin without
	// touching anything else. A missing plugin is not an error.
	SetPluginMeta(ctx context.Context, name, key, value string) error
}

// Objects looks up the objects actions run against.
type Objects interface {
	// GetObject returns the object prefix/id as the API shows it (id may be
	// the key or <Index>:<value>). A missing object or unknown prefix is a
	// *models.Error with Code 404.
	GetObject(ctx context.Context, prefix, id string) (models.Model, error)
}

// Params resolves and decrypts param values.
type Params interface {
	// ParamDef returns the Param definition named name, if there is one.
	ParamDef(ctx context.Context, name string) (*models.Param, bool, error)
	// OwnParams returns obj's own Params with secure values decrypted.
	OwnParams(ctx context.Context, obj models.Model) (map[string]any, error)
	// AggregateParams returns obj's params merged with its profiles' (in
	// order) and the global profile's, the object's own values winning,
	// with secure values decrypted. It does not apply schema defaults (the
	// host does).
	AggregateParams(ctx context.Context, obj models.Model) (map[string]any, error)
}

// Content loads and removes the read-only content layers of providers.
type Content interface {
	// AddPluginLayer adds or replaces the read-only layer named provider.
	// When an object of the layer has the same prefix/key as a writable
	// user object, it fails with a *models.Error of Code 409 naming the
	// clashes, unless replaceWritable is true (then the user objects are
	// replaced). It must not change anything when it fails.
	AddPluginLayer(ctx context.Context, provider string, c *models.Content, replaceWritable bool) error
	// RemovePluginLayer removes the layer; a missing layer is not an error.
	RemovePluginLayer(ctx context.Context, provider string) error
}

// Kinds registers the custom object types declared by StoreObjects.
type Kinds interface {
	// RegisterKind serves prefix at /api/v3/<prefix> as RawModel objects
	// (key field Id) with full CRUD, params and actions; indexes are the
	// filterable fields declared by the StoreObjects schema (shown at
	// /api/v3/indexes/<prefix>); validate is called on every create/update
	// and its error is a validation error. Registering an existing plugin
	// kind replaces its indexes and validator. A prefix taken by a
	// built-in type is an error.
	RegisterKind(ctx context.Context, prefix, provider string, indexes map[string]models.Index, validate func(models.RawModel) error) error
	// UnregisterKind stops serving a kind registered by provider; the
	// stored objects are kept for when the provider comes back.
	UnregisterKind(ctx context.Context, prefix, provider string) error
}

// Deps bundles what the host needs from the server. Every field is
// required except Kinds and Content, which may be nil in tests that do not
// exercise StoreObjects or content layers.
type Deps struct {
	// Tokens mints define and plugin tokens.
	Tokens Tokens
	// Plugins reads Plugin objects and records PluginErrors.
	Plugins Plugins
	// Objects finds action targets.
	Objects Objects
	// Params resolves and decrypts params.
	Params Params
	// Content loads provider content layers.
	Content Content
	// Kinds registers StoreObjects types.
	Kinds Kinds
	// Bus carries events both ways.
	Bus Bus
	// Records, when set, mirrors providers into the server's
	// plugin_providers collection.
	Records ProviderRecords
}

// ProviderRecords stores the API view of providers where the server's
// generic object routes serve it.
type ProviderRecords interface {
	// SaveProvider creates or replaces the record of one provider.
	SaveProvider(ctx context.Context, info *models.PluginProviderInfo) error
	// DeleteProviderRecord removes it; a missing record is not an error.
	DeleteProviderRecord(ctx context.Context, name string) error
}

// Bus is the part of the event bus the host uses. Adapt
// *events.Bus with BusFrom.
type Bus interface {
	// Publish delivers e without blocking.
	Publish(e models.Event)
	// Subscribe returns a bounded queue of the events match accepts.
	Subscribe(name string, queueLen int, match func(*models.Event) bool) Subscription
}

// Subscription is one bounded event queue.
type Subscription interface {
	// C delivers events; closed by Close.
	C() <-chan models.Event
	// Dropped counts events lost because the queue was full.
	Dropped() uint64
	// Close unsubscribes.
	Close()
}
