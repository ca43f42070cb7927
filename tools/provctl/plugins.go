package main

import "github.com/spf13/cobra"

func (a *app) newPluginsCmd() *cobra.Command {
	return a.newObjectCmd(objectKind{
		prefix: "plugins", singular: "plugin",
		params: true, actions: true,
	}, "Access plugins (configured, running instances of plugin providers)")
}
