package main

import "github.com/spf13/cobra"

func (a *app) newProfilesCmd() *cobra.Command {
	return a.newObjectCmd(objectKind{
		prefix: "profiles", singular: "profile",
		bareName: true, params: true, actions: true,
	}, "Access profiles (named param sets; \"global\" applies to everything)")
}
