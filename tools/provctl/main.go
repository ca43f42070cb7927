// Command provctl is the command line client of provisiond (and of Digital
// Rebar Provision): a drpcli-compatible subset for machines, profiles,
// params, users, plugins, plugin providers, actions and events.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
