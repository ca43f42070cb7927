package main

import "github.com/spf13/cobra"

func (a *app) newInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show information about the server",
		Args:  exactArgs("info", 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(res)
		},
	}
}
