// Command testprovider is a minimal provider used by pluginsdk's tests to
// check the handshake with a real process.
package main

import (
	"context"
	"log/slog"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
)

// provider is the smallest plugin the SDK's binary tests run: it logs on
// Config and Stop and answers every action with its command name.
type provider struct{}

// Config implements pluginsdk.Configurer by logging "configured".
func (provider) Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error {
	l.Info("configured")
	return nil
}

// Action implements pluginsdk.Actor by echoing the command.
func (provider) Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	return a.Command, nil
}

// Stop implements pluginsdk.Stopper by logging "stopper called".
func (provider) Stop(ctx context.Context, l *slog.Logger) { l.Info("stopper called") }

func main() {
	def := &models.PluginProvider{Name: "testprovider", Version: "v0.0.1", PluginVersion: pluginsdk.PluginVersion,
		AvailableActions: []models.AvailableAction{{Command: "ping"}}}
	pluginsdk.InitApp("testprovider", "pluginsdk test provider", "v0.0.1", def, provider{}).Main()
}
