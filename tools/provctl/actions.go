package main

import (
	"fmt"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/spf13/cobra"
)

// actionScope says where plugin actions run: on one object of a collection
// (the command line starts with its id) or, with no id, on the system.
type actionScope struct {
	prefix string
	withID bool
}

// usage is the usage line of an action command whose words after the
// optional "<id>" are rest, and how many words it needs: n plus the id.
func (s actionScope) usage(verb, rest string, n int) (string, int) {
	if s.withID {
		verb, n = verb+" <id>", n+1
	}
	if rest != "" {
		verb += " " + rest
	}
	return verb, n
}

// split takes the object key off the front of args: prefix and key are
// what the client's action calls take ("system" and "" for the system).
func (s actionScope) split(args []string) (prefix, key string, rest []string) {
	if !s.withID {
		return s.prefix, "", args
	}
	return s.prefix, args[0], args[1:]
}

// actionCommand builds one of the action commands of a scope: they differ
// only in their words, arity check and the call they make; --plugin names
// the instance in all of them.
func (a *app) actionCommand(use, short, pluginHelp string, args cobra.PositionalArgs, call func(cmd *cobra.Command, args []string, plugin string) error) *cobra.Command {
	var plugin string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, args, plugin)
		},
	}
	cmd.Flags().StringVar(&plugin, "plugin", "", pluginHelp)
	return cmd
}

func (a *app) actionsCmd(s actionScope) *cobra.Command {
	use, n := s.usage("actions", "", 0)
	return a.actionCommand(use, "List the plugin actions that can run now", "only actions of this plugin instance", exactArgs(use, n),
		func(cmd *cobra.Command, args []string, plugin string) error {
			p, key, _ := s.split(args)
			return a.request(func(c *client.Client) (any, error) {
				return c.Actions(cmd.Context(), p, key, plugin)
			})
		})
}

func (a *app) actionCmd(s actionScope) *cobra.Command {
	use, n := s.usage("action", "<command>", 1)
	return a.actionCommand(use, "Show one plugin action (fails when its required params do not resolve)", "the plugin instance to ask", exactArgs(use, n),
		func(cmd *cobra.Command, args []string, plugin string) error {
			p, key, rest := s.split(args)
			return a.fetch(func(c *client.Client, res *any) error {
				return c.Action(cmd.Context(), p, key, rest[0], plugin, res)
			})
		})
}

func (a *app) runActionCmd(s actionScope) *cobra.Command {
	use, n := s.usage("runaction", "<command> [json|yaml|- | key value ...]", 1)
	atLeast := func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s requires at least %d argument(s); usage: %s", cmd.CommandPath(), n, use)
		}
		return nil
	}
	var actionTimeout string
	cmd := a.actionCommand(use, "Run a plugin action with optional params (a JSON object or key/value pairs)", "run the action on this plugin instance", atLeast,
		func(cmd *cobra.Command, args []string, plugin string) error {
			p, key, rest := s.split(args)
			params, err := a.actionParams(rest[1:])
			if err != nil {
				return err
			}
			limit := time.Duration(0) // the server's default
			if actionTimeout != "" {
				d, err := parseTimeout("--action-timeout", actionTimeout)
				if err != nil {
					return err
				}
				if d < 0 {
					return fmt.Errorf("--action-timeout must be positive, got %q", actionTimeout)
				}
				limit = d
			}
			return a.fetch(func(c *client.Client, res *any) error {
				return a.forAction(c, limit).RunActionWithTimeout(cmd.Context(), p, key, rest[0], plugin, limit, params, res)
			})
		})
	cmd.Flags().StringVar(&actionTimeout, "action-timeout", "",
		"how long the server lets the action run (sent as ?timeout=; default the server's --action-timeout, 5m); provctl waits that plus 30s even when --timeout is shorter")
	return cmd
}

// forAction returns c with a request bound that outlasts an action allowed
// to run for limit (0: the server's default): max(--timeout, limit+30s),
// and no bound when --timeout is 0.
func (a *app) forAction(c *client.Client, limit time.Duration) *client.Client {
	cur := c.RequestTimeout()
	if cur < 0 {
		return c
	}
	if limit == 0 {
		limit = defaultActionTimeout
	}
	return c.WithRequestTimeout(max(cur, limit+actionMargin))
}

// actionParams turns the trailing runaction arguments into the params
// object: nothing, one JSON/YAML object (or - for stdin), or key value
// pairs whose values are JSON or plain strings.
func (a *app) actionParams(args []string) (map[string]any, error) {
	switch {
	case len(args) == 0:
		return map[string]any{}, nil
	case len(args) == 1:
		return a.decodeObjectArg(args[0], "")
	case len(args)%2 != 0:
		return nil, fmt.Errorf("action params must be one JSON object or key value pairs, got %d words", len(args))
	}
	res := make(map[string]any, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		res[args[i]] = parseValue(args[i+1])
	}
	return res, nil
}
