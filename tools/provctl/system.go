package main

import "github.com/spf13/cobra"

func (a *app) newSystemCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "system", Short: "System-wide plugin actions"})
	s := actionScope{prefix: "system"}
	cmd.AddCommand(a.actionsCmd(s), a.actionCmd(s), a.runActionCmd(s))
	return cmd
}
