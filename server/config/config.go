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
	// MaxObjectBytes bounds the stored (JSON) size of any object after a
	// write: the result of a create, replace, patch or param change, so a
	// small request cannot make a large object. Writes beyond it answer
	// 422 and store nothing.
	MaxObjectBytes int64
	// MaxNameBytes bounds an object's key, every unique index value (such
	// as a machine's Name) and every param name (422 beyond it). It is at
	// most MaxNameBytesLimit, the longest key the store can hold.
	MaxNameBytes int
	// MaxPatchOps bounds the operations of one JSON Patch (422 beyond it).
	MaxPatchOps int

	// StaticListing makes the static file server list directories.
	StaticListing bool
	// ReadHeaderTimeout bounds reading a request's headers (and the TLS
	// handshake) on both listeners.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, on both
	// listeners. Plugin actions and provider uploads get their longer time
	// limit instead; once a body is read (at once without one, as for
	// websockets and long-polls) the request time limit applies.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// APIMaxConns caps open connections on the API listener; the last
	// AdminReserveConns of them serve only superuser requests.
	APIMaxConns int
	// APIMaxConnsPerIP caps open API connections from one source address.
	APIMaxConnsPerIP int
	// AdminReserveConns is the part of APIMaxConns (and of WSMax) kept for
	// superusers.
	AdminReserveConns int
	// StaticMaxConns caps open connections on the static listener.
	StaticMaxConns int
	// StaticMaxConnsPerIP caps open static connections from one source
	// address.
	StaticMaxConnsPerIP int
	// WSMax caps open websockets in total; the last AdminReserveConns of
	// them are for superusers.
	WSMax int
	// WSMaxPerPrincipal caps open websockets of one principal.
	WSMaxPerPrincipal int
	// LoginBurst is how many failed password logins one source address,
	// and one user name, may make before being throttled; they earn one
	// more every LoginWindow/LoginBurst.
	LoginBurst int
	// LoginWindow is the time in which LoginBurst failed logins are
	// forgiven.
	LoginWindow time.Duration
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

// MaxNameBytesLimit is the largest MaxNameBytes: the longest key bbolt,
// the store, accepts.
const MaxNameBytesLimit = 32768

// MinObjectBytes is the smallest MaxObjectBytes: below it the server's
// own bootstrap objects would not fit.
const MinObjectBytes = 4096

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
		MaxObjectBytes:   1 << 20,
		MaxNameBytes:     1024,
		MaxPatchOps:      1000,

		ReadHeaderTimeout:   10 * time.Second,
		ReadTimeout:         time.Minute,
		IdleTimeout:         2 * time.Minute,
		APIMaxConns:         4096,
		APIMaxConnsPerIP:    512,
		AdminReserveConns:   16,
		StaticMaxConns:      4096,
		StaticMaxConnsPerIP: 512,
		WSMax:               2048,
		WSMaxPerPrincipal:   64,
		LoginBurst:          10,
		LoginWindow:         time.Minute,
		PluginSandbox:       true,
		PluginUser:          "nobody",
		PluginLandlock:      true,
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
	if c.MaxObjectBytes < MinObjectBytes {
		return fmt.Errorf("--max-object-bytes must be at least %d, not %d", MinObjectBytes, c.MaxObjectBytes)
	}
	if c.MaxNameBytes < 1 || c.MaxNameBytes > MaxNameBytesLimit {
		return fmt.Errorf("--max-name-bytes must be between 1 and %d (the longest key the store holds), not %d", MaxNameBytesLimit, c.MaxNameBytes)
	}
	if c.MaxPatchOps < 1 {
		return fmt.Errorf("--max-patch-ops must be positive, not %d", c.MaxPatchOps)
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
	return c.validateLimits()
}

// validateLimits checks the connection, timeout and login limits.
func (c Config) validateLimits() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--read-header-timeout", c.ReadHeaderTimeout}, {"--read-timeout", c.ReadTimeout}, {"--idle-timeout", c.IdleTimeout}, {"--login-window", c.LoginWindow}} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive, not %s", d.flag, d.v)
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"--api-max-conns", c.APIMaxConns}, {"--api-max-conns-per-ip", c.APIMaxConnsPerIP}, {"--static-max-conns", c.StaticMaxConns},
		{"--static-max-conns-per-ip", c.StaticMaxConnsPerIP}, {"--ws-max", c.WSMax}, {"--ws-max-per-principal", c.WSMaxPerPrincipal}, {"--login-burst", c.LoginBurst}} {
		if n.v <= 0 {
			return fmt.Errorf("%s must be positive, not %d", n.flag, n.v)
		}
	}
	if c.AdminReserveConns < 0 || c.AdminReserveConns >= c.APIMaxConns || c.AdminReserveConns >= c.WSMax {
		return fmt.Errorf("--admin-reserve-conns %d must be at least 0 and below --api-max-conns (%d) and --ws-max (%d)", c.AdminReserveConns, c.APIMaxConns, c.WSMax)
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
	fs.Int64Var(&cfg.MaxObjectBytes, "max-object-bytes", envInt64(e, "RS_MAX_OBJECT_BYTES", cfg.MaxObjectBytes), "largest stored object (JSON bytes) any create, update, patch or param write may produce (RS_MAX_OBJECT_BYTES)")
	fs.IntVar(&cfg.MaxNameBytes, "max-name-bytes", envInt(e, "RS_MAX_NAME_BYTES", cfg.MaxNameBytes), "longest object key, unique index value (such as Name) or param name, in bytes (RS_MAX_NAME_BYTES)")
	fs.IntVar(&cfg.MaxPatchOps, "max-patch-ops", envInt(e, "RS_MAX_PATCH_OPS", cfg.MaxPatchOps), "most operations in one JSON Patch (RS_MAX_PATCH_OPS)")
	bindLimitFlags(fs, e, cfg)
	if len(e.bad) > 0 {
		return &Error{Err: fmt.Errorf("cannot parse environment: %s", strings.Join(e.bad, "; "))}
	}
	return nil
}

// bindLimitFlags registers the static listing, timeout, connection and
// login limits.
func bindLimitFlags(fs *pflag.FlagSet, e *envErrs, cfg *Config) {
	fs.BoolVar(&cfg.StaticListing, "static-listing", envBool(e, "RS_STATIC_LISTING", cfg.StaticListing), "list directories on the static file server (RS_STATIC_LISTING)")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", envDuration(e, "RS_READ_HEADER_TIMEOUT", cfg.ReadHeaderTimeout), "time limit for the TLS handshake and a request's headers, both listeners (RS_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", envDuration(e, "RS_READ_TIMEOUT", cfg.ReadTimeout), "time limit for reading a whole request, body included (408 on the API); plugin actions and provider uploads get their longer limit (RS_READ_TIMEOUT)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", envDuration(e, "RS_IDLE_TIMEOUT", cfg.IdleTimeout), "close keep-alive connections idle this long, both listeners (RS_IDLE_TIMEOUT)")
	fs.IntVar(&cfg.APIMaxConns, "api-max-conns", envInt(e, "RS_API_MAX_CONNS", cfg.APIMaxConns), "open connections on the API listener, the last --admin-reserve-conns for superusers only (RS_API_MAX_CONNS)")
	fs.IntVar(&cfg.APIMaxConnsPerIP, "api-max-conns-per-ip", envInt(e, "RS_API_MAX_CONNS_PER_IP", cfg.APIMaxConnsPerIP), "open API connections from one source address (RS_API_MAX_CONNS_PER_IP)")
	fs.IntVar(&cfg.AdminReserveConns, "admin-reserve-conns", envInt(e, "RS_ADMIN_RESERVE_CONNS", cfg.AdminReserveConns), "API connections and websockets kept for superusers when the others are used up (RS_ADMIN_RESERVE_CONNS)")
	fs.IntVar(&cfg.StaticMaxConns, "static-max-conns", envInt(e, "RS_STATIC_MAX_CONNS", cfg.StaticMaxConns), "open connections on the static file listener (RS_STATIC_MAX_CONNS)")
	fs.IntVar(&cfg.StaticMaxConnsPerIP, "static-max-conns-per-ip", envInt(e, "RS_STATIC_MAX_CONNS_PER_IP", cfg.StaticMaxConnsPerIP), "open static file connections from one source address (RS_STATIC_MAX_CONNS_PER_IP)")
	fs.IntVar(&cfg.WSMax, "ws-max", envInt(e, "RS_WS_MAX", cfg.WSMax), "open websockets in total, the last --admin-reserve-conns for superusers only (RS_WS_MAX)")
	fs.IntVar(&cfg.WSMaxPerPrincipal, "ws-max-per-principal", envInt(e, "RS_WS_MAX_PER_PRINCIPAL", cfg.WSMaxPerPrincipal), "open websockets of one user or token principal (RS_WS_MAX_PER_PRINCIPAL)")
	fs.IntVar(&cfg.LoginBurst, "login-burst", envInt(e, "RS_LOGIN_BURST", cfg.LoginBurst), "failed password logins allowed per source address and per user name before 429; one more is allowed every --login-window/--login-burst (RS_LOGIN_BURST)")
	fs.DurationVar(&cfg.LoginWindow, "login-window", envDuration(e, "RS_LOGIN_WINDOW", cfg.LoginWindow), "time in which --login-burst failed logins are forgiven (RS_LOGIN_WINDOW)")
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
