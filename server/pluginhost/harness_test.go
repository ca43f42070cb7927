package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
)

func TestMain(m *testing.M) {
	// Plugins started by these tests run through the real sandbox
	// helper: this test binary.
	sandbox.Main()
	code := m.Run()
	testplugins.Cleanup()
	os.Exit(code)
}

// installBinary copies a fake plugin variant into dir under name.
func installBinary(t testing.TB, dir, variant, name string) string {
	return testplugins.Install(t, dir, variant, name)
}

// testBus is a small bounded, non-blocking bus for the library tests (the
// "under provisiond" tests use the server's real bus).
type testBus struct {
	mu     sync.Mutex
	subs   map[*testSub]bool
	events []models.Event
}

type testSub struct {
	b       *testBus
	ch      chan models.Event
	match   func(*models.Event) bool
	dropped atomic.Uint64
	once    sync.Once
}

func (s *testSub) C() <-chan models.Event { return s.ch }
func (s *testSub) Dropped() uint64        { return s.dropped.Load() }
func (s *testSub) Close() {
	s.once.Do(func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		close(s.ch)
	})
}

func (b *testBus) Publish(e models.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, e)
	for s := range b.subs {
		if s.match != nil && !s.match(&e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

func (b *testBus) Subscribe(name string, n int, match func(*models.Event) bool) Subscription {
	s := &testSub{b: b, ch: make(chan models.Event, n), match: match}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*testSub]bool{}
	}
	b.subs[s] = true
	b.mu.Unlock()
	return s
}

func (b *testBus) find(typ, action, key string) *models.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.events {
		e := b.events[i]
		if e.Type == typ && e.Action == action && (key == "" || e.Key == key) {
			return &e
		}
	}
	return nil
}

func (b *testBus) count(typ, action, key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.events {
		if e.Type == typ && e.Action == action && (key == "" || e.Key == key) {
			n++
		}
	}
	return n
}

// fakeServer implements Deps in memory for the library tests, with a real
// HTTP API endpoint for plugin callbacks that checks tokens.
type fakeServer struct {
	t    testing.TB
	mu   sync.Mutex
	host *Host

	plugins  map[string]*models.Plugin
	machines map[string]*models.Machine
	profiles map[string]*models.Profile
	params   map[string]*models.Param // user-created params
	layers   map[string]*models.Content
	kinds    map[string]func(models.RawModel) error
	raws     map[string]map[string]models.RawModel
	tokens   map[string]string
	bus      *testBus
	api      *httptest.Server
	reg      *prometheus.Registry
	root     string
}

func newFakeServer(t testing.TB) *fakeServer {
	s := &fakeServer{
		t: t, plugins: map[string]*models.Plugin{}, machines: map[string]*models.Machine{},
		profiles: map[string]*models.Profile{"global": {Name: "global", Params: map[string]any{}}},
		params:   map[string]*models.Param{}, layers: map[string]*models.Content{},
		kinds: map[string]func(models.RawModel) error{}, raws: map[string]map[string]models.RawModel{},
		tokens: map[string]string{}, bus: &testBus{}, reg: prometheus.NewRegistry(),
		root: t.TempDir(),
	}
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(s.api.Close)
	return s
}

// config returns a host config with short limits so failures show fast.
func (s *fakeServer) config() Config {
	return Config{
		PluginRoot: filepath.Join(s.root, "plugins"), FileRoot: filepath.Join(s.root, "tftpboot"),
		APIURL: s.api.URL, FileURL: "http://127.0.0.1:1",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: s.reg, DefineTimeout: 30 * time.Second, ReadyTimeout: 10 * time.Second,
		ConfigTimeout: 10 * time.Second, StopGrace: 2 * time.Second, DrainTimeout: 5 * time.Second,
		HealthInterval: 200 * time.Millisecond, HealthTimeout: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, HealthyAfter: time.Minute,
	}
}

func (s *fakeServer) deps() Deps {
	return Deps{Tokens: s, Plugins: s, Objects: s, Params: s, Content: s, Kinds: s, Bus: s.bus}
}

// start builds and starts a host; it is closed at cleanup.
func (s *fakeServer) start(cfg Config) *Host {
	s.t.Helper()
	if err := os.MkdirAll(cfg.PluginRoot, 0o750); err != nil {
		s.t.Fatal(err)
	}
	h, err := New(cfg, s.deps())
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.host = h
	s.mu.Unlock()
	if err := h.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { h.Close() })
	return h
}

func (s *fakeServer) MintToken(ctx context.Context, principal string, claims []models.Claim, ttl time.Duration) (string, func(), error) {
	tok := uuid.NewString()
	s.mu.Lock()
	s.tokens[tok] = principal
	s.mu.Unlock()
	return tok, func() {
		s.mu.Lock()
		delete(s.tokens, tok)
		s.mu.Unlock()
	}, nil
}

func (s *fakeServer) ListPlugins(ctx context.Context) ([]*models.Plugin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*models.Plugin
	for _, p := range s.plugins {
		cp, _ := models.Clone(p)
		out = append(out, cp)
	}
	return out, nil
}

func (s *fakeServer) GetPlugin(ctx context.Context, name string) (*models.Plugin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.plugins[name]
	if !ok {
		return nil, nil
	}
	return models.Clone(p)
}

func (s *fakeServer) CreatePlugin(ctx context.Context, p *models.Plugin) error {
	s.mu.Lock()
	if _, ok := s.plugins[p.Name]; ok {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	s.savePlugin(p)
	return nil
}

// savePlugin stores p and calls the host hook, as the server does.
func (s *fakeServer) savePlugin(p *models.Plugin) {
	cp, _ := models.Clone(p)
	cp.Fill()
	s.mu.Lock()
	if old, ok := s.plugins[cp.Name]; ok {
		cp.PluginErrors = old.PluginErrors
	}
	s.plugins[cp.Name] = cp
	h := s.host
	s.mu.Unlock()
	if h != nil {
		h.PluginSaved(cp)
	}
}

func (s *fakeServer) deletePlugin(name string) {
	s.mu.Lock()
	delete(s.plugins, name)
	h := s.host
	s.mu.Unlock()
	h.PluginDeleted(name)
}

func (s *fakeServer) SetPluginErrors(ctx context.Context, name string, errs []string) error {
	s.mu.Lock()
	p, ok := s.plugins[name]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	cp, _ := models.Clone(p)
	cp.PluginErrors = append([]string{}, errs...)
	s.plugins[name] = cp
	h := s.host
	s.mu.Unlock()
	if h != nil {
		h.PluginSaved(cp) // the real server's change hook fires here too
	}
	return nil
}

func (s *fakeServer) pluginErrors(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.plugins[name]; ok {
		return append([]string{}, p.PluginErrors...)
	}
	return nil
}

func notFound(prefix, id string) error {
	return &models.Error{Model: prefix, Key: id, Type: "GET", Code: 404, Messages: []string{"Not Found"}}
}

func (s *fakeServer) GetObject(ctx context.Context, prefix, id string) (models.Model, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch prefix {
	case "machines":
		for _, m := range s.machines {
			if m.Uuid.String() == id || "Name:"+m.Name == id {
				cp, _ := models.Clone(m)
				return cp, nil
			}
		}
	case "profiles":
		if p, ok := s.profiles[id]; ok {
			cp, _ := models.Clone(p)
			return cp, nil
		}
	case "plugins":
		if p, ok := s.plugins[id]; ok {
			cp, _ := models.Clone(p)
			return cp, nil
		}
	default:
		if _, ok := s.kinds[prefix]; ok {
			if r, ok := s.raws[prefix][id]; ok {
				cp, _ := models.Clone(r)
				return cp, nil
			}
		}
	}
	return nil, notFound(prefix, id)
}

func (s *fakeServer) paramDef(name string) *models.Param {
	if p, ok := s.params[name]; ok {
		return p
	}
	for _, c := range s.layers {
		if raw, ok := c.Sections["params"][name]; ok {
			p := &models.Param{}
			if models.Remarshal(raw, p) == nil {
				return p
			}
		}
	}
	return nil
}

func (s *fakeServer) ParamDef(ctx context.Context, name string) (*models.Param, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.paramDef(name)
	return p, p != nil, nil
}

func (s *fakeServer) OwnParams(ctx context.Context, obj models.Model) (map[string]any, error) {
	pr, ok := obj.(models.Paramer)
	if !ok {
		return map[string]any{}, nil
	}
	out := map[string]any{}
	for k, v := range pr.GetParams() {
		out[k] = v
	}
	return out, nil
}

func (s *fakeServer) AggregateParams(ctx context.Context, obj models.Model) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var srcs []map[string]any
	if pr, ok := obj.(models.Paramer); ok {
		srcs = append(srcs, pr.GetParams())
	}
	if pf, ok := obj.(models.Profiler); ok {
		for _, pn := range pf.GetProfiles() {
			if p, ok := s.profiles[pn]; ok {
				srcs = append(srcs, p.Params)
			}
		}
	}
	srcs = append(srcs, s.profiles["global"].Params)
	out := map[string]any{}
	for i := len(srcs) - 1; i >= 0; i-- {
		for k, v := range srcs[i] {
			out[k] = v
		}
	}
	return out, nil
}

func (s *fakeServer) AddPluginLayer(ctx context.Context, provider string, c *models.Content, replaceWritable bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var clashes []string
	for name := range c.Sections["params"] {
		if _, ok := s.params[name]; ok {
			clashes = append(clashes, "params/"+name)
		}
	}
	if len(clashes) > 0 && !replaceWritable {
		return &models.Error{Model: "contents", Key: provider, Type: "STORE_ERROR", Code: 409,
			Messages: []string{"would replace writable objects: " + strings.Join(clashes, ", ")}}
	}
	for _, c := range clashes {
		delete(s.params, strings.TrimPrefix(c, "params/"))
	}
	s.layers[provider] = c
	for prefix, objs := range c.Sections {
		if _, ok := s.kinds[prefix]; !ok {
			continue
		}
		if s.raws[prefix] == nil {
			s.raws[prefix] = map[string]models.RawModel{}
		}
		for key, o := range objs {
			r := models.RawModel{}
			_ = models.Remarshal(o, &r)
			r.Fill()
			s.raws[prefix][key] = r
		}
	}
	return nil
}

func (s *fakeServer) RemovePluginLayer(ctx context.Context, provider string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.layers, provider)
	return nil
}

func (s *fakeServer) RegisterKind(ctx context.Context, prefix, provider string, indexes map[string]models.Index, validate func(models.RawModel) error) error {
	if prefix == "machines" {
		return errors.New("built-in")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinds[prefix] = validate
	return nil
}

func (s *fakeServer) UnregisterKind(ctx context.Context, prefix, provider string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kinds, prefix)
	return nil
}

func (s *fakeServer) addMachine(name string, params map[string]any, profiles ...string) *models.Machine {
	m := &models.Machine{Name: name, Uuid: uuid.New(), Params: params, Profiles: profiles}
	m.Fill()
	s.mu.Lock()
	s.machines[m.Uuid.String()] = m
	s.mu.Unlock()
	return m
}

// serveAPI is RS_ENDPOINT for plugin callbacks:
// GET /api/v3/machines/<uuid>/params/<name>.
func (s *fakeServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	_, ok := s.tokens[tok]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, 403, &models.Error{Type: "AUTH", Code: 403, Messages: []string{"Forbidden"}})
		return
	}
	rest, found := strings.CutPrefix(r.URL.Path, "/api/v3/machines/")
	if !found {
		writeJSON(w, 404, &models.Error{Type: r.Method, Code: 404, Messages: []string{"No route"}})
		return
	}
	id, param, _ := strings.Cut(rest, "/params/")
	s.mu.Lock()
	m, ok := s.machines[id]
	var v any
	if ok {
		v = m.Params[param]
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, 404, notFound("machines", id))
		return
	}
	writeJSON(w, 200, v)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRunning waits until the plugin answers actions.
func waitRunning(t testing.TB, h *Host, name string) *process {
	t.Helper()
	var p *process
	waitFor(t, 20*time.Second, "plugin "+name+" running", func() bool {
		in := h.instance(name)
		if in == nil {
			return false
		}
		var err *models.Error
		p, err = in.current()
		return err == nil
	})
	return p
}

func runAction(t testing.TB, h *Host, req ActionRequest) (any, *models.Error) {
	t.Helper()
	raw, err := h.RunAction(context.Background(), req)
	if err != nil {
		var me *models.Error
		if !errors.As(err, &me) {
			t.Fatalf("RunAction %s: non-models error %v", req.Command, err)
		}
		return nil, me
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("RunAction %s: bad JSON %s", req.Command, raw)
	}
	return v, nil
}

// runningPlugin starts a host with the fake provider in mode installed
// under plugin.Provider's name, saves plugin and waits until it runs.
// edit, when not nil, adjusts the host config first.
func runningPlugin(t *testing.T, mode string, plugin *models.Plugin, edit func(*Config)) (*fakeServer, *Host, *process) {
	t.Helper()
	s := newFakeServer(t)
	cfg := s.config()
	if edit != nil {
		edit(&cfg)
	}
	installBinary(t, cfg.PluginRoot, mode, plugin.Provider)
	h := s.start(cfg)
	s.savePlugin(plugin)
	return s, h, waitRunning(t, h, plugin.Name)
}
