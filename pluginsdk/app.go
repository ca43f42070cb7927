package pluginsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/spf13/cobra"
)

// PluginVersion is the plugin protocol version a provider must declare in
// PluginProvider.PluginVersion (DRP v4).
const PluginVersion = 4

// DefaultEndpoint is the API URL used when RS_ENDPOINT is not set.
const DefaultEndpoint = "https://127.0.0.1:8092"

// CatalogToken is the RS_TOKEN value that makes define skip Validate, as
// DRP does when building catalogs offline.
const CatalogToken = "catalog"

// App is a plugin provider's command line: define, unpack, listen, version
// and shell completion, built on cobra. Create it with InitApp, optionally
// chain With* calls, then call Main (or Execute).
type App struct {
	name, short, version string
	def                  *models.PluginProvider
	impl                 any
	cfg                  Configurer
	initErr              error
	content              fs.FS

	stdout, stderr io.Writer
	exit           func(code int)
	getenv         func(string) string
	logLevel       slog.LevelVar
	debug          bool

	sink *logSink
	root *cobra.Command
}

// InitApp builds the command line of a plugin provider named name. def is
// the static definition printed by define; impl implements Configurer
// (mandatory) and any of Actor, Publisher, EventSelector, Stopper,
// Validator, Unpacker and APIProvider. When impl does not implement
// Configurer the returned App fails every command with an error saying so.
func InitApp(name, short, version string, def *models.PluginProvider, impl any) *App {
	a := &App{
		name: name, short: short, version: version, def: def, impl: impl,
		stdout: os.Stdout, stderr: os.Stderr, exit: os.Exit, getenv: os.Getenv,
	}
	a.logLevel.Set(slog.LevelDebug) // DRP's plugin loggers default to debug
	switch cfg, ok := impl.(Configurer); {
	case def == nil:
		a.initErr = fmt.Errorf("pluginsdk: InitApp(%q): the provider definition is nil", name)
	case impl == nil:
		a.initErr = fmt.Errorf("pluginsdk: InitApp(%q): the plugin implementation is nil", name)
	case !ok:
		a.initErr = fmt.Errorf("pluginsdk: InitApp(%q): %T does not implement pluginsdk.Configurer "+
			"(Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error); every plugin must", name, impl)
	default:
		a.cfg = cfg
	}
	a.sink = newLogSink(name, a.stderr)
	a.root = a.buildCommands()
	return a
}

// WithContent makes define embed the content bundle read from fsys, a
// directory in DRP's directory-store format (see package content). Embed it
// with `//go:embed all:content` (all: keeps the ._<Field>.meta files) and
// pass the embed.FS: when fsys's root holds nothing but a "content"
// directory, that directory is used. The bundle is built at run time; no
// generated files are needed. Its Name and Version are set from the
// definition and its Type to "plugin", as the host does.
func (a *App) WithContent(fsys fs.FS) *App {
	a.content = content.Root(fsys)
	return a
}

// WithOutput redirects the App's stdout and stderr (tests).
func (a *App) WithOutput(stdout, stderr io.Writer) *App {
	a.stdout, a.stderr = stdout, stderr
	a.sink.fallback = stderr
	a.root.SetOut(stdout)
	a.root.SetErr(stderr)
	return a
}

// WithExitFunc replaces os.Exit, which listen calls with 0 once the answer
// to /api-plugin/v4/stop has been delivered (tests).
func (a *App) WithExitFunc(exit func(code int)) *App {
	a.exit = exit
	return a
}

// WithGetenv replaces os.Getenv for RS_ENDPOINT and RS_TOKEN (tests).
func (a *App) WithGetenv(getenv func(string) string) *App {
	a.getenv = getenv
	return a
}

// Command returns the root cobra command, e.g. to add subcommands or call
// SetArgs in tests.
func (a *App) Command() *cobra.Command { return a.root }

// Execute runs the command line with os.Args.
func (a *App) Execute() error { return a.ExecuteContext(context.Background()) }

// ExecuteContext runs the command line; cancelling ctx makes listen shut
// down cleanly.
func (a *App) ExecuteContext(ctx context.Context) error {
	if a.initErr != nil {
		fmt.Fprintln(a.stderr, a.initErr)
		return a.initErr
	}
	return a.root.ExecuteContext(ctx)
}

// Main runs the command line until SIGINT/SIGTERM and exits the process
// with status 1 on error. It is all a provider's main function needs.
func (a *App) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := a.ExecuteContext(ctx)
	stop()
	if err != nil {
		a.exit(1)
	}
}

func (a *App) buildCommands() *cobra.Command {
	root := &cobra.Command{
		Use:           a.name,
		Short:         a.short,
		Version:       a.version,
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().BoolVarP(&a.debug, "debug", "d", false, "log at trace level")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if a.debug {
			a.logLevel.Set(LevelTrace)
		}
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the provider version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(a.stdout, "Version: %v\n", a.version)
			return err
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "autocomplete <file>",
		Short: "Write a bash completion file (DRP compatibility; see also `completion`)",
		Args:  exactArgs(1, "the file to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return root.GenBashCompletionFile(args[0])
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "define",
		Short: "Print the provider definition as JSON (run by the host)",
		// Extra arguments are accepted and ignored, as DRP does.
		Args: cobra.ArbitraryArgs,
		// A failing define must print only the error, never usage: the host
		// captures stdout and stderr together.
		RunE: func(cmd *cobra.Command, _ []string) error {
			buf, err := a.Define(cmd.Context())
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(buf)
			return err
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "unpack <dir>",
		Short: "Write the provider's static files into <dir> (run by the host)",
		Args:  exactArgs(1, "the target directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.unpack(cmd.Context(), args[0])
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "listen <toPlugin socket> <fromPlugin socket>",
		Short: "Serve the plugin protocol on <toPlugin socket> (run by the host)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				fmt.Fprintln(a.stdout, "Failed")
				return fmt.Errorf("%s needs exactly 2 arguments, the toPlugin and fromPlugin socket paths; got %d", cmd.UseLine(), len(args))
			}
			return a.listen(cmd.Context(), args[0], args[1])
		},
	})
	return root
}

// exactArgs is cobra.ExactArgs with a message that says what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s (%s); got %d arguments", cmd.UseLine(), what, len(args))
		}
		for _, a := range args {
			if a == "" {
				return fmt.Errorf("usage: %s: %s must not be empty", cmd.UseLine(), what)
			}
		}
		return nil
	}
}

// discardLogger is used where a plugin's log lines have nowhere to go
// without corrupting the output (define).
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Define returns exactly what the define command prints: the definition
// (or Validate's result) as indented JSON plus a newline, with Content
// filled from the embedded content directory.
func (a *App) Define(ctx context.Context) ([]byte, error) {
	if a.initErr != nil {
		return nil, a.initErr
	}
	def := *a.def
	if a.content != nil {
		if def.Content != "" {
			return nil, errors.New("pluginsdk: the definition already has Content and WithContent was used too; use one")
		}
		c, err := a.contentYAML()
		if err != nil {
			return nil, err
		}
		def.Content = c
	}
	var out any = &def
	token := a.getenv("RS_TOKEN")
	if v, ok := a.impl.(Validator); ok && token != CatalogToken {
		if token == "" {
			// DRP's library crashes here with a nil pointer; say what is wrong.
			return nil, errors.New("define: RS_TOKEN is not set; Validate needs an API token (RS_TOKEN=catalog skips validation)")
		}
		c, err := client.New(a.endpoint(), client.Options{Token: token, UserAgent: a.name + "/" + a.version})
		if err != nil {
			return nil, fmt.Errorf("define: building API client: %w", err)
		}
		res, merr := v.Validate(withDefault(ctx), discardLogger(), c)
		if merr != nil {
			return nil, fmt.Errorf("define: validation failed: %w", merr)
		}
		switch pp := res.(type) {
		case *models.PluginProvider:
			if pp != nil && pp.Content == "" {
				cp := *pp
				cp.Content = def.Content
				res = &cp
			}
		case models.PluginProvider:
			if pp.Content == "" {
				pp.Content = def.Content
				res = &pp
			}
		}
		out = res
	}
	buf, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("define: encoding the definition: %w", err)
	}
	return append(buf, '\n'), nil
}

func (a *App) contentYAML() (string, error) {
	c, err := content.FromFS(a.content)
	if err != nil {
		return "", fmt.Errorf("pluginsdk: embedded content: %w", err)
	}
	c.Meta.Name, c.Meta.Version, c.Meta.Type = a.def.Name, a.def.Version, "plugin"
	buf, err := content.Marshal(c, ".yaml")
	if err != nil {
		return "", fmt.Errorf("pluginsdk: embedded content: %w", err)
	}
	return string(buf), nil
}

func (a *App) endpoint() string {
	if ep := a.getenv("RS_ENDPOINT"); ep != "" {
		return ep
	}
	return DefaultEndpoint
}

func withDefault(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func (a *App) unpack(ctx context.Context, dir string) error {
	u, ok := a.impl.(Unpacker)
	if !ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	// No host connection yet: lines go to stderr, which the host logs.
	l := a.sink.logger(&a.logLevel, 0)
	if err := u.Unpack(withDefault(ctx), l, dir); err != nil {
		return fmt.Errorf("unpack into %s: %w", dir, err)
	}
	return nil
}
