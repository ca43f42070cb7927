package main

import "github.com/spf13/cobra"

func (a *app) newMachinesCmd() *cobra.Command {
	return a.newObjectCmd(objectKind{
		prefix: "machines", singular: "machine",
		bareName: true, params: true, actions: true,
	}, "Access machines (servers managed by provision)")
}
