package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// Actions are plugin-provided commands on objects (machines, plugins, ...)
// or on the system. withID is false for the system scope, whose commands
// take no object id.

func actionPrefixKey(prefix string, withID bool, args []string) (string, string, []string) {
	if !withID {
		return "system", "", args
	}
	return prefix, args[0], args[1:]
}

func (a *app) actionsCmd(prefix string, withID bool) *cobra.Command {
	var plugin string
	use, n := "actions <id>", 1
	if !withID {
		use, n = "actions", 0
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: "List the plugin actions that can run now",
		Args:  exactArgs(use, n),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, key, _ := actionPrefixKey(prefix, withID, args)
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Actions(cmd.Context(), p, key, plugin)
			if err != nil {
				return err
			}
			return a.print(res)
		},
	}
	cmd.Flags().StringVar(&plugin, "plugin", "", "only actions of this plugin instance")
	return cmd
}

func (a *app) actionCmd(prefix string, withID bool) *cobra.Command {
	var plugin string
	use, n := "action <id> <command>", 2
	if !withID {
		use, n = "action <command>", 1
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Show one plugin action (fails when its required params do not resolve)",
		Args:  exactArgs(use, n),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, key, rest := actionPrefixKey(prefix, withID, args)
			c, err := a.client()
			if err != nil {
				return err
			}
			path := "system/actions/" + rest[0]
			if withID {
				path = p + "/" + key + "/actions/" + rest[0]
			}
			q := map[string][]string{}
			if plugin != "" {
				q["plugin"] = []string{plugin}
			}
			var res any
			if err := c.Do(cmd.Context(), "GET", path, q, nil, &res); err != nil {
				return err
			}
			return a.print(res)
		},
	}
	cmd.Flags().StringVar(&plugin, "plugin", "", "the plugin instance to ask")
	return cmd
}

func (a *app) runActionCmd(prefix string, withID bool) *cobra.Command {
	var plugin string
	use, n := "runaction <id> <command> [json|yaml|- | key value ...]", 2
	if !withID {
		use, n = "runaction <command> [json|yaml|- | key value ...]", 1
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Run a plugin action with optional params (a JSON object or key/value pairs)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < n {
				return fmt.Errorf("%s requires at least %d argument(s); usage: %s", cmd.CommandPath(), n, use)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, key, rest := actionPrefixKey(prefix, withID, args)
			params, err := a.actionParams(rest[1:])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var res any
			if err := c.RunAction(cmd.Context(), p, key, rest[0], plugin, params, &res); err != nil {
				return err
			}
			return a.print(res)
		},
	}
	cmd.Flags().StringVar(&plugin, "plugin", "", "run the action on this plugin instance")
	return cmd
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
