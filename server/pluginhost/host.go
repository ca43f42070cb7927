// Package pluginhost runs DRP v4 plugin providers as supervised child
// processes: it discovers provider executables (define/unpack), loads their
// content and custom object types, starts one process per Plugin object
// (listen <toPlugin> <fromPlugin> over unix sockets), configures it,
// dispatches actions to it, feeds it events, proxies /plugin-apis to it and
// restarts it with backoff when it crashes or stops answering.
//
// The wire protocol is DRP's (see the project's drp-protocol spec §1-§4, §7);
// where DRP has a quirk or a gap the host is compatible on the wire but
// fixes the behaviour, and says so in a comment at the spot.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
)

// Config holds the host's paths, URLs and time limits. Zero durations take
// the defaults documented on each field.
type Config struct {
	// PluginRoot holds the provider executables (required).
	PluginRoot string
	// FileRoot is the root of the static file space; providers unpack into
	// FileRoot/files/plugin_providers/<name> (required).
	FileRoot string
	// CommRoot is a directory owned by this host alone in which each
	// plugin process gets its private 0700 socket directory; provisiond
	// uses CommRootFor(base dir). New creates it (0700) and removes
	// whatever a previous run left in it. Socket paths must stay under
	// the 108-byte unix limit, so keep it short. Default: a fresh
	// directory under os.TempDir(), removed by Close.
	CommRoot string
	// ScratchRoot holds each plugin's working directory (default
	// <PluginRoot>/../plugin-scratch).
	ScratchRoot string
	// APIURL is RS_ENDPOINT, e.g. https://127.0.0.1:8092 (required).
	APIURL string
	// FileURL is RS_FILESERVER, e.g. http://127.0.0.1:8091.
	FileURL string
	// Logger receives host and plugin log lines (default slog.Default()).
	// The host labels every line component=pluginhost itself, so pass a
	// logger without that attribute.
	Logger *slog.Logger
	// Metrics receives the per-plugin metrics; nil keeps them private.
	Metrics prometheus.Registerer

	// DefineTimeout bounds `define` and `unpack` (default 30s).
	DefineTimeout time.Duration
	// ReadyTimeout bounds the wait for READY! (default 30s). DRP has none.
	ReadyTimeout time.Duration
	// ConfigTimeout bounds POST /config (default 30s).
	ConfigTimeout time.Duration
	// ActionTimeout is the default action timeout (default 5m).
	ActionTimeout time.Duration
	// MaxActionTimeout caps the per-request ?timeout= override (default 1h).
	MaxActionTimeout time.Duration
	// DrainTimeout bounds the wait for in-flight actions before a
	// deliberate stop (default 30s).
	DrainTimeout time.Duration
	// StopGrace is how long a stopping process gets after /stop before
	// SIGTERM, and after SIGTERM before SIGKILL (default 5s).
	StopGrace time.Duration
	// PublishTimeout bounds one POST /publish (default 10s).
	PublishTimeout time.Duration
	// PublishQueueLen is each HasPublish instance's event queue (default 1024).
	PublishQueueLen int
	// HealthInterval is the period of liveness probes (default 10s).
	HealthInterval time.Duration
	// HealthTimeout bounds one probe (default 5s).
	HealthTimeout time.Duration
	// HealthFailures consecutive failed probes kill and restart a plugin
	// (default 3).
	HealthFailures int
	// BackoffMin is the first restart delay after a crash (default 500ms).
	BackoffMin time.Duration
	// BackoffMax caps the restart delay (default 1m).
	BackoffMax time.Duration
	// HealthyAfter is how long a plugin must run before its backoff is
	// reset (default 1m).
	HealthyAfter time.Duration
	// MaxPluginErrors bounds the PluginErrors list (default 20).
	MaxPluginErrors int

	// Sandbox confines every plugin process (define, unpack, listen);
	// the zero value confines nothing. See sandbox.go.
	Sandbox Sandbox
}

func (c *Config) defaults() error {
	if c.PluginRoot == "" || c.FileRoot == "" || c.APIURL == "" {
		return errors.New("pluginhost: PluginRoot, FileRoot and APIURL are required")
	}
	if c.ScratchRoot == "" {
		c.ScratchRoot = filepath.Join(filepath.Dir(filepath.Clean(c.PluginRoot)), "plugin-scratch")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	dur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	dur(&c.DefineTimeout, 30*time.Second)
	dur(&c.ReadyTimeout, 30*time.Second)
	dur(&c.ConfigTimeout, 30*time.Second)
	dur(&c.ActionTimeout, 5*time.Minute)
	dur(&c.MaxActionTimeout, time.Hour)
	dur(&c.DrainTimeout, 30*time.Second)
	dur(&c.StopGrace, 5*time.Second)
	dur(&c.PublishTimeout, 10*time.Second)
	dur(&c.HealthInterval, 10*time.Second)
	dur(&c.HealthTimeout, 5*time.Second)
	dur(&c.BackoffMin, 500*time.Millisecond)
	dur(&c.BackoffMax, time.Minute)
	dur(&c.HealthyAfter, time.Minute)
	if c.PublishQueueLen <= 0 {
		c.PublishQueueLen = 1024
	}
	if c.HealthFailures <= 0 {
		c.HealthFailures = 3
	}
	if c.MaxPluginErrors <= 0 {
		c.MaxPluginErrors = 20
	}
	return nil
}

// Host runs plugin providers and their instances. Create it with New, call
// Start once the API is serving, and Close on shutdown.
type Host struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	// hurry ends when Shutdown's budget is spent: stopping instances skip
	// the drain and the polite steps and are killed.
	hurry    context.Context
	hurryNow context.CancelFunc

	// provMu serialises provider changes (discovery, upload, delete).
	provMu sync.Mutex

	mu        sync.RWMutex
	providers map[string]*provider // by define Name
	broken    map[string]*provider // files whose define failed, by file name
	instances map[string]*instance // by Plugin name
	// sorted holds instances' values sorted by name. It is replaced,
	// never changed in place, whenever instances changes, so readers
	// may keep the slice they got (see sortedInstances).
	sorted  []*instance
	removed map[string]string // provider → why the host removed it (403 /leaving)

	// discovered is closed when the first discovery has finished; until
	// then an instance whose provider is not loaded yet waits quietly
	// instead of reporting it missing.
	discovered     chan struct{}
	discoveredOnce sync.Once
	tempComm       bool // CommRoot was made by New and goes at Close
	sb             sandboxState
	closed         bool
	schemas        schemaCache
	logs           *logBudget // running plugins' log rate
	meta           *metaRecorder
	wg             sync.WaitGroup
}

// New validates cfg and deps and returns a Host that runs nothing yet.
func New(cfg Config, deps Deps) (*Host, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if deps.Tokens == nil || deps.Plugins == nil || deps.Objects == nil || deps.Params == nil || deps.Bus == nil {
		return nil, errors.New("pluginhost: Deps.Tokens, Plugins, Objects, Params and Bus are required")
	}
	sb, err := newSandboxState(cfg.Sandbox)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.PluginRoot, cfg.ScratchRoot, filepath.Join(cfg.FileRoot, "files", "plugin_providers")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("pluginhost: create %s: %w", d, err)
		}
	}
	if err := sb.prepareRoot(cfg.ScratchRoot, "scratch root"); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	tempComm := cfg.CommRoot == ""
	if tempComm {
		if cfg.CommRoot, err = os.MkdirTemp("", "provision-comm-"); err != nil {
			return nil, fmt.Errorf("pluginhost: socket root: %w", err)
		}
	} else if err := prepareCommRoot(cfg.CommRoot); err != nil {
		return nil, err
	}
	if err := sb.prepareRoot(cfg.CommRoot, "socket root"); err != nil {
		if tempComm {
			os.RemoveAll(cfg.CommRoot)
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	hurry, hurryNow := context.WithCancel(context.Background())
	h := &Host{
		cfg: cfg, deps: deps, log: cfg.Logger.With("component", "pluginhost"), metrics: m,
		ctx: ctx, cancel: cancel, hurry: hurry, hurryNow: hurryNow, tempComm: tempComm, sb: sb,
		providers: map[string]*provider{}, broken: map[string]*provider{}, instances: map[string]*instance{},
		removed: map[string]string{}, discovered: make(chan struct{}),
		logs: newLogBudget(nil, m.logDropped),
	}
	h.meta = newMetaRecorder(h)
	sb.logSetup(h.log, cfg)
	return h, nil
}

// Start hands every Plugin object to the host and discovers the providers
// in PluginRoot; each instance starts as soon as its provider is loaded,
// not when the whole discovery has finished. It returns once discovery is
// complete. It must be called once the API answers, because define and
// plugins call back into it. Failures of single providers or plugins are
// reported on their objects and never fail Start.
func (h *Host) Start(ctx context.Context) error {
	plugins, err := h.deps.Plugins.ListPlugins(ctx)
	if err != nil {
		h.discoveryDone()
		return fmt.Errorf("pluginhost: list plugins: %w", err)
	}
	for _, p := range plugins {
		h.PluginSaved(p)
	}
	h.Reload(ctx)
	return nil
}

// isDiscovered reports whether the first discovery has finished.
func (h *Host) isDiscovered() bool {
	select {
	case <-h.discovered:
		return true
	default:
		return false
	}
}

// discoveryDone marks the first discovery as finished.
func (h *Host) discoveryDone() {
	h.discoveredOnce.Do(func() { close(h.discovered) })
}

// Shutdown is Close bounded by ctx: when ctx ends before every instance
// has stopped, the ones still stopping skip the rest of their drain and
// the polite steps and are killed, so that no plugin outlives provisiond
// and a stuck plugin cannot stretch the shutdown past its budget.
func (h *Host) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		h.log.Warn("shutdown budget spent: killing the plugins that are still stopping")
		h.hurryNow()
		h.cancel()
		return <-done
	}
}

// Close stops every instance (as a deliberate stop: drain, /stop, SIGTERM,
// SIGKILL) and waits for them.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	insts := make([]*instance, 0, len(h.instances))
	for _, in := range h.instances {
		insts = append(insts, in)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.removeBecause("provisiond is stopping")
		}()
	}
	wg.Wait()
	h.cancel()
	h.hurryNow()
	h.wg.Wait()
	if h.tempComm {
		_ = os.RemoveAll(h.cfg.CommRoot)
	}
	return nil
}

// PluginSaved tells the host that a Plugin object was created or changed.
// A change of Params, Provider or Description restarts the instance; other
// changes (PluginErrors, Meta...) do nothing. Call it after the change is
// committed; it never blocks on the plugin.
func (h *Host) PluginSaved(p *models.Plugin) {
	if p == nil || p.Name == "" {
		return
	}
	cp, err := models.Clone(p)
	if err != nil {
		h.log.Error("copy plugin", "plugin", p.Name, "err", err)
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	in, ok := h.instances[p.Name]
	if !ok {
		in = newInstance(h, cp)
		h.instances[p.Name] = in
		h.resortLocked()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			in.run()
		}()
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	in.update(cp)
}

// PluginDeleted tells the host that a Plugin object was deleted: its
// process is stopped (drain, /stop, SIGTERM, SIGKILL).
func (h *Host) PluginDeleted(name string) {
	h.mu.Lock()
	in, ok := h.instances[name]
	if ok {
		delete(h.instances, name)
		h.resortLocked()
	}
	h.mu.Unlock()
	if ok {
		go in.remove()
	}
}

// dropInstance forgets in if it is still the registered instance.
func (h *Host) dropInstance(in *instance) {
	h.mu.Lock()
	if h.instances[in.name] == in {
		delete(h.instances, in.name)
		h.resortLocked()
	}
	h.mu.Unlock()
}

func (h *Host) instance(name string) *instance {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.instances[name]
}

// sortedInstances returns the instances sorted by name. The slice is
// shared: callers must not change it. Actions look instances up on every
// call, so the order is kept up to date on changes (resortLocked) rather
// than sorted per call.
func (h *Host) sortedInstances() []*instance {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sorted
}

// resortLocked rebuilds sorted from instances; caller holds h.mu for
// writing.
func (h *Host) resortLocked() {
	out := make([]*instance, 0, len(h.instances))
	for _, in := range h.instances {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	h.sorted = out
}

// providerChanged wakes every instance of provider so it restarts against
// the new (or missing) provider.
func (h *Host) providerChanged(name string) {
	for _, in := range h.sortedInstances() {
		if in.providerName() == name {
			in.providerChanged()
		}
	}
}

func (h *Host) publish(typ, action, key string, obj any) {
	h.deps.Bus.Publish(models.Event{Time: time.Now(), Type: typ, Action: action, Key: key, Principal: "pluginhost", Object: obj})
}

// SocketPath returns the socket the running instance named plugin listens
// on (its toPlugin socket), for diagnostics and benchmarks.
func (h *Host) SocketPath(plugin string) (string, bool) {
	in := h.instance(plugin)
	if in == nil {
		return "", false
	}
	p, err := in.current()
	if err != nil {
		return "", false
	}
	return p.toPath, true
}
