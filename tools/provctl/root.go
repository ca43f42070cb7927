package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/spf13/cobra"
)

// app is the state shared by every command of one provctl invocation: the
// connection flags, the output format and the standard streams.
type app struct {
	endpoint, username, password, token string
	format                              string
	// timeout is --timeout as given ("" when not given).
	timeout string
	// requestTimeout is the parsed --timeout / RS_TIMEOUT (negative: none).
	requestTimeout time.Duration
	// getenv reads the environment (os.Getenv; replaced in tests).
	getenv func(string) string

	in       io.Reader
	out, err io.Writer

	cl *client.Client
}

// run executes provctl with args and returns the process exit code. Errors
// are printed as DRP's drpcli prints them: "Error: <message>".
func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	a := &app{getenv: os.Getenv, in: in, out: out, err: errOut}
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.err)
	if err := root.ExecuteContext(ctx); err != nil {
		msg := errorText(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && a.requestTimeout > 0 {
			msg += fmt.Sprintf(" (no answer within --timeout %s)", a.requestTimeout)
		}
		fmt.Fprintf(a.err, "Error: %s\n", msg)
		return 1
	}
	return 0
}

// DefaultTimeout bounds each request when neither --timeout nor RS_TIMEOUT
// is given: a server that accepts the connection but never answers must not
// hold provctl for the client library's 5 minutes.
const DefaultTimeout = 60 * time.Second

// actionMargin is how much longer than the action's own time limit
// runaction waits, for the server to report that the action timed out.
const actionMargin = 30 * time.Second

// defaultActionTimeout is provisiond's default --action-timeout: how long
// the server lets an action run when the call does not say.
const defaultActionTimeout = 5 * time.Minute

// parseTimeout reads a --timeout value: a Go duration (30s, 2m) or a
// number of seconds; 0 means no limit (returned as -1).
func parseTimeout(what, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseFloat(s, 64)
		if nerr != nil {
			return 0, fmt.Errorf("%s must be a duration like 30s or 2m, or a number of seconds (0: no limit), not %q", what, s)
		}
		d = time.Duration(n * float64(time.Second))
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("%s must not be negative, got %q", what, s)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// errorText renders an error like drpcli: a *models.Error in its DRP form,
// anything else as is.
func errorText(err error) string {
	return strings.TrimSpace(err.Error())
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "provctl",
		Short: "Command line client of provisiond (DRP-compatible)",
		Long: `provctl talks to provisiond's REST API (and to Digital Rebar Provision).

Connection settings come from the flags or, when a flag is not given, from
RS_ENDPOINT (default https://127.0.0.1:8092), RS_TOKEN, RS_USERNAME and
RS_PASSWORD (default user and password: rocketskates). A token takes
precedence over a username and password. Prefer the environment for secrets:
command lines are visible to other users. The server's certificate is not
verified (provisiond uses a self-signed one by default).

--timeout (RS_TIMEOUT, default 60s; 0: no limit) bounds each request,
retries and the TLS handshake included, so a server that accepts but never
answers cannot hang provctl. runaction waits at least its --action-timeout
(default provisiond's 5m) plus 30s, since an action may run that long;
events watch runs until interrupted.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&a.endpoint, "endpoint", "E", "", "API endpoint (RS_ENDPOINT, default "+client.DefaultEndpoint+")")
	pf.StringVarP(&a.username, "username", "U", "", "user name (RS_USERNAME, default "+client.DefaultUsername+")")
	pf.StringVarP(&a.password, "password", "P", "", "password (RS_PASSWORD)")
	pf.StringVarP(&a.token, "token", "T", "", "bearer token, takes precedence over username/password (RS_TOKEN)")
	pf.StringVarP(&a.format, "format", "F", "json", "output format: json or yaml")
	pf.StringVar(&a.timeout, "timeout", "", "bound of each request, e.g. 30s or 2m; 0: no limit (RS_TIMEOUT, default "+DefaultTimeout.String()+")")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		switch a.format {
		case "json", "yaml":
		default:
			return fmt.Errorf("--format must be json or yaml, not %q", a.format)
		}
		a.requestTimeout = DefaultTimeout
		switch {
		case a.timeout != "":
			d, err := parseTimeout("--timeout", a.timeout)
			if err != nil {
				return err
			}
			a.requestTimeout = d
		case a.getenv("RS_TIMEOUT") != "":
			d, err := parseTimeout("RS_TIMEOUT", a.getenv("RS_TIMEOUT"))
			if err != nil {
				return err
			}
			a.requestTimeout = d
		}
		return nil
	}

	root.AddCommand(
		a.newInfoCmd(),
		a.newMachinesCmd(),
		a.newProfilesCmd(),
		a.newParamsCmd(),
		a.newUsersCmd(),
		a.newPluginsCmd(),
		a.newPluginProvidersCmd(),
		a.newSystemCmd(),
		a.newEventsCmd(),
	)
	root.AddCommand(newContentsCmd())
	return root
}

// client returns the API client, built on first use from the flags and
// the RS_* environment.
func (a *app) client() (*client.Client, error) {
	if a.cl != nil {
		return a.cl, nil
	}
	endpoint := firstSet(a.endpoint, a.getenv("RS_ENDPOINT"), client.DefaultEndpoint)
	opts := client.Options{UserAgent: "provctl", RequestTimeout: a.requestTimeout}
	if opts.RequestTimeout == 0 { // not set by PersistentPreRunE (tests calling client directly)
		opts.RequestTimeout = DefaultTimeout
	}
	switch {
	case a.token != "":
		opts.Token = a.token
	case a.username != "" || a.password != "":
		// Explicit credentials beat a token in the environment.
	default:
		opts.Token = a.getenv("RS_TOKEN")
	}
	if opts.Token == "" {
		opts.Username = firstSet(a.username, a.getenv("RS_USERNAME"), client.DefaultUsername)
		opts.Password = firstSet(a.password, a.getenv("RS_PASSWORD"), client.DefaultPassword)
	}
	c, err := client.New(endpoint, opts)
	if err != nil {
		return nil, err
	}
	a.cl = c
	return c, nil
}

// request runs one API call with the connection's client and prints what
// it returns in the selected format: the tail every command that shows a
// server answer shares.
func (a *app) request(call func(c *client.Client) (any, error)) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	res, err := call(c)
	if err != nil {
		return err
	}
	return a.print(res)
}

// fetch is request for the client calls that decode the answer into an
// out argument rather than return it.
func (a *app) fetch(call func(c *client.Client, res *any) error) error {
	return a.request(func(c *client.Client) (any, error) {
		var res any
		err := call(c, &res)
		return res, err
	})
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// group makes cmd a command group that fails on an unknown subcommand
// (cobra would otherwise print help and exit 0) and shows help when called
// bare.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
	return cmd
}
