package pluginsdk

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
)

// Configurer is the one interface every plugin must implement. Config is
// called with the Plugin object's Params on every /api-plugin/v4/config; c is
// an API client built from RS_ENDPOINT and RS_TOKEN. A returned error's Code
// is the HTTP status answered to the host (0 is answered as 500).
type Configurer interface {
	// Config validates params and makes them the plugin's settings.
	Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error
}

// Actor runs actions (POST /api-plugin/v4/action). The result is returned to
// the REST caller as JSON.
type Actor interface {
	// Action runs a.Command with a.Params on a.Model (nil for the system).
	Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error)
}

// Publisher receives events: every event when the provider has HasPublish,
// or the events matching SelectEvents when it implements EventSelector.
type Publisher interface {
	// Publish handles one event; an error is logged by the host.
	Publish(ctx context.Context, l *slog.Logger, e *models.Event) *models.Error
}

// EventSelector makes the SDK open its own websocket after Config and
// register the returned filters (§5.8 syntax). It is called after every
// successful Config, so the list may depend on the plugin's params.
type EventSelector interface {
	// SelectEvents returns the event filters the plugin wants delivered.
	SelectEvents(ctx context.Context, l *slog.Logger) []string
}

// Stopper is called before the plugin exits on /api-plugin/v4/stop. The
// SDK closes an EventSelector's event stream first: the stream starts no
// Publish during or after Stop, and a Publish still running has its
// context cancelled and is waited for, up to 10 s.
type Stopper interface {
	// Stop releases what the plugin holds (workers, connections) before exit.
	Stop(ctx context.Context, l *slog.Logger)
}

// Validator is called by define (unless RS_TOKEN=catalog); its result is
// printed instead of the static definition.
type Validator interface {
	// Validate returns what define prints, e.g. the definition filtered by
	// what the license or the environment allows.
	Validate(ctx context.Context, l *slog.Logger, c *client.Client) (any, *models.Error)
}

// Unpacker writes the provider's static files on `unpack <dir>`.
type Unpacker interface {
	// Unpack writes the provider's files below dir.
	Unpack(ctx context.Context, l *slog.Logger, dir string) error
}

// APIProvider serves /api/v3/plugin-apis/<plugin>/* requests proxied by the
// host. The handler sees the original request path.
type APIProvider interface {
	// PluginAPI returns the handler of the plugin's own REST endpoints.
	PluginAPI() http.Handler
}
