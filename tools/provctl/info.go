package main

import (
	"github.com/provisionhq/provision/client"
	"github.com/spf13/cobra"
)

func (a *app) newInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show information about the server",
		Args:  exactArgs("info", 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.request(func(c *client.Client) (any, error) {
				return c.Info(cmd.Context())
			})
		},
	}
}
