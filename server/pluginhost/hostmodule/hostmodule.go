// Package hostmodule plugs the plugin host (package pluginhost) into
// provisiond as a server.Module: it backs the host's dependencies with the
// server's object service, auth and event bus, serves the plugin routes
// (provider upload/download, actions on every object type, system actions,
// /plugin-apis), drives plugin lifecycles from object change hooks and
// reloads providers on SIGHUP.
package hostmodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/api"
	"github.com/provisionhq/provision/server/contentlayer"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/pluginhost"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
)

// Principal is the name the host uses for its own changes (provider
// records, content layers, PluginErrors); only it may change objects of a
// plugin content layer.
const Principal = "pluginhost"

// Options configures the module.
type Options struct {
	// Tune may adjust the host configuration (time limits, comm root)
	// after the paths and URLs are filled in from the server.
	Tune func(*pluginhost.Config)
	// ReloadOnSIGHUP re-runs provider discovery on SIGHUP (provisiond
	// sets it; tests usually call Reload instead).
	ReloadOnSIGHUP bool
}

// Module is the plugin host as a server.Module.
type Module struct {
	opts  Options
	s     *server.Server
	host  atomic.Pointer[pluginhost.Host]
	api   atomic.Pointer[pluginhost.API]
	ready chan struct{}

	mu     sync.Mutex
	kinds  map[string]string // StoreObjects prefix -> provider
	sigs   chan os.Signal
	stopBg context.CancelFunc
	bg     sync.WaitGroup
}

// New returns the module; pass it in server.Options.Modules.
func New(opts Options) *Module {
	return &Module{opts: opts, ready: make(chan struct{}), kinds: map[string]string{}}
}

// Name implements server.Module.
func (m *Module) Name() string { return "pluginhost" }

// Host returns the running host (nil before Start).
func (m *Module) Host() *pluginhost.Host { return m.host.Load() }

// Ready is closed once the first provider discovery has finished and every
// Plugin object has been handed to the host.
func (m *Module) Ready() <-chan struct{} { return m.ready }

// Reload re-runs provider discovery (what SIGHUP does).
func (m *Module) Reload(ctx context.Context) {
	if h := m.Host(); h != nil {
		h.Reload(ctx)
	}
}

// providersKind replaces the server's plugin_providers kind so that the
// records also carry the binary's SHA-256 and define errors.
func providersKind() objects.Kind {
	k := objects.PluginProvidersKind()
	k.New = func() models.Model { return &models.PluginProviderInfo{} }
	k.Prepare = nil
	k.Validate = func(v objects.View, obj models.Model) error {
		name := obj.(*models.PluginProviderInfo).Name
		if !models.NameRE.MatchString(name) {
			return fmt.Errorf("Invalid Name `%s`", name)
		}
		return nil
	}
	k.Sanitize = func(obj models.Model) { obj.(*models.PluginProviderInfo).Content = "" }
	return k
}

// Setup implements server.Module: kinds, hooks and routes.
func (m *Module) Setup(ctx context.Context, s *server.Server) error {
	m.s = s
	objs := s.Objects()
	objs.Unregister("plugin_providers")
	if err := objs.Register(ctx, providersKind()); err != nil {
		return fmt.Errorf("register plugin_providers: %w", err)
	}
	objs.OnBeforeChange("plugin_providers", func(ctx context.Context, v objects.View, c *objects.Change) error {
		if c.Principal == Principal || c.Action == objects.ActionDelete {
			return nil
		}
		return &models.Error{Model: "plugin_providers", Key: c.Key, Type: strings.ToUpper(c.Action), Code: http.StatusMethodNotAllowed,
			Messages: []string{"Plugin providers are changed by uploading the executable: POST /api/v3/plugin_providers/<name> as application/octet-stream"}}
	})
	objs.OnChange("plugin_providers", func(ctx context.Context, c objects.Change) {
		if c.Action != objects.ActionDelete || c.Principal == Principal {
			return
		}
		if h := m.Host(); h != nil {
			if err := h.DeleteProvider(ctx, c.Key); err != nil {
				s.Logger().Debug("delete plugin provider", "provider", c.Key, "err", err)
			}
		}
	})
	objs.OnChange("plugins", func(ctx context.Context, c objects.Change) {
		h := m.Host()
		if h == nil {
			return // Start hands every plugin over
		}
		if c.Action == objects.ActionDelete {
			h.PluginDeleted(c.Key)
			return
		}
		if p, ok := c.New.(*models.Plugin); ok {
			h.PluginSaved(p)
		}
	})
	// Objects of a plugin content layer are stored ReadOnly (as DRP shows
	// them); the object service refuses every API change to them with 403
	// and only the host's writes, marked objects.AllowReadOnly, may
	// replace or remove them.

	a := s.API()
	hostAPI := func(c *gin.Context) *pluginhost.API {
		if p := m.api.Load(); p != nil {
			return p
		}
		api.WriteError(c, &models.Error{Model: "plugins", Type: c.Request.Method, Code: http.StatusServiceUnavailable,
			Messages: []string{"The plugin host is starting"}})
		return nil
	}
	a.HandleItem("plugin_providers", http.MethodPost, func(c *gin.Context) {
		if h := hostAPI(c); h != nil {
			h.Upload(c, api.ObjectID(c))
		}
	})
	a.HandleSub("plugin_providers", "binary", http.MethodGet, func(c *gin.Context) {
		if h := hostAPI(c); h != nil {
			h.Download(c, api.ObjectID(c))
		}
	})
	a.HandleSub("*", "actions", http.MethodGet, func(c *gin.Context) {
		h := hostAPI(c)
		if h == nil {
			return
		}
		if cmd := api.SubPath(c); cmd != "" {
			h.GetAction(c, api.ObjectPrefix(c), api.ObjectID(c), cmd)
			return
		}
		h.ListActions(c, api.ObjectPrefix(c), api.ObjectID(c))
	})
	a.HandleSub("*", "actions", http.MethodPost, func(c *gin.Context) {
		h := hostAPI(c)
		if h == nil {
			return
		}
		cmd := api.SubPath(c)
		if cmd == "" {
			api.WriteError(c, &models.Error{Model: api.ObjectPrefix(c), Key: api.ObjectID(c), Type: "POST", Code: http.StatusMethodNotAllowed,
				Messages: []string{"Method not allowed: POST .../actions/<command>"}})
			return
		}
		h.RunAction(c, api.ObjectPrefix(c), api.ObjectID(c), cmd)
	})
	g := a.Group()
	g.GET("/system/actions", func(c *gin.Context) {
		if h := hostAPI(c); h != nil {
			h.ListActions(c, pluginhost.SystemPrefix, "")
		}
	})
	g.GET("/system/actions/:cmd", func(c *gin.Context) {
		if h := hostAPI(c); h != nil {
			h.GetAction(c, pluginhost.SystemPrefix, "", c.Param("cmd"))
		}
	})
	g.POST("/system/actions/:cmd", func(c *gin.Context) {
		if h := hostAPI(c); h != nil {
			h.RunAction(c, pluginhost.SystemPrefix, "", c.Param("cmd"))
		}
	})
	g.Any("/plugin-apis/:plugin/*path", func(c *gin.Context) {
		if h := hostAPI(c); h != nil {
			h.PluginAPI(c, c.Param("plugin"))
		}
	})
	a.SetBodyLimit(api.Prefix+"/plugin_providers/", pluginhost.MaxProviderSize)
	a.SetStreaming(api.Prefix + "/plugin-apis/")
	a.AddTimeoutRule(m.actionTimeoutRule)
	return nil
}

// actionTimeoutRule lets an action run for its own time limit (the host's
// default action timeout, or ?timeout= capped at the host's maximum)
// instead of the server's global --request-timeout, which is meant for
// ordinary requests: a power cycle or a firmware job may take longer. The
// action still ends when the client goes away.
func (m *Module) actionTimeoutRule(r *http.Request) (time.Duration, bool) {
	if r.Method != http.MethodPost || !isActionPath(r.URL.Path) {
		return 0, false
	}
	h := m.Host()
	if h == nil {
		return 0, false
	}
	// A bad ?timeout= is answered 400 by the handler at once.
	override, _ := pluginhost.ParseTimeout(r.URL.Query().Get("timeout"))
	return h.ActionTimeout(override) + pluginhost.ActionSlack, true
}

// isActionPath reports /api/v3/<prefix>/<id>/actions/<cmd> and
// /api/v3/system/actions/<cmd>.
func isActionPath(path string) bool {
	rest, ok := strings.CutPrefix(path, api.Prefix+"/")
	if !ok {
		return false
	}
	segs := strings.Split(rest, "/")
	switch {
	case len(segs) == 3 && segs[0] == "system" && segs[1] == "actions":
		return segs[2] != ""
	case len(segs) >= 4 && segs[2] == "actions":
		return segs[3] != ""
	}
	return false
}

// Start implements server.Module: it creates the host and runs discovery
// in the background (see Ready).
func (m *Module) Start(ctx context.Context) error {
	s := m.s
	sc := s.Config()
	// Plugins are confined whenever this binary can serve as the
	// sandbox helper (provisiond's main and the TestMain of the tests
	// that start plugins call sandbox.Main); an embedding that does not
	// gets a warning in the log and unconfined plugins, as does
	// --plugin-sandbox=false.
	sb := pluginhost.Sandbox{Enabled: sc.PluginSandbox && sandbox.Available(), User: sc.PluginUser, NoLandlock: !sc.PluginLandlock}
	comm, scratch := pluginhost.PluginDirsFor(sc.BaseRoot, sb.SwitchesUser())
	if sc.PluginScratchRoot != "" {
		scratch = sc.PluginScratchRoot
	}
	cfg := pluginhost.Config{
		PluginRoot: sc.EffectivePluginRoot(), FileRoot: sc.FileRoot(),
		ScratchRoot: scratch,
		CommRoot:    comm, // swept at start: stale sockets of a crashed run go
		APIURL:      s.APIURL(), FileURL: s.StaticURL(),
		Logger: s.Logger(), Metrics: s.Metrics(), // the host adds component=pluginhost
		ActionTimeout: sc.ActionTimeout, MaxActionTimeout: sc.MaxActionTimeout,
		Sandbox: sb,
	}
	if m.opts.Tune != nil {
		m.opts.Tune(&cfg)
	}
	deps := pluginhost.Deps{Tokens: s.Auth(), Plugins: m, Objects: m, Params: m, Content: m, Kinds: m,
		Bus: pluginhost.BusFrom(s.Bus()), Records: m}
	h, err := pluginhost.New(cfg, deps)
	if err != nil {
		return err
	}
	m.host.Store(h)
	m.api.Store(h.API(pluginhost.APIOptions{
		Authorize: api.Require,
		Principal: func(c *gin.Context) string {
			if p := api.PrincipalOf(c); p != nil {
				return p.Name
			}
			return ""
		},
	}))
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBg = cancel
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		defer close(m.ready)
		if err := h.Start(bgCtx); err != nil {
			s.Logger().Error("plugin host start", "err", err)
		}
		m.reconcileRecords(bgCtx, h)
	}()
	if m.opts.ReloadOnSIGHUP {
		m.sigs = make(chan os.Signal, 1)
		signal.Notify(m.sigs, syscall.SIGHUP)
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			for {
				select {
				case <-bgCtx.Done():
					return
				case <-m.sigs:
					s.Logger().Info("SIGHUP: reloading plugin providers")
					h.Reload(bgCtx)
				}
			}
		}()
	}
	return nil
}

// reconcileRecords removes provider records whose provider is gone (the
// executable was removed while the server was down).
func (m *Module) reconcileRecords(ctx context.Context, h *pluginhost.Host) {
	known, loaded := map[string]bool{}, map[string]bool{}
	for _, p := range h.Providers() {
		known[p.Name] = true
		if len(p.Errors) == 0 {
			loaded[p.Name] = true
		}
	}
	recs, err := m.s.Objects().ListObjects(ctx, "plugin_providers", objects.All())
	if err != nil {
		return
	}
	for _, r := range recs {
		if !known[r.Key()] {
			_, _ = m.s.Objects().Delete(ctx, Principal, "plugin_providers", r.Key())
		}
	}
	// Content layers are stored, so a provider removed while the server
	// was down leaves its ReadOnly objects behind; nobody else could
	// delete them. Besides the server's own bundles (provision-base),
	// plugin layers are the only content bundles, so every other bundle
	// without a loaded provider goes.
	m.layers().RemoveWhere(ctx, func(b string) bool { return b != "" && !loaded[b] && !m.s.IsServerBundle(b) }, nil)
}

// Stop implements server.Module: every plugin is stopped.
func (m *Module) Stop(ctx context.Context) error {
	if m.sigs != nil {
		signal.Stop(m.sigs)
	}
	if m.stopBg != nil {
		m.stopBg()
	}
	var err error
	if h := m.Host(); h != nil {
		err = h.Shutdown(ctx)
	}
	m.bg.Wait()
	return err
}

// --- pluginhost.Plugins ---

// ListPlugins implements pluginhost.Plugins.
func (m *Module) ListPlugins(ctx context.Context) ([]*models.Plugin, error) {
	list, err := m.s.Objects().ListObjects(ctx, "plugins", objects.All())
	if err != nil {
		return nil, err
	}
	out := make([]*models.Plugin, 0, len(list))
	for _, o := range list {
		if p, ok := o.(*models.Plugin); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// CreatePlugin implements pluginhost.Plugins.
func (m *Module) CreatePlugin(ctx context.Context, p *models.Plugin) error {
	_, err := m.s.Objects().Create(ctx, Principal, "plugins", p)
	var me *models.Error
	if errors.As(err, &me) && me.Code == http.StatusConflict {
		return nil
	}
	return err
}

// SetPluginErrors implements pluginhost.Plugins.
func (m *Module) SetPluginErrors(ctx context.Context, name string, errs []string) error {
	_, err := m.s.Objects().Update(ctx, Principal, "plugins", name, func(obj models.Model) error {
		obj.(*models.Plugin).PluginErrors = append([]string{}, errs...)
		return nil
	})
	var me *models.Error
	if errors.As(err, &me) && me.Code == http.StatusNotFound {
		return nil
	}
	return err
}

// SetPluginMeta implements pluginhost.PluginMeta.
func (m *Module) SetPluginMeta(ctx context.Context, name, key, value string) error {
	_, err := m.s.Objects().Update(ctx, Principal, "plugins", name, func(obj models.Model) error {
		p := obj.(*models.Plugin)
		if p.Meta == nil {
			p.Meta = models.Meta{}
		}
		p.Meta[key] = value
		return nil
	})
	var me *models.Error
	if errors.As(err, &me) && me.Code == http.StatusNotFound {
		return nil
	}
	return err
}

// --- pluginhost.Objects ---

// apiObject is the target of an action: its identity for param lookups
// and its API form (hidden fields removed, secure params sealed), which is
// what the plugin receives as Action.Model.
type apiObject struct {
	prefix, key, keyName string
	hasParams            bool
	view                 json.RawMessage
}

// Prefix implements models.Model.
func (o apiObject) Prefix() string { return o.prefix }

// Key implements models.Model.
func (o apiObject) Key() string { return o.key }

// KeyName implements models.Model.
func (o apiObject) KeyName() string { return o.keyName }

// Fill implements models.Model (the view is already filled).
func (o apiObject) Fill() {}

// MarshalJSON renders the API form.
func (o apiObject) MarshalJSON() ([]byte, error) { return o.view, nil }

// GetObject implements pluginhost.Objects.
func (m *Module) GetObject(ctx context.Context, prefix, id string) (models.Model, error) {
	objs := m.s.Objects()
	r, err := objs.GetRendered(ctx, "GET", prefix, id, objects.RenderOptions{})
	if err != nil {
		return nil, err
	}
	k, _ := objs.Kind(prefix)
	hasParams := k.New == nil // RawModel kinds carry params
	if k.New != nil {
		_, hasParams = k.New().(models.Paramer)
	}
	return apiObject{prefix: prefix, key: r.Key, keyName: k.KeyField, hasParams: hasParams && !k.NoParams, view: r.JSON}, nil
}

// --- pluginhost.Params ---

// ParamDef implements pluginhost.Params.
func (m *Module) ParamDef(ctx context.Context, name string) (*models.Param, bool, error) {
	var p *models.Param
	var ok bool
	m.s.Objects().View(func(v objects.View) { p, ok = v.Param(name) })
	return p, ok, nil
}

// OwnParams implements pluginhost.Params (secure values decrypted).
func (m *Module) OwnParams(ctx context.Context, obj models.Model) (map[string]any, error) {
	return m.s.Objects().GetParams(ctx, obj.Prefix(), obj.Key(), objects.ParamOptions{Decode: true})
}

// AggregateParams implements pluginhost.Params (object, profiles, global;
// secure values decrypted).
func (m *Module) AggregateParams(ctx context.Context, obj models.Model) (map[string]any, error) {
	prefix, key := obj.Prefix(), obj.Key()
	hasParams := false
	if ao, ok := obj.(apiObject); ok {
		hasParams = ao.hasParams
	} else {
		_, hasParams = obj.(models.Paramer)
	}
	if !hasParams {
		// Objects without params (users, ...) resolve from the global
		// profile only.
		prefix, key = "profiles", objects.GlobalProfile
	}
	return m.s.Objects().GetParams(ctx, prefix, key, objects.ParamOptions{Aggregate: true, Decode: true})
}

// --- pluginhost.ProviderRecords ---

// SaveProvider implements pluginhost.ProviderRecords.
func (m *Module) SaveProvider(ctx context.Context, info *models.PluginProviderInfo) error {
	cp := *info
	cp.Content = ""
	_, err := m.s.Objects().Save(ctx, Principal, "plugin_providers", &cp)
	return err
}

// DeleteProviderRecord implements pluginhost.ProviderRecords.
func (m *Module) DeleteProviderRecord(ctx context.Context, name string) error {
	_, err := m.s.Objects().Delete(ctx, Principal, "plugin_providers", name)
	var me *models.Error
	if errors.As(err, &me) && me.Code == http.StatusNotFound {
		return nil
	}
	return err
}

// --- pluginhost.Kinds ---

// RegisterKind implements pluginhost.Kinds with a RawModel object kind.
func (m *Module) RegisterKind(ctx context.Context, prefix, provider string, indexes map[string]models.Index, validate func(models.RawModel) error) error {
	objs := m.s.Objects()
	m.mu.Lock()
	owner, owned := m.kinds[prefix]
	m.mu.Unlock()
	if _, exists := objs.Kind(prefix); exists {
		if !owned || owner != provider {
			return fmt.Errorf("object type %s already exists", prefix)
		}
		objs.Unregister(prefix)
	}
	k := objects.RawKind(prefix, indexes, func(v objects.View, obj models.Model) error {
		switch r := obj.(type) {
		case *models.RawModel:
			return validate(*r)
		case models.RawModel:
			return validate(r)
		}
		return fmt.Errorf("unexpected object type %T", obj)
	})
	if err := objs.Register(ctx, k); err != nil {
		return err
	}
	m.mu.Lock()
	m.kinds[prefix] = provider
	m.mu.Unlock()
	return nil
}

// UnregisterKind implements pluginhost.Kinds; stored objects are kept.
func (m *Module) UnregisterKind(ctx context.Context, prefix, provider string) error {
	m.mu.Lock()
	owner, owned := m.kinds[prefix]
	if owned && owner == provider {
		delete(m.kinds, prefix)
	}
	m.mu.Unlock()
	if owned && owner == provider {
		m.s.Objects().Unregister(prefix)
	}
	return nil
}

// --- pluginhost.Content ---

// layers stores plugin content packs as read-only layers written by the
// host's principal.
func (m *Module) layers() *contentlayer.Loader {
	return contentlayer.New(m.s.Objects(), Principal, m.s.Logger().With("component", "pluginhost"))
}

// AddPluginLayer implements pluginhost.Content with package contentlayer:
// the layer's objects are saved ReadOnly with Bundle set to the provider
// (as DRP shows them), objects of an older version of the layer that are
// gone are deleted, and a clash with a user object is a 409 unless
// replaceWritable (another bundle's object is always a 409). Saving is all
// or nothing. Sections for object types this server does not have are
// skipped. The server's own bundles (provision-base) cannot be taken over
// by a provider of the same name.
func (m *Module) AddPluginLayer(ctx context.Context, provider string, c *models.Content, replaceWritable bool) error {
	if m.s.IsServerBundle(provider) {
		return contentlayer.Error("plugin_providers", provider, http.StatusConflict,
			fmt.Sprintf("the name %s is reserved for the server's own content; rename the provider", provider))
	}
	clash := contentlayer.RefuseWritable
	if replaceWritable {
		clash = contentlayer.ReplaceWritable
	}
	return m.layers().Add(ctx, "plugin_providers", provider, c, clash)
}

// RemovePluginLayer implements pluginhost.Content.
func (m *Module) RemovePluginLayer(ctx context.Context, provider string) error {
	if m.s.IsServerBundle(provider) {
		return nil
	}
	m.layers().Remove(ctx, provider)
	return nil
}

var _ server.Module = (*Module)(nil)

// readyTimeout is how long WaitReady waits by default.
const readyTimeout = 2 * time.Minute

// WaitReady blocks until Ready or ctx ends (at most two minutes).
func (m *Module) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	select {
	case <-m.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GetPlugin implements pluginhost.Plugins.
func (m *Module) GetPlugin(ctx context.Context, name string) (*models.Plugin, error) {
	obj, err := m.s.Objects().Get(ctx, "plugins", name)
	if err != nil {
		var me *models.Error
		if errors.As(err, &me) && me.Code == http.StatusNotFound {
			return nil, nil
		}
		return nil, err
	}
	p, _ := obj.(*models.Plugin)
	return p, nil
}
