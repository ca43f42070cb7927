// Package pluginsdk writes plugin providers for provisiond. A provider built
// with it speaks exactly the wire protocol of Digital Rebar Provision v4
// plugins, so the same binary also runs under DRP.
//
// A provider is a main package:
//
//	//go:embed all:content
//	var contentFS embed.FS
//
//	func main() {
//		pluginsdk.InitApp("incrementer", "Increments a parameter", version, &def, &Plugin{}).
//			WithContent(contentFS).
//			Main()
//	}
//
// The App offers the commands the host runs: define (prints the
// definition JSON, with Content built from the embedded content
// directory), unpack <dir>, and listen <toPlugin> <fromPlugin> (serves the
// protocol on the toPlugin unix socket, talks back to the host on
// fromPlugin), plus version and shell completion.
//
// The implementation passed to InitApp must implement Configurer. Every
// other interface in interfaces.go is optional and detected by type
// assertion. Each method gets a context.Context and an *slog.Logger:
//
//   - the logger ships its records to the host's log (POST
//     /api-server-plugin/v4/log) asynchronously, through a bounded queue, so
//     logging never blocks the plugin; in Publish it marks lines
//     IgnorePublish so the host does not turn them back into events;
//   - the context carries the host connection, which the package functions
//     Publish and Leaving need. It is cancelled when the call returns; use
//     context.WithoutCancel(ctx) to keep the connection in work that
//     outlives the call.
//
// Differences from DRP's library that a plugin can observe (the wire
// format is unchanged): a Config error with Code 0 is answered 500 instead
// of crashing the handler; the answer to /stop is delivered before the
// process exits; an EventSelector's websocket reconnects by itself; define
// with a Validator and no RS_TOKEN fails with a message instead of a nil
// pointer panic; parameter values are never logged.
//
// Package plugintest drives a provider binary exactly as the host does, so
// provider tests need no server.
package pluginsdk
