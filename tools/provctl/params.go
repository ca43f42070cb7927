package main

import "github.com/spf13/cobra"

func (a *app) newParamsCmd() *cobra.Command {
	return a.newObjectCmd(objectKind{
		prefix: "params", singular: "param",
		bareName: true,
	}, "Access param definitions (name, JSON Schema, secure flag)")
}
