package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/spf13/cobra"
)

func (a *app) newUsersCmd() *cobra.Command {
	cmd := a.newObjectCmd(objectKind{
		prefix: "users", singular: "user",
		actions: true,
	}, "Access API users")
	cmd.AddCommand(a.userTokenCmd(), a.userPasswordCmd())
	return cmd
}

func (a *app) userTokenCmd() *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token <name>",
		Short: "Get a bearer token for a user",
		Args:  exactArgs("token <name>", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return errors.New("--ttl must not be negative")
			}
			return a.request(func(c *client.Client) (any, error) {
				return c.UserToken(cmd.Context(), args[0], ttl)
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, e.g. 1h (default: the server's)")
	return cmd
}

func (a *app) userPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "password <name> <password|->",
		Short: "Set a user's password (- reads it from the first line of standard input, keeping it off the command line)",
		Args:  exactArgs("password <name> <password|->", 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw := args[1]
			if pw == "-" {
				line, err := bufio.NewReader(a.in).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("reading the password from standard input: %w", err)
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if pw == "" {
				return errors.New("the password must not be empty")
			}
			return a.request(func(c *client.Client) (any, error) {
				return c.SetPassword(cmd.Context(), args[0], pw)
			})
		},
	}
}
