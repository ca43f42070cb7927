// Package server assembles provisiond: store, event bus, secure param keys,
// object service, authentication, the HTTPS API and the static file server,
// plus optional Modules (such as the plugin host) that extend it.
//
// Typical use (see server/cmd/provisiond and server/servertest):
//
//	s, err := server.New(ctx, cfg, server.Options{Modules: []server.Module{host}})
//	if err != nil { ... }
//	err = s.Run(ctx) // serves until ctx ends, then shuts down cleanly
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/provisionhq/provision/content"
	"github.com/provisionhq/provision/models"
	sdkcontent "github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/server/api"
	"github.com/provisionhq/provision/server/auth"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/contentlayer"
	"github.com/provisionhq/provision/server/events"
	"github.com/provisionhq/provision/server/logbuf"
	"github.com/provisionhq/provision/server/netlimit"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/staticfs"
	"github.com/provisionhq/provision/server/store"
	"github.com/provisionhq/provision/server/throttle"
	"github.com/provisionhq/provision/server/tlsutil"
)

// Version is reported by /api/v3/info.
const Version = "v4.8.0-provision"

// AdminUser is the bootstrap superuser.
const AdminUser = "rocketskates"

// AdminPasswordFile is where a generated admin password is written.
const AdminPasswordFile = "admin-password"

// EndpointsFile (in the base directory) records the URLs a running server
// listens on, written once it is fully up (serving, modules started);
// tools and tests that start provisiond on port 0 read it.
const EndpointsFile = "endpoints.json"

// DatabaseFile is the bbolt database inside the base directory.
const DatabaseFile = "provision.db"

// metaBucket holds server bookkeeping (endpoint id, bootstrap marker).
const metaBucket = "provision-meta"

// Features returns the capabilities /api/v3/info advertises (a fresh
// slice on every call).
func Features() []string {
	return []string{"api-v3", "sane-exit-codes", "secure-params", "secure-param-upgrade",
		"plugin-v4", "json-patch", "websocket-register-acks", "http-only-static"}
}

// Module extends provisiond (the plugin host is one).
type Module interface {
	// Name labels the module in logs.
	Name() string
	// Setup runs once the core exists and before anything is served:
	// register object kinds (s.Objects().Register), hooks (OnChange),
	// routes (s.API().Group(), HandleSub, HandleItem).
	Setup(ctx context.Context, s *Server) error
	// Start runs once the API is serving (s.APIURL() is known). It must
	// return promptly; background work ends when ctx ends or Stop is called.
	Start(ctx context.Context) error
	// Stop runs on shutdown before the listeners close, in reverse order
	// of the modules.
	Stop(ctx context.Context) error
}

// Options are the parts of a Server that are not configuration.
type Options struct {
	// Modules are set up and started in order.
	Modules []Module
	// Logger overrides the logger built from the configuration.
	Logger *slog.Logger
	// LogOutput receives the logs when Logger is nil (default os.Stderr).
	LogOutput io.Writer
	// Stdout receives the one-time admin password notice (default os.Stdout).
	Stdout io.Writer
	// Now is the clock of the failed-login throttle (default time.Now);
	// tests inject one to expire the throttle without waiting.
	Now func() time.Time
}

// Server is one running provisiond.
type Server struct {
	cfg     config.Config
	opts    Options
	log     *slog.Logger
	logs    *logbuf.Ring
	st      store.Store
	bus     *events.Bus
	keys    *secrets.Keeper
	objs    *objects.Service
	auth    *auth.Service
	ws      *events.WebsocketHandler
	api     *api.API
	reg     *prometheus.Registry
	conns   *netlimit.Metrics
	id      string
	tlsCert tls.Certificate

	mu                sync.Mutex
	apiLn, staticLn   net.Listener
	apiSrv, staticSrv *http.Server
	serveErr          chan error
	started, stopped  bool
	modCtx            context.Context
	modCancel         context.CancelFunc
}

// NewLogger builds the slog logger described by cfg.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	ho := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// New validates cfg (a *config.Error when it cannot work), opens the base
// directory (failing at once if another provisiond
// uses it), binds the listeners, bootstraps the base directory on first
// start and sets up every module. Binding comes before anything is
// written, so a port in use fails a first start without leaving an admin
// password, TLS material or keys behind. Nothing is served until Start.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, &config.Error{Err: err}
	}
	if cfg, err = cfg.Absolute(); err != nil {
		return nil, err
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
	}
	log := opts.Logger
	if log == nil {
		log = NewLogger(cfg, opts.LogOutput)
	}
	// Every component logs through the tee, so GET /api/v3/logs shows
	// what the log shows (plugin log lines included).
	ring := logbuf.NewRing(cfg.LogLines)
	log = slog.New(logbuf.NewHandler(log.Handler(), ring))
	if err := os.MkdirAll(cfg.BaseRoot, 0o700); err != nil {
		return nil, fmt.Errorf("create base root: %w", err)
	}
	for _, d := range []string{cfg.FileRoot(), cfg.EffectivePluginRoot()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	st, err := store.OpenBolt(filepath.Join(cfg.BaseRoot, DatabaseFile), store.BoltOptions{})
	if err != nil {
		return nil, fmt.Errorf("open database in %s: %w", cfg.BaseRoot, err)
	}
	s := &Server{cfg: cfg, opts: opts, log: log, logs: ring, st: st, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.closeListeners()
			_ = st.Close()
		}
	}()
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.bus = events.NewBus(events.Options{Metrics: s.reg, Logger: log.With("component", "events")})
	if s.keys, err = secrets.LoadOrCreate(cfg.BaseRoot); err != nil {
		return nil, err
	}
	s.objs, err = objects.New(objects.Options{Store: st, Bus: s.bus, Keys: s.keys, Logger: log.With("component", "objects"),
		Limits: objects.Limits{MaxObjectBytes: cfg.MaxObjectBytes, MaxNameBytes: cfg.MaxNameBytes, MaxPatchOps: cfg.MaxPatchOps}})
	if err != nil {
		return nil, err
	}
	kinds := []objects.Kind{objects.ProfilesKind(), objects.ParamsKind(s.objs), objects.MachinesKind(),
		auth.UsersKind(), objects.PluginsKind(), objects.PluginProvidersKind()}
	for _, k := range append(kinds, objects.ProvisioningKinds()...) {
		if err := s.objs.Register(ctx, k); err != nil {
			return nil, err
		}
	}
	if s.auth, err = auth.New(cfg.BaseRoot, s.objs); err != nil {
		return nil, err
	}
	if s.tlsCert, err = tlsutil.Load(cfg.BaseRoot, cfg.TLSCert, cfg.TLSKey); err != nil {
		if cfg.TLSCert != "" {
			return nil, &config.Error{Err: err} // the operator's files
		}
		return nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	s.loadBaseContent(ctx)
	s.ws = events.NewWebsocketHandler(s.bus, events.WSOptions{QueueLen: cfg.WSQueueLen, Logger: log.With("component", "websocket"),
		Limits: events.WSLimits{PerPrincipal: cfg.WSMaxPerPrincipal, Total: cfg.WSMax, Reserve: cfg.AdminReserveConns, Metrics: s.reg,
			PerPrincipalHint: "--ws-max-per-principal / RS_WS_MAX_PER_PRINCIPAL",
			TotalHint:        "--ws-max / RS_WS_MAX, reserve --admin-reserve-conns / RS_ADMIN_RESERVE_CONNS"}})
	s.conns = netlimit.NewMetrics(s.reg)
	logins := api.NewLoginThrottle(throttle.New(cfg.LoginBurst, cfg.LoginWindow, opts.Now),
		"--login-burst / RS_LOGIN_BURST per --login-window / RS_LOGIN_WINDOW", s.reg)
	s.api = api.New(api.Options{
		Objects: s.objs, Auth: s.auth, Bus: s.bus, WS: s.ws, Info: s.Info,
		Logger: log.With("component", "api"), Registry: s.reg, MetricsOpen: cfg.MetricsOpen,
		MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
		Logs: ring.Lines, ReadTimeout: cfg.ReadTimeout, Logins: logins,
		ReserveHint: fmt.Sprintf("Limit %d connections (--api-max-conns / RS_API_MAX_CONNS), of which %d reserved (--admin-reserve-conns / RS_ADMIN_RESERVE_CONNS).",
			cfg.APIMaxConns, cfg.AdminReserveConns),
		OnReserveRefused: func() { s.conns.Refused("api", netlimit.ReasonReserve) },
	})
	for _, m := range opts.Modules {
		if err := m.Setup(ctx, s); err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Name(), err)
		}
	}
	return s, nil
}

func (s *Server) bootstrap(ctx context.Context) error {
	var id, boot []byte
	err := s.st.View(ctx, func(tx store.Tx) error {
		if v, ok := tx.Get(metaBucket, "endpoint-id"); ok {
			id = append([]byte{}, v...)
		}
		if v, ok := tx.Get(metaBucket, "bootstrapped"); ok {
			boot = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read server metadata: %w", err)
	}
	if len(id) == 0 {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		id = []byte(hex.EncodeToString(b))
		if err := s.st.Update(ctx, func(tx store.Tx) error { return tx.Put(metaBucket, "endpoint-id", id) }); err != nil {
			return fmt.Errorf("store endpoint id: %w", err)
		}
	}
	s.id = string(id)
	if _, err := s.objs.Get(ctx, "profiles", objects.GlobalProfile); err != nil {
		g := &models.Profile{Name: objects.GlobalProfile, Description: "Global profile: params consulted last for every object"}
		if _, err := s.objs.Create(ctx, "system", "profiles", g); err != nil {
			return fmt.Errorf("create global profile: %w", err)
		}
	}
	if len(boot) > 0 {
		return nil
	}
	pw, generated := s.cfg.AdminPassword, false
	if pw == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		pw, generated = hex.EncodeToString(b), true
	}
	if _, err := s.objs.Get(ctx, "users", AdminUser); err != nil {
		h, err := auth.HashPassword(pw)
		if err != nil {
			return fmt.Errorf("admin password: %w", err)
		}
		u := &models.User{Name: AdminUser, Description: "bootstrap superuser", Roles: []string{auth.SuperuserRole}, PasswordHash: h}
		if _, err := s.objs.Create(ctx, "system", "users", u); err != nil {
			return fmt.Errorf("create %s: %w", AdminUser, err)
		}
		if generated {
			path := filepath.Join(s.cfg.BaseRoot, AdminPasswordFile)
			if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
				return fmt.Errorf("write admin password: %w", err)
			}
			fmt.Fprintf(s.opts.Stdout, "provisiond: created user %s with a generated password (also in %s, mode 0600): %s\n", AdminUser, path, pw)
		}
		s.log.Info("bootstrap user created", "user", AdminUser, "password_file", generated)
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		return tx.Put(metaBucket, "bootstrapped", []byte(time.Now().UTC().Format(time.RFC3339)))
	})
}

// loadBaseContent stores the embedded provision-base bundle as a
// read-only content layer (replacing the one an older version stored).
// User objects of the same name are kept and win. A failure is logged and
// does not stop the server: the bundle only adds param definitions.
func (s *Server) loadBaseContent(ctx context.Context) {
	log := s.log.With("component", "content")
	c, err := sdkcontent.FromFS(content.BaseFS())
	if err == nil && c.Meta.Name != content.BaseName {
		err = fmt.Errorf("bundle is named %q, not %q", c.Meta.Name, content.BaseName)
	}
	if err == nil {
		err = contentlayer.New(s.objs, "system", log).Add(ctx, "contents", content.BaseName, c, contentlayer.KeepWritable)
	}
	if err != nil {
		log.Error("base content not loaded", "bundle", content.BaseName, "err", err)
		return
	}
	log.Info("base content loaded", "bundle", content.BaseName, "version", c.Meta.Version)
}

// IsServerBundle reports whether name is a content bundle the server
// itself loads (provision-base); plugin providers cannot use such a name
// for their content and the plugin host never removes it.
func (s *Server) IsServerBundle(name string) bool { return name == content.BaseName }

// Config returns the server's configuration.
func (s *Server) Config() config.Config { return s.cfg }

// Logger returns the server logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// LogLines returns the recent log lines GET /api/v3/logs serves, oldest
// first.
func (s *Server) LogLines() []models.LogLine { return s.logs.Lines() }

// Store returns the database.
func (s *Server) Store() store.Store { return s.st }

// Bus returns the event bus.
func (s *Server) Bus() *events.Bus { return s.bus }

// Objects returns the object service (kinds, CRUD, params, hooks).
func (s *Server) Objects() *objects.Service { return s.objs }

// Auth returns the authentication service (token minting and revocation).
func (s *Server) Auth() *auth.Service { return s.auth }

// Secrets returns the secure param key keeper.
func (s *Server) Secrets() *secrets.Keeper { return s.keys }

// API returns the HTTP API, for modules adding routes.
func (s *Server) API() *api.API { return s.api }

// Metrics returns the Prometheus registry served at /metrics.
func (s *Server) Metrics() *prometheus.Registry { return s.reg }

// ID is the server's endpoint id.
func (s *Server) ID() string { return s.id }

// APIURL is the base URL of the API (https://host:port, no /api/v3), known
// once New has returned (served once Start has).
func (s *Server) APIURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apiLn == nil {
		return ""
	}
	return "https://" + hostPort(s.cfg.APIAddr, s.apiLn.Addr())
}

// StaticURL is the base URL of the static file server ("" when disabled).
func (s *Server) StaticURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staticLn == nil {
		return ""
	}
	return "http://" + hostPort(s.cfg.StaticAddr, s.staticLn.Addr())
}

func hostPort(bind string, a net.Addr) string {
	port := strconv.Itoa(a.(*net.TCPAddr).Port)
	host := bind
	if ip := net.ParseIP(bind); bind == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func port(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	return ln.Addr().(*net.TCPAddr).Port
}

// Info describes the server for /api/v3/info.
func (s *Server) Info(ctx context.Context) models.Info {
	s.mu.Lock()
	apiLn, apiPort, filePort := s.apiLn, port(s.apiLn), port(s.staticLn)
	s.mu.Unlock()
	address := advertisedAddress(apiLn)
	return models.Info{
		Arch: runtime.GOARCH, Os: runtime.GOOS, Version: Version, Id: s.id, LocalId: s.id, HaId: s.id, HaActiveId: s.id,
		ApiPort: apiPort, FilePort: filePort, Address: address,
		Stats:    []models.Stat{{Name: "machines.count", Count: s.objs.Count("machines")}, {Name: "subnets.count", Count: 0}},
		Features: Features(), Errors: []string{}, Scopes: s.scopes(),
		HaIsActive: true, HaStatus: "Up", HaPassiveState: []models.HaPassiveState{},
	}
}

// advertisedAddress is the IP /info reports (DRP's Client.File builds
// http://<address>:<file_port>/ from it, and DRP's Info decodes it as a
// net.IP, so a host name would break the whole answer): the address the
// API listener is bound to, or for a wildcard bind the source address of
// the default route (what DRP reports), else 127.0.0.1. Finding the route
// sends nothing: a UDP "connect" only selects a source address.
func advertisedAddress(ln net.Listener) string {
	if ln == nil {
		return "127.0.0.1"
	}
	ip := ln.Addr().(*net.TCPAddr).IP
	if !ip.IsUnspecified() {
		return ip.String()
	}
	c, err := net.DialTimeout("udp", "192.0.2.1:9", time.Second) // TEST-NET-1: never contacted
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() && !a.IP.IsLoopback() {
		return a.IP.String()
	}
	return "127.0.0.1"
}

// scopes lists the claim scopes and actions tokens can carry, in the form
// of DRP's Info.Scopes: every object kind with its CRUD, secure-param and
// plugin-action rights, plus the fixed scopes.
func (s *Server) scopes() map[string]map[string]struct{} {
	set := func(actions ...string) map[string]struct{} {
		m := make(map[string]struct{}, len(actions))
		for _, a := range actions {
			m[a] = struct{}{}
		}
		return m
	}
	out := map[string]map[string]struct{}{
		"events":  set("post"),
		"info":    set("get"),
		"logs":    set("get"),
		"metrics": set("get"),
		"system":  set("action"),
	}
	for _, p := range s.objs.Prefixes() {
		out[p] = set("action", "create", "delete", "get", "getSecure", "list", "patch", "update")
	}
	if u, ok := out["users"]; ok {
		u["token"], u["password"] = struct{}{}, struct{}{}
	}
	return out
}

// listen binds the API and static listeners (New calls it before it
// writes anything).
func (s *Server) listen() error {
	apiLn, err := net.Listen("tcp", net.JoinHostPort(s.cfg.APIAddr, strconv.Itoa(s.cfg.APIPort)))
	if err != nil {
		return fmt.Errorf("listen for API: %w", err)
	}
	var staticLn net.Listener
	if s.cfg.StaticPort >= 0 {
		staticLn, err = net.Listen("tcp", net.JoinHostPort(s.cfg.StaticAddr, strconv.Itoa(s.cfg.StaticPort)))
		if err != nil {
			_ = apiLn.Close()
			return fmt.Errorf("listen for static files: %w", err)
		}
	}
	s.mu.Lock()
	s.apiLn, s.staticLn = apiLn, staticLn
	s.mu.Unlock()
	return nil
}

// closeListeners closes listeners that never served.
func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range []net.Listener{s.apiLn, s.staticLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Start serves on the listeners New bound, starts the modules and then
// writes EndpointsFile, so that the file appearing means the server is
// fully up (signal handlers included). It returns once everything is up.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("server already started")
	}
	s.started = true
	apiLn, staticLn := s.apiLn, s.staticLn
	s.mu.Unlock()
	errLog := slog.NewLogLogger(s.log.With("component", "http").Handler(), slog.LevelWarn)
	apiLn = netlimit.Wrap(apiLn, netlimit.Options{Name: "api", Max: s.cfg.APIMaxConns, PerIP: s.cfg.APIMaxConnsPerIP,
		Reserve: s.cfg.AdminReserveConns, Metrics: s.conns})
	apiSrv := &http.Server{
		Handler:           s.api.Handler(),
		TLSConfig:         tlsutil.ServerConfig(s.tlsCert),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		// The API adapts the read deadline per request (api.Options.ReadTimeout).
		ReadTimeout:    s.cfg.ReadTimeout,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ConnContext:    netlimit.ConnContext,
		ErrorLog:       errLog,
	}
	s.mu.Lock()
	s.apiSrv = apiSrv
	s.serveErr = make(chan error, 2)
	s.mu.Unlock()
	go func() { s.serveErr <- apiSrv.ServeTLS(apiLn, "", "") }()
	if staticLn != nil {
		staticLn = netlimit.Wrap(staticLn, netlimit.Options{Name: "static", Max: s.cfg.StaticMaxConns, PerIP: s.cfg.StaticMaxConnsPerIP,
			RefuseHTTP: true, Metrics: s.conns})
		staticSrv := &http.Server{
			Handler:           staticfs.New(s.cfg.FileRoot(), s.cfg.StaticListing),
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			ReadTimeout:       s.cfg.ReadTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          errLog,
		}
		s.mu.Lock()
		s.staticSrv = staticSrv
		s.mu.Unlock()
		go func() { s.serveErr <- staticSrv.Serve(staticLn) }()
	}
	s.modCtx, s.modCancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, m := range s.opts.Modules {
		if err := m.Start(s.modCtx); err != nil {
			return fmt.Errorf("start module %s: %w", m.Name(), err)
		}
	}
	if err := s.writeEndpoints(); err != nil {
		return err
	}
	s.log.Info("provisiond serving", "api", s.APIURL(), "static", s.StaticURL(), "base_root", s.cfg.BaseRoot)
	return nil
}

func (s *Server) writeEndpoints() error {
	buf, _ := json.Marshal(map[string]string{"api": s.APIURL(), "static": s.StaticURL()})
	path := filepath.Join(s.cfg.BaseRoot, EndpointsFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o644); err != nil {
		return fmt.Errorf("write endpoints: %w", err)
	}
	return os.Rename(tmp, path)
}

// Shutdown stops the modules, the websocket streams and the listeners
// (waiting for in-flight requests until ctx ends) and closes the database.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	apiSrv, staticSrv := s.apiSrv, s.staticSrv
	s.mu.Unlock()
	s.log.Info("provisiond stopping")
	var errs []error
	for i := len(s.opts.Modules) - 1; i >= 0; i-- {
		if err := s.opts.Modules[i].Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop module %s: %w", s.opts.Modules[i].Name(), err))
		}
	}
	if s.modCancel != nil {
		s.modCancel()
	}
	if s.ws != nil {
		s.ws.Close()
	}
	for _, srv := range []*http.Server{apiSrv, staticSrv} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = srv.Close()
		}
	}
	if err := s.st.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	s.log.Info("provisiond stopped")
	return errors.Join(errs...)
}

// ShutdownBudget bounds Run's shutdown: long enough for plugin actions to
// drain (30 s) and plugins to take /stop, SIGTERM and SIGKILL (5 s apart),
// short enough to finish before a service manager's own stop timeout
// (systemd's default is 90 s). Past it plugins are killed.
const ShutdownBudget = time.Minute

// Run starts the server and serves until ctx ends or a listener fails,
// then shuts down within ShutdownBudget.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownBudget)
		defer cancel()
		return errors.Join(err, s.Shutdown(sctx))
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-s.serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownBudget)
	defer cancel()
	return errors.Join(serveErr, s.Shutdown(sctx))
}

// Close releases the listeners and the database of a server that was
// never started (and shuts down one that was).
func (s *Server) Close() error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if started {
		return s.Shutdown(context.Background())
	}
	s.closeListeners()
	return s.st.Close()
}
