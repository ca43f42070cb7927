// Command packet-ipmi is the packet-ipmi plugin provider: IPMI-like power
// control and lifecycle of Equinix Metal (formerly Packet.net) devices as
// provision machines, with Digital Rebar's provider, action and param
// names. The logic lives in internal/packet, the Metal API client in
// internal/metal; this is the pluginsdk wiring.
package main

import (
	"context"
	"embed"
	"os"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/packet"
	"github.com/provisionhq/provision/pluginsdk"
)

// version is the provider version; set with -ldflags "-X main.version=...".
var version = "v4.8.0"

// contentFS is the content pack in DRP's directory format (all: keeps the
// ._<Field>.meta files).
//
//go:embed all:content
var contentFS embed.FS

// publish sends the plugin's own events through the host connection the
// SDK keeps in ctx.
func publish(ctx context.Context, typ, action, key string, obj any) error {
	return pluginsdk.Publish(ctx, &models.Event{Type: typ, Action: action, Key: key, Object: obj})
}

// newApp builds the provider's command line around a plugin with opts.
func newApp(opts packet.Options) *pluginsdk.App {
	opts.Version = version
	if opts.Publish == nil {
		opts.Publish = publish
	}
	def := packet.Definition(version)
	return pluginsdk.InitApp(packet.ProviderName, packet.Short, version, &def, packet.New(opts)).WithContent(contentFS)
}

func main() {
	newApp(packet.Options{FileServer: os.Getenv("RS_FILESERVER")}).Main()
}
