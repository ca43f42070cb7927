// Package config holds provisiond's settings and binds them to command-line
// flags, each with an RS_* environment variable fallback (as DRP's
// dr-provision does), so the daemon can be configured either way.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Config is everything provisiond needs to start.
type Config struct {
	// BaseRoot is the state directory (database, keys, certificate, tftpboot).
	BaseRoot string
	// APIAddr is the address the HTTPS API binds to.
	APIAddr string
	// APIPort is the HTTPS API port (0 = pick a free one).
	APIPort int
	// StaticAddr is the address the plain-HTTP file server binds to.
	StaticAddr string
	// StaticPort is the plain-HTTP file server port (0 = pick a free one, -1 = disabled).
	StaticPort int
	// PluginRoot holds plugin provider executables; default <BaseRoot>/plugins.
	PluginRoot string
	// AdminPassword is the bootstrap password of rocketskates (first start only).
	AdminPassword string
	// TLSCert and TLSKey name a PEM certificate and key; when both are empty a
	// self-signed pair is generated into BaseRoot on first start.
	TLSCert, TLSKey string
	// LogFormat is "text" or "json".
	LogFormat string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// MetricsOpen serves /metrics without authentication when true.
	MetricsOpen bool
	// MaxBodyBytes bounds every request body (413 beyond it).
	MaxBodyBytes int64
	// RequestTimeout bounds the time of every non-streaming handler except
	// plugin actions (ActionTimeout) and long-polls (Prefer: wait=).
	RequestTimeout time.Duration
	// ActionTimeout is the default time limit of a plugin action; a
	// request's ?timeout= may change it up to MaxActionTimeout.
	ActionTimeout time.Duration
	// MaxActionTimeout caps ?timeout= on plugin actions.
	MaxActionTimeout time.Duration
	// WSQueueLen bounds each websocket connection's pending events; a
	// client that falls further behind loses events (counted in metrics).
	WSQueueLen int
	// LogLines is how many recent log lines (the server's and its
	// plugins') are kept in memory for GET /api/v3/logs; 0 keeps none.
	LogLines int
	// PluginSandbox confines plugin processes (see PluginUser,
	// PluginLandlock; default true). Off, plugins run as provisiond's
	// user with its file access.
	PluginSandbox bool
	// PluginUser is the account plugin processes run as when provisiond
	// runs as root (default "nobody"); an account with uid 0 runs them as
	// root. It must exist.
	PluginUser string
	// PluginLandlock restricts plugin processes with Landlock where the
	// kernel supports it (default true).
	PluginLandlock bool
	// PluginScratchRoot holds the plugins' working directories; default
	// <BaseRoot>/plugin-scratch, or, when plugins run as PluginUser, a
	// directory under the system's temporary directory (the base
	// directory is 0700 and the plugin user must not enter it).
	PluginScratchRoot string
}

// Error is a setting that cannot work: a bad flag or RS_* value, an
// invalid combination, unusable TLS files. provisiond exits with status 1
// on it, before it has started or written anything.
type Error struct {
	// Err says what is wrong and how to fix it.
	Err error
}

// Error returns the underlying message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// MaxLogLines bounds Config.LogLines (the ring is allocated up front).
const MaxLogLines = 1_000_000

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		BaseRoot:         "/var/lib/provision",
		APIAddr:          "127.0.0.1",
		APIPort:          8092,
		StaticAddr:       "127.0.0.1",
		StaticPort:       8091,
		LogFormat:        "text",
		LogLevel:         "info",
		MaxBodyBytes:     16 << 20,
		RequestTimeout:   60 * time.Second,
		ActionTimeout:    5 * time.Minute,
		MaxActionTimeout: time.Hour,
		WSQueueLen:       1000,
		LogLines:         1000,
		PluginSandbox:    true,
		PluginUser:       "nobody",
		PluginLandlock:   true,
	}
}

// EffectivePluginRoot returns PluginRoot or its default under BaseRoot.
func (c Config) EffectivePluginRoot() string {
	if c.PluginRoot != "" {
		return c.PluginRoot
	}
	return filepath.Join(c.BaseRoot, "plugins")
}

// Absolute returns c with BaseRoot, PluginRoot and the TLS file paths made
// absolute against the current directory. Plugins run with other working
// directories and the server hands them paths under these roots, so a
// relative --base-root (e.g. ./data) must be resolved once, at start.
func (c Config) Absolute() (Config, error) {
	for _, p := range []*string{&c.BaseRoot, &c.PluginRoot, &c.PluginScratchRoot, &c.TLSCert, &c.TLSKey} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return c, fmt.Errorf("resolve %q: %w", *p, err)
		}
		*p = abs
	}
	return c, nil
}

// FileRoot is the directory served by the static file server.
func (c Config) FileRoot() string { return filepath.Join(c.BaseRoot, "tftpboot") }

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.BaseRoot == "" {
		return fmt.Errorf("--base-root must not be empty")
	}
	if c.APIPort < 0 || c.APIPort > 65535 {
		return fmt.Errorf("--api-port %d out of range", c.APIPort)
	}
	if c.StaticPort < -1 || c.StaticPort > 65535 {
		return fmt.Errorf("--static-port %d out of range", c.StaticPort)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key must be given together")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.PluginUser == "" {
		return fmt.Errorf("--plugin-user must not be empty")
	}
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("--max-body-bytes must be positive")
	}
	if c.LogLines < 0 || c.LogLines > MaxLogLines {
		return fmt.Errorf("--log-lines must be between 0 and %d, not %d", MaxLogLines, c.LogLines)
	}
	if c.WSQueueLen <= 0 {
		return fmt.Errorf("--ws-queue-len must be positive")
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("--request-timeout must be positive")
	}
	if c.ActionTimeout <= 0 || c.MaxActionTimeout <= 0 {
		return fmt.Errorf("--action-timeout and --max-action-timeout must be positive")
	}
	if c.MaxActionTimeout < c.ActionTimeout {
		return fmt.Errorf("--max-action-timeout %s is shorter than --action-timeout %s", c.MaxActionTimeout, c.ActionTimeout)
	}
	return nil
}

// BindFlags registers every setting on cmd's flags with cfg's current values
// as defaults, and RS_* environment variables overriding those defaults.
// An explicit flag beats the environment, which beats the built-in default.
// It returns an *Error naming any RS_* variable whose value cannot be
// parsed.
func BindFlags(fs *pflag.FlagSet, cfg *Config) error {
	e := &envErrs{}
	fs.StringVar(&cfg.BaseRoot, "base-root", envString(e, "RS_BASE_ROOT", cfg.BaseRoot), "state directory (RS_BASE_ROOT)")
	fs.StringVar(&cfg.APIAddr, "api-addr", envString(e, "RS_API_ADDR", cfg.APIAddr), "address the HTTPS API binds to; use 0.0.0.0 to serve other hosts (RS_API_ADDR)")
	fs.IntVar(&cfg.APIPort, "api-port", envInt(e, "RS_API_PORT", cfg.APIPort), "HTTPS API port, 0 picks a free one (RS_API_PORT)")
	fs.StringVar(&cfg.StaticAddr, "static-addr", envString(e, "RS_STATIC_ADDR", cfg.StaticAddr), "address the static file server binds to (RS_STATIC_ADDR)")
	fs.IntVar(&cfg.StaticPort, "static-port", envInt(e, "RS_STATIC_PORT", cfg.StaticPort), "plain-HTTP static file server port for <base-root>/tftpboot, 0 picks a free one, -1 disables (RS_STATIC_PORT)")
	fs.StringVar(&cfg.PluginRoot, "plugin-root", envString(e, "RS_PLUGIN_ROOT", cfg.PluginRoot), "plugin provider directory, default <base-root>/plugins (RS_PLUGIN_ROOT)")
	fs.StringVar(&cfg.AdminPassword, "admin-password", envString(e, "RS_ADMIN_PASSWORD", cfg.AdminPassword), "password of the bootstrap user rocketskates on first start; prefer RS_ADMIN_PASSWORD, command lines are visible to other users (RS_ADMIN_PASSWORD)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", envString(e, "RS_TLS_CERT", cfg.TLSCert), "PEM certificate file; a self-signed one is generated when unset (RS_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", envString(e, "RS_TLS_KEY", cfg.TLSKey), "PEM private key file for --tls-cert (RS_TLS_KEY)")
	fs.StringVar(&cfg.LogFormat, "log-format", envString(e, "RS_LOG_FORMAT", cfg.LogFormat), "log format: text or json (RS_LOG_FORMAT)")
	fs.StringVar(&cfg.LogLevel, "log-level", envString(e, "RS_LOG_LEVEL", cfg.LogLevel), "log level: debug, info, warn or error (RS_LOG_LEVEL)")
	fs.BoolVar(&cfg.MetricsOpen, "metrics-open", envBool(e, "RS_METRICS_OPEN", cfg.MetricsOpen), "serve /metrics without authentication (RS_METRICS_OPEN)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", envInt64(e, "RS_MAX_BODY_BYTES", cfg.MaxBodyBytes), "largest accepted request body (RS_MAX_BODY_BYTES)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", envDuration(e, "RS_REQUEST_TIMEOUT", cfg.RequestTimeout), "time limit of every API request except plugin actions and long-polls (RS_REQUEST_TIMEOUT)")
	fs.DurationVar(&cfg.ActionTimeout, "action-timeout", envDuration(e, "RS_ACTION_TIMEOUT", cfg.ActionTimeout), "default time limit of a plugin action; ?timeout= on the request overrides it (RS_ACTION_TIMEOUT)")
	fs.DurationVar(&cfg.MaxActionTimeout, "max-action-timeout", envDuration(e, "RS_MAX_ACTION_TIMEOUT", cfg.MaxActionTimeout), "upper bound of ?timeout= on plugin actions (RS_MAX_ACTION_TIMEOUT)")
	fs.IntVar(&cfg.WSQueueLen, "ws-queue-len", envInt(e, "RS_WS_QUEUE_LEN", cfg.WSQueueLen), "pending events per websocket before events are dropped for that client (RS_WS_QUEUE_LEN)")
	fs.BoolVar(&cfg.PluginSandbox, "plugin-sandbox", envBool(e, "RS_PLUGIN_SANDBOX", cfg.PluginSandbox), "confine plugin processes (unprivileged --plugin-user when root, Landlock, no_new_privs); false runs them as provisiond's user with its file access, keys included (RS_PLUGIN_SANDBOX)")
	fs.StringVar(&cfg.PluginUser, "plugin-user", envString(e, "RS_PLUGIN_USER", cfg.PluginUser), "account plugin processes run as when provisiond runs as root; it must exist, and root (uid 0) runs plugins unseparated from the server's keys (RS_PLUGIN_USER)")
	fs.BoolVar(&cfg.PluginLandlock, "plugin-landlock", envBool(e, "RS_PLUGIN_LANDLOCK", cfg.PluginLandlock), "restrict plugin processes with Landlock (to their scratch and socket directories and read-only system paths) where the kernel supports it (RS_PLUGIN_LANDLOCK)")
	fs.StringVar(&cfg.PluginScratchRoot, "plugin-scratch-root", envString(e, "RS_PLUGIN_SCRATCH_ROOT", cfg.PluginScratchRoot), "plugins' working directories; default <base-root>/plugin-scratch, or a directory in the system temporary directory when plugins run as --plugin-user (RS_PLUGIN_SCRATCH_ROOT)")
	fs.IntVar(&cfg.LogLines, "log-lines", envInt(e, "RS_LOG_LINES", cfg.LogLines), "recent log lines kept in memory for GET /api/v3/logs, 0 keeps none (RS_LOG_LINES)")
	if len(e.bad) > 0 {
		return &Error{Err: fmt.Errorf("cannot parse environment: %s", strings.Join(e.bad, "; "))}
	}
	return nil
}

// Bind is BindFlags on a cobra command's flags.
func Bind(cmd *cobra.Command, cfg *Config) error { return BindFlags(cmd.Flags(), cfg) }

type envErrs struct{ bad []string }

func (e *envErrs) add(name, v string, err error) {
	e.bad = append(e.bad, fmt.Sprintf("%s=%q: %v", name, v, err))
}

func envString(_ *envErrs, name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(e *envErrs, name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
		e.add(name, v, err)
	}
	return def
}

func envInt64(e *envErrs, name string, def int64) int64 {
	if v, ok := os.LookupEnv(name); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return n
		}
		e.add(name, v, err)
	}
	return def
}

func envBool(e *envErrs, name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b
		}
		e.add(name, v, err)
	}
	return def
}

func envDuration(e *envErrs, name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		d, err := time.ParseDuration(v)
		if err == nil {
			return d
		}
		e.add(name, v, err)
	}
	return def
}
