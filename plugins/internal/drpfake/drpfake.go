// Package drpfake is a stateful TLS fake of the part of provisiond's
// /api/v3 that the bundled plugins call back into, for plugin tests until
// (and besides) a real server harness: machines (create with generated
// Uuid and unique Name, get, list with Eq filters on Name or params, JSON
// patch with test operations, delete), aggregated params (machine, then the
// global profile), plugin params, and the /api/v3/ws event stream with
// DRP's register/deregister acknowledgements. Every request must carry the
// bearer token. It is only imported by tests.
package drpfake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
)

// Token is the bearer token the fake accepts.
const Token = "drpfake-test-token"

// Server is the fake API.
type Server struct {
	// URL is the https base URL (RS_ENDPOINT).
	URL string

	srv      *httptest.Server
	mu       sync.Mutex
	machines map[string]map[string]any // uuid -> machine JSON
	global   map[string]any
	plugins  map[string]map[string]any // plugin name -> params
	streams  map[*stream]bool
}

type stream struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	filters map[string]models.EventFilter
}

// New starts a fake that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	f := &Server{machines: map[string]map[string]any{}, global: map[string]any{},
		plugins: map[string]map[string]any{}, streams: map[*stream]bool{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// Client returns a real API client for the fake.
func (f *Server) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(f.URL, client.Options{Token: Token, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Env returns RS_ENDPOINT and RS_TOKEN for a plugin under test.
func (f *Server) Env() map[string]string {
	return map[string]string{"RS_ENDPOINT": f.URL, "RS_TOKEN": Token}
}

// SetGlobal sets a param on the global profile.
func (f *Server) SetGlobal(name string, v any) {
	f.mu.Lock()
	f.global[name] = v
	f.mu.Unlock()
}

// SetPluginParam sets a param on a Plugin object.
func (f *Server) SetPluginParam(plugin, name string, v any) {
	f.mu.Lock()
	if f.plugins[plugin] == nil {
		f.plugins[plugin] = map[string]any{}
	}
	f.plugins[plugin][name] = v
	f.mu.Unlock()
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, r *http.Request, code int, key, msg string) {
	reply(w, code, &models.Error{Model: "machines", Key: key, Type: r.Method, Code: code, Messages: []string{msg}})
}

var eqRE = regexp.MustCompile(`^Eq\((.*)\)$`)

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+Token {
		apiErr(w, r, http.StatusForbidden, "", "bad token")
		return
	}
	if r.URL.Path == "/api/v3/ws" {
		f.serveWS(w, r)
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/api/v3/"), "/", 4)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case parts[0] == "plugins" && len(parts) == 4 && parts[2] == "params" && r.Method == http.MethodGet:
		v, ok := f.plugins[parts[1]][parts[3]]
		if !ok && r.URL.Query().Get("aggregate") == "true" {
			v = f.global[parts[3]]
		}
		reply(w, http.StatusOK, v)
	case parts[0] != "machines":
		apiErr(w, r, http.StatusNotFound, r.URL.Path, "No route")
	case len(parts) == 1 && r.Method == http.MethodGet:
		f.list(w, r)
	case len(parts) == 1 && r.Method == http.MethodPost:
		f.create(w, r)
	case len(parts) == 2:
		f.object(w, r, parts[1])
	case len(parts) == 3 && parts[2] == "params" && r.Method == http.MethodGet:
		m, ok := f.machines[parts[1]]
		if !ok {
			apiErr(w, r, http.StatusNotFound, parts[1], "Not Found")
			return
		}
		out := map[string]any{}
		if r.URL.Query().Get("aggregate") == "true" {
			for k, v := range f.global {
				out[k] = v
			}
		}
		if p, ok := m["Params"].(map[string]any); ok {
			for k, v := range p {
				out[k] = v
			}
		}
		reply(w, http.StatusOK, out)
	default:
		apiErr(w, r, http.StatusNotFound, r.URL.Path, "No route")
	}
}

func (f *Server) list(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	keys := make([]string, 0, len(f.machines))
	for k := range f.machines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
next:
	for _, k := range keys {
		m := f.machines[k]
		for param, vals := range r.URL.Query() {
			mm := eqRE.FindStringSubmatch(vals[0])
			if mm == nil {
				apiErr(w, r, http.StatusBadRequest, "", "unsupported filter "+vals[0])
				return
			}
			var got any
			if param == "Name" {
				got = m["Name"]
			} else if p, ok := m["Params"].(map[string]any); ok {
				got = p[param]
			}
			if s, _ := got.(string); s != mm[1] {
				continue next
			}
		}
		out = append(out, m)
	}
	reply(w, http.StatusOK, out)
}

func (f *Server) create(w http.ResponseWriter, r *http.Request) {
	var m models.Machine
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		apiErr(w, r, http.StatusBadRequest, "", err.Error())
		return
	}
	if m.Name == "" {
		apiErr(w, r, http.StatusUnprocessableEntity, "", "machine needs a Name")
		return
	}
	for _, o := range f.machines {
		if o["Name"] == m.Name {
			apiErr(w, r, http.StatusConflict, m.Name, "already exists")
			return
		}
	}
	if m.Uuid == uuid.Nil {
		m.Uuid = uuid.New()
	}
	if _, dup := f.machines[m.UUID()]; dup {
		apiErr(w, r, http.StatusConflict, m.UUID(), "already exists")
		return
	}
	raw := fill(&m)
	f.machines[m.UUID()] = raw
	reply(w, http.StatusCreated, raw)
}

func fill(m *models.Machine) map[string]any {
	m.Fill()
	var raw map[string]any
	_ = models.Remarshal(m, &raw)
	return raw
}

func (f *Server) object(w http.ResponseWriter, r *http.Request, key string) {
	m, ok := f.machines[key]
	if !ok {
		apiErr(w, r, http.StatusNotFound, key, "Not Found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		reply(w, http.StatusOK, m)
	case http.MethodDelete:
		delete(f.machines, key)
		reply(w, http.StatusOK, m)
	case http.MethodPatch:
		body, _ := io.ReadAll(r.Body)
		p, err := jsonpatch2.NewPatch(body)
		if err != nil {
			apiErr(w, r, http.StatusBadRequest, key, err.Error())
			return
		}
		base, _ := json.Marshal(m)
		res, err, _ := p.Apply(base)
		if err != nil {
			apiErr(w, r, http.StatusConflict, key, "Patch error: "+err.Error())
			return
		}
		var nm map[string]any
		if err := json.Unmarshal(res, &nm); err != nil || nm["Uuid"] != key {
			apiErr(w, r, http.StatusUnprocessableEntity, key, "bad patch result")
			return
		}
		f.machines[key] = nm
		reply(w, http.StatusOK, nm)
	default:
		apiErr(w, r, http.StatusMethodNotAllowed, key, "method")
	}
}

// Machines returns copies of the stored machines, keyed by Name.
func (f *Server) Machines(t testing.TB) map[string]*models.Machine {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]*models.Machine{}
	for _, raw := range f.machines {
		m := &models.Machine{}
		if err := models.Remarshal(raw, m); err != nil {
			t.Fatal(err)
		}
		out[m.Name] = m
	}
	return out
}

// AddMachine stores a machine directly (as if someone else created it) and
// returns it filled, with its Uuid.
func (f *Server) AddMachine(t testing.TB, m *models.Machine) *models.Machine {
	t.Helper()
	if m.Uuid == uuid.Nil {
		m.Uuid = uuid.New()
	}
	raw := fill(m)
	f.mu.Lock()
	f.machines[m.UUID()] = raw
	f.mu.Unlock()
	return m
}

// serveWS is /api/v3/ws: "register <filter>" / "deregister <filter>"
// frames are acknowledged with a websocket event whose Key is the filter.
func (f *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	s := &stream{conn: conn, filters: map[string]models.EventFilter{}}
	f.mu.Lock()
	f.streams[s] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.streams, s)
		f.mu.Unlock()
		_ = conn.CloseNow()
	}()
	ctx := r.Context()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		verb, filter, _ := strings.Cut(string(data), " ")
		if verb != "register" && verb != "deregister" {
			continue
		}
		s.mu.Lock()
		if verb == "register" {
			if ef, err := models.ParseEventFilter(filter); err == nil {
				s.filters[filter] = ef
			}
		} else {
			delete(s.filters, filter)
		}
		s.mu.Unlock()
		_ = s.send(ctx, models.Event{Time: time.Now(), Type: "websocket", Action: verb, Key: filter})
	}
}

func (s *stream) send(ctx context.Context, e models.Event) error {
	buf, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.conn.Write(wctx, websocket.MessageText, buf)
}

// Subscribers counts the streams that registered a filter matching e.
func (f *Server) Subscribers(e *models.Event) int {
	n := 0
	for _, s := range f.snapshot() {
		s.mu.Lock()
		for _, ef := range s.filters {
			if ef.Match(e) {
				n++
				break
			}
		}
		s.mu.Unlock()
	}
	return n
}

func (f *Server) snapshot() []*stream {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*stream, 0, len(f.streams))
	for s := range f.streams {
		out = append(out, s)
	}
	return out
}

// Publish sends e to every stream with a matching filter and returns how
// many received it.
func (f *Server) Publish(e models.Event) int {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	n := 0
	for _, s := range f.snapshot() {
		s.mu.Lock()
		match := false
		for _, ef := range s.filters {
			if ef.Match(&e) {
				match = true
				break
			}
		}
		s.mu.Unlock()
		if match && s.send(context.Background(), e) == nil {
			n++
		}
	}
	return n
}
