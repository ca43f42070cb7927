package main

import "github.com/spf13/cobra"

func (a *app) newSystemCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "system", Short: "System-wide plugin actions"})
	cmd.AddCommand(a.actionsCmd("system", false), a.actionCmd("system", false), a.runActionCmd("system", false))
	return cmd
}
