// Command provisiond is the provision server: an HTTPS REST API
// (/api/v3, DRP v4 compatible) over an embedded database, a plain-HTTP
// static file server, and (through modules) the plugin host.
//
// Exit status: 0 after a clean stop (SIGTERM or SIGINT), 1 for a usage or
// configuration error (nothing was started or written), 2 when it could
// not start or failed while serving, 3 when another provisiond uses the
// base directory.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
	"github.com/provisionhq/provision/server/store"
	"github.com/spf13/cobra"
)

// Exit statuses of provisiond.
const (
	// ExitOK: stopped cleanly on SIGTERM or SIGINT.
	ExitOK = 0
	// ExitUsage: unknown flag or argument, bad flag or RS_* value,
	// invalid setting, unusable --tls-cert/--tls-key.
	ExitUsage = 1
	// ExitFailed: could not start (port in use, base directory or database
	// unusable) or failed while serving.
	ExitFailed = 2
	// ExitLocked: another provisiond is using the base directory.
	ExitLocked = 3
)

const exitHelp = `Exit status:
  0  stopped cleanly (SIGTERM or SIGINT)
  1  usage or configuration error: unknown flag or argument, bad flag or
     RS_* value, invalid setting, unusable --tls-cert/--tls-key
     (nothing was started or written)
  2  could not start (port in use, base directory or database unusable)
     or failed while serving
  3  another provisiond is using the base directory`

// modules lists the subsystems wired into provisiond.
func modules(cfg config.Config) []server.Module {
	return []server.Module{hostmodule.New(hostmodule.Options{ReloadOnSIGHUP: true})}
}

func main() {
	// First: in a plugin sandbox helper this confines the process and
	// executes the plugin, never returning.
	sandbox.Main()
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run executes provisiond with args and returns its exit status.
func run(args []string, stderr io.Writer) int {
	cfg := config.Defaults()
	cmd := &cobra.Command{
		Use:   "provisiond",
		Short: "provision server (DRP v4 compatible API, plugin host)",
		Long: "provisiond serves the DRP v4 compatible REST API over HTTPS, static files over\n" +
			"plain HTTP, and hosts plugin providers. Every flag has an RS_* environment\n" +
			"variable fallback; an explicit flag wins.\n\n" + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return &config.Error{Err: err}
			}
			return nil
		},
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
	cmd.SetArgs(args)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &config.Error{Err: err} })
	if err := config.Bind(cmd, &cfg); err != nil {
		fmt.Fprintln(stderr, "provisiond:", err)
		return exitStatus(err)
	}
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(stderr, "provisiond:", err)
		return exitStatus(err)
	}
	return ExitOK
}

// exitStatus maps an error to the documented exit status.
func exitStatus(err error) int {
	var ce *config.Error
	switch {
	case errors.Is(err, store.ErrLocked):
		return ExitLocked
	case errors.As(err, &ce):
		return ExitUsage
	default:
		return ExitFailed
	}
}
