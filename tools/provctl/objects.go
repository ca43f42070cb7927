package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/spf13/cobra"
)

// objectKind describes one object collection and which drpcli-style
// subcommands it gets.
type objectKind struct {
	// prefix is the collection name in URLs, e.g. "machines".
	prefix string
	// singular names one object in messages, e.g. "machine".
	singular string
	// bareName lets create take a plain name: {"Name": <name>}.
	bareName bool
	// noCreate/noUpdate drop create, update and patch (plugin_providers).
	noCreate, noUpdate bool
	// params adds params/get/set/remove.
	params bool
	// actions adds actions/action/runaction.
	actions bool
}

// newObjectCmd builds the command group of one object kind.
func (a *app) newObjectCmd(k objectKind, short string) *cobra.Command {
	cmd := group(&cobra.Command{Use: k.prefix, Short: short})
	cmd.AddCommand(a.listCmd(k), a.showCmd(k), a.existsCmd(k), a.destroyCmd(k))
	if !k.noCreate {
		cmd.AddCommand(a.createCmd(k))
	}
	if !k.noUpdate {
		cmd.AddCommand(a.updateCmd(k), a.patchCmd(k))
	}
	if k.params {
		cmd.AddCommand(a.paramsCmd(k), a.getParamCmd(k), a.setParamCmd(k), a.removeParamCmd(k))
	}
	if k.actions {
		s := actionScope{prefix: k.prefix, withID: true}
		cmd.AddCommand(a.actionsCmd(s), a.actionCmd(s), a.runActionCmd(s))
	}
	return cmd
}

func (a *app) listCmd(k objectKind) *cobra.Command {
	var limit, offset int
	var sortBy, slim, params string
	var reverse bool
	cmd := &cobra.Command{
		Use:   "list [Field=Filter ...]",
		Short: fmt.Sprintf("List %s, optionally filtered (e.g. Name=Eq(foo), Name=Re(^a), Available=true)", k.prefix),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for _, arg := range args {
				f, v, ok := strings.Cut(arg, "=")
				if !ok || f == "" {
					return fmt.Errorf("filter %q must look like Field=Value or Field=Op(value)", arg)
				}
				q.Add(f, v)
			}
			if cmd.Flags().Changed("limit") {
				q.Set("limit", fmt.Sprint(limit))
			}
			if cmd.Flags().Changed("offset") {
				q.Set("offset", fmt.Sprint(offset))
			}
			if sortBy != "" {
				q.Set("sort", sortBy)
			}
			if reverse {
				q.Set("reverse", "true")
			}
			if slim != "" {
				q.Set("slim", slim)
			}
			if params != "" {
				q.Set("params", params)
			}
			return a.request(func(c *client.Client) (any, error) {
				res := []any{}
				err := c.Do(cmd.Context(), http.MethodGet, k.prefix, q, nil, &res)
				return res, err
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", 0, "return at most this many objects")
	fl.IntVar(&offset, "offset", 0, "skip this many objects")
	fl.StringVar(&sortBy, "sort", "", "sort by this index")
	fl.BoolVar(&reverse, "reverse", false, "reverse the order")
	fl.StringVar(&slim, "slim", "", "leave out these fields (Params,Meta)")
	fl.StringVar(&params, "params", "", "return only these params (comma list)")
	return cmd
}

func (a *app) showCmd(k objectKind) *cobra.Command {
	return &cobra.Command{
		Use:   "show <id>",
		Short: fmt.Sprintf("Show one %s by key or <Index>:<value>", k.singular),
		Args:  exactArgs("show <id>", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.fetch(func(c *client.Client, res *any) error {
				return c.Get(cmd.Context(), k.prefix, args[0], res)
			})
		},
	}
}

func (a *app) existsCmd(k objectKind) *cobra.Command {
	return &cobra.Command{
		Use:   "exists <id>",
		Short: fmt.Sprintf("Exit 0 if the %s exists, 1 otherwise", k.singular),
		Args:  exactArgs("exists <id>", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ok, err := c.Exists(cmd.Context(), k.prefix, args[0])
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s %s does not exist", k.singular, args[0])
			}
			return nil
		},
	}
}

func (a *app) createCmd(k objectKind) *cobra.Command {
	use := "create <json|yaml|file|->"
	short := fmt.Sprintf("Create a %s from JSON/YAML (inline, a file or - for stdin)", k.singular)
	if k.bareName {
		use = "create <json|yaml|file|name|->"
		short = fmt.Sprintf("Create a %s from JSON/YAML (inline, a file or - for stdin) or just a name", k.singular)
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(use, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bare := ""
			if k.bareName {
				bare = "Name"
			}
			obj, err := a.decodeObjectArg(args[0], bare)
			if err != nil {
				return err
			}
			return a.fetch(func(c *client.Client, res *any) error {
				return c.Create(cmd.Context(), k.prefix, obj, res)
			})
		},
	}
}

func (a *app) updateCmd(k objectKind) *cobra.Command {
	return &cobra.Command{
		Use:   "update <id> <json|yaml|file|->",
		Short: fmt.Sprintf("Merge fields into a %s (sent as a JSON Patch with test ops)", k.singular),
		Args:  exactArgs("update <id> <json>", 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			changes, err := a.decodeObjectArg(args[1], "")
			if err != nil {
				return err
			}
			return a.fetch(func(c *client.Client, res *any) error {
				var current map[string]any
				if err := c.Get(cmd.Context(), k.prefix, args[0], &current); err != nil {
					return err
				}
				merged, err := models.Clone(current)
				if err != nil {
					return err
				}
				return c.PatchTo(cmd.Context(), k.prefix, args[0], current, mergeInto(merged, changes), res)
			})
		},
	}
}

func (a *app) patchCmd(k objectKind) *cobra.Command {
	return &cobra.Command{
		Use:   "patch <id> <jsonpatch|->",
		Short: fmt.Sprintf("Apply an RFC 6902 JSON Patch to a %s", k.singular),
		Args:  exactArgs("patch <id> <jsonpatch>", 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			buf, err := a.readArg(args[1])
			if err != nil {
				return err
			}
			p, err := jsonpatch2.NewPatch(buf)
			if err != nil {
				return fmt.Errorf("invalid JSON Patch: %w", err)
			}
			return a.fetch(func(c *client.Client, res *any) error {
				return c.Patch(cmd.Context(), k.prefix, args[0], p, res)
			})
		},
	}
}

func (a *app) destroyCmd(k objectKind) *cobra.Command {
	return &cobra.Command{
		Use:   "destroy <id>",
		Short: fmt.Sprintf("Delete a %s", k.singular),
		Args:  exactArgs("destroy <id>", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), k.prefix, args[0], nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "Deleted %s %s\n", k.singular, args[0])
			return err
		},
	}
}

// paramFlags are the query switches of the params endpoints.
type paramFlags struct{ aggregate, decode bool }

func (p *paramFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.aggregate, "aggregate", false, "include values inherited from profiles and the global profile")
	cmd.Flags().BoolVar(&p.decode, "decode", false, "decrypt secure param values")
}

func (p *paramFlags) query() url.Values {
	q := url.Values{}
	if p.aggregate {
		q.Set("aggregate", "true")
	}
	if p.decode {
		q.Set("decode", "true")
	}
	return q
}

func (a *app) paramsCmd(k objectKind) *cobra.Command {
	var pf paramFlags
	cmd := &cobra.Command{
		Use:   "params <id> [json|yaml|-]",
		Short: fmt.Sprintf("Show a %s's params, or replace them all with the given object", k.singular),
		Args:  rangeArgs("params <id> [json]", 1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				params, err := a.decodeObjectArg(args[1], "")
				if err != nil {
					return err
				}
				return a.request(func(c *client.Client) (any, error) {
					return c.SetParams(cmd.Context(), k.prefix, args[0], params)
				})
			}
			return a.request(func(c *client.Client) (any, error) {
				return c.GetParamsWith(cmd.Context(), k.prefix, args[0], pf.query())
			})
		},
	}
	pf.add(cmd)
	return cmd
}

// keyword checks a literal word in a drpcli-style command line.
func keyword(args []string, i int, want, usage string) error {
	if args[i] != want {
		return fmt.Errorf("expected %q, got %q; usage: %s", want, args[i], usage)
	}
	return nil
}

func (a *app) getParamCmd(k objectKind) *cobra.Command {
	var pf paramFlags
	const use = "get <id> param <key>"
	cmd := &cobra.Command{
		Use:   use,
		Short: fmt.Sprintf("Show one param of a %s (null when unset)", k.singular),
		Args:  exactArgs(use, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := keyword(args, 1, "param", use); err != nil {
				return err
			}
			return a.fetch(func(c *client.Client, res *any) error {
				return c.GetParamWith(cmd.Context(), k.prefix, args[0], args[2], pf.query(), res)
			})
		},
	}
	pf.add(cmd)
	return cmd
}

func (a *app) setParamCmd(k objectKind) *cobra.Command {
	const use = "set <id> param <key> to <json value>"
	return &cobra.Command{
		Use:   use,
		Short: fmt.Sprintf("Set one param of a %s (a value that is not JSON is taken as a string)", k.singular),
		Args:  exactArgs(use, 5),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := keyword(args, 1, "param", use); err != nil {
				return err
			}
			if err := keyword(args, 3, "to", use); err != nil {
				return err
			}
			buf, err := a.readArg(args[4])
			if err != nil {
				return err
			}
			return a.fetch(func(c *client.Client, res *any) error {
				return c.Do(cmd.Context(), http.MethodPost, paramPath(k, args), nil, parseValue(string(buf)), res)
			})
		},
	}
}

func (a *app) removeParamCmd(k objectKind) *cobra.Command {
	const use = "remove <id> param <key>"
	return &cobra.Command{
		Use:   use,
		Short: fmt.Sprintf("Remove one param from a %s and show its old value", k.singular),
		Args:  exactArgs(use, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := keyword(args, 1, "param", use); err != nil {
				return err
			}
			return a.fetch(func(c *client.Client, res *any) error {
				return c.Do(cmd.Context(), http.MethodDelete, paramPath(k, args), nil, nil, res)
			})
		},
	}
}

// paramPath is the path of one param in a "<verb> <id> param <key> ..."
// command line.
func paramPath(k objectKind, args []string) string {
	return k.prefix + "/" + args[0] + "/params/" + args[2]
}

// exactArgs is cobra.ExactArgs with a drpcli-like message naming the usage.
func exactArgs(usage string, n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s requires %d argument(s), got %d; usage: %s", cmd.CommandPath(), n, len(args), usage)
		}
		return nil
	}
}

// rangeArgs accepts between lo and hi arguments.
func rangeArgs(usage string, lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return fmt.Errorf("%s requires %d to %d arguments, got %d; usage: %s", cmd.CommandPath(), lo, hi, len(args), usage)
		}
		return nil
	}
}
