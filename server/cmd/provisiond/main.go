// Command provisiond is the provision server: an HTTPS REST API
// (/api/v3, DRP v4 compatible) over an embedded database, a plain-HTTP
// static file server, and (through modules) the plugin host.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/store"
	"github.com/spf13/cobra"
)

// modules lists the subsystems wired into provisiond.
func modules(cfg config.Config) []server.Module {
	return []server.Module{hostmodule.New(hostmodule.Options{ReloadOnSIGHUP: true})}
}

func main() {
	os.Exit(run())
}

func run() int {
	cfg := config.Defaults()
	cmd := &cobra.Command{
		Use:           "provisiond",
		Short:         "provision server (DRP v4 compatible API, plugin host)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			s, err := server.New(ctx, cfg, server.Options{Modules: modules(cfg)})
			if err != nil {
				return err
			}
			return s.Run(ctx)
		},
	}
	if err := config.Bind(cmd, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "provisiond:", err)
		return 2
	}
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "provisiond:", err)
		if errors.Is(err, store.ErrLocked) {
			return 3
		}
		return 1
	}
	return 0
}
