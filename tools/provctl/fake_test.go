package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
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
	"github.com/provisionhq/provision/models"
)

// fakeServer is a stateful in-memory imitation of the /api/v3 surface
// provctl uses, for fast tests of argument handling and output. It checks
// credentials, keeps objects as JSON documents, applies JSON Patches with
// jsonpatch2 (failing test ops give 409 and change nothing), resolves
// Name:<x> ids, serves params (with aggregate over the global profile),
// actions, provider binaries, tokens, passwords, events and the websocket.
// The end-to-end tests run the same commands against the real provisiond.
type fakeServer struct {
	t *testing.T

	mu        sync.Mutex
	objs      map[string]map[string]map[string]any // prefix -> key -> object
	binaries  map[string][]byte
	passwords map[string]string
	tokens    map[string]string // token -> user
	actions   []map[string]any  // recorded action invocations
	wsConns   map[*websocket.Conn]map[string]bool
	changed   chan struct{}
	// keyFields maps each collection the fake serves to its key field.
	keyFields map[string]string
}

func newFakeServer(t *testing.T) (*fakeServer, *httptest.Server) {
	f := &fakeServer{
		t:         t,
		objs:      map[string]map[string]map[string]any{},
		binaries:  map[string][]byte{},
		passwords: map[string]string{"rocketskates": "r0cket"},
		tokens:    map[string]string{"admin-token": "rocketskates"},
		wsConns:   map[*websocket.Conn]map[string]bool{},
		changed:   make(chan struct{}),
		keyFields: map[string]string{
			"machines": "Uuid", "profiles": "Name", "params": "Name", "users": "Name",
			"plugins": "Name", "plugin_providers": "Name",
		},
	}
	for p := range f.keyFields {
		f.objs[p] = map[string]map[string]any{}
	}
	f.objs["profiles"]["global"] = map[string]any{"Name": "global", "Params": map[string]any{"g/param": "from-global"}}
	f.objs["users"]["rocketskates"] = map[string]any{"Name": "rocketskates", "Roles": []any{"superuser"}}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeServer) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeServer) object(prefix, key string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, _ := models.Clone(f.objs[prefix][key])
	return o
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, typ, model, key, msg string) {
	reply(w, code, &models.Error{Type: typ, Model: model, Key: key, Messages: []string{msg}, Code: code})
}

func (f *fakeServer) authenticate(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
		f.mu.Lock()
		defer f.mu.Unlock()
		_, found := f.tokens[tok]
		return found
	}
	if b, ok := strings.CutPrefix(a, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return false
		}
		u, p, _ := strings.Cut(string(raw), ":")
		f.mu.Lock()
		defer f.mu.Unlock()
		return p != "" && f.passwords[u] == p
	}
	return false
}

// resolve finds the key of id (a key or <Field>:<value>); call with f.mu held.
func (f *fakeServer) resolve(prefix, id string) (string, bool) {
	coll := f.objs[prefix]
	if _, ok := coll[id]; ok {
		return id, true
	}
	field, val, ok := strings.Cut(id, ":")
	if !ok {
		return "", false
	}
	for k, o := range coll {
		if fmt.Sprint(o[field]) == val {
			return k, true
		}
	}
	return "", false
}

var filterRE = regexp.MustCompile(`^(Eq|Ne|Re)\((.*)\)$`)

func matches(o map[string]any, field, spec string) bool {
	v := fmt.Sprint(o[field])
	m := filterRE.FindStringSubmatch(spec)
	if m == nil {
		return v == spec
	}
	switch m[1] {
	case "Eq":
		return v == m[2]
	case "Ne":
		return v != m[2]
	default:
		re, err := regexp.Compile(m[2])
		return err == nil && re.MatchString(v)
	}
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	if !f.authenticate(r) {
		fail(w, http.StatusForbidden, "AUTH", "", "", "Forbidden")
		return
	}
	if r.URL.Path != "/api/v3/ws" && (r.Header.Get("Accept") == "" || r.Header.Get("Cache-Control") != "no-store") {
		fail(w, http.StatusBadRequest, "HEADERS", "", "", "missing Accept or Cache-Control")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v3/")
	if !ok {
		fail(w, http.StatusNotFound, r.Method, "", r.URL.Path, "No route")
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case path == "ws":
		f.serveWS(w, r)
		return
	case path == "info":
		reply(w, 200, &models.Info{Version: "fake", ApiPort: 8092, Arch: "amd64", Os: "linux", Id: "fake-id"})
		return
	case path == "events" && r.Method == http.MethodPost:
		var e models.Event
		if err := json.Unmarshal(body, &e); err != nil || e.Type == "" {
			fail(w, 400, "POST", "events", "", "bad event")
			return
		}
		f.broadcast(e)
		w.WriteHeader(http.StatusNoContent)
		return
	case strings.HasPrefix(path, "system/actions"):
		f.serveActions(w, r, "system", "", strings.TrimPrefix(strings.TrimPrefix(path, "system/actions"), "/"), body)
		return
	}
	parts := strings.SplitN(path, "/", 4)
	prefix := parts[0]
	if _, ok := f.keyFields[prefix]; !ok {
		fail(w, 404, r.Method, "", "/api/v3/"+path, "No route")
		return
	}
	if len(parts) == 1 {
		f.serveCollection(w, r, prefix, body)
		return
	}
	f.mu.Lock()
	key, found := f.resolve(prefix, parts[1])
	f.mu.Unlock()
	if len(parts) == 2 && r.Method == http.MethodPost && prefix == "plugin_providers" {
		f.mu.Lock()
		f.binaries[parts[1]] = body
		f.objs[prefix][parts[1]] = map[string]any{"Name": parts[1], "Version": "v1"}
		f.mu.Unlock()
		reply(w, http.StatusCreated, &models.PluginProviderUploadInfo{Path: parts[1], Size: int64(len(body))})
		return
	}
	if !found {
		if r.Method == http.MethodHead {
			w.WriteHeader(404)
			return
		}
		fail(w, 404, r.Method, prefix, parts[1], "Not Found")
		return
	}
	if len(parts) == 2 {
		f.serveObject(w, r, prefix, key, body)
		return
	}
	sub := parts[2]
	rest := ""
	if len(parts) == 4 {
		rest = parts[3]
	}
	switch sub {
	case "params":
		f.serveParams(w, r, prefix, key, rest, body)
	case "actions":
		f.serveActions(w, r, prefix, key, rest, body)
	case "binary":
		f.mu.Lock()
		b := f.binaries[key]
		f.mu.Unlock()
		if r.Header.Get("Accept") != "application/octet-stream" {
			fail(w, 406, "GET", prefix, key, "binary downloads need Accept: application/octet-stream")
			return
		}
		_, _ = w.Write(b)
	case "token":
		if v := r.URL.Query().Get("ttl"); v != "" && v != "3600" {
			fail(w, 400, "GET", prefix, key, "unexpected ttl "+v)
			return
		}
		tok := "tok-" + uuid.NewString()
		f.mu.Lock()
		f.tokens[tok] = key
		f.mu.Unlock()
		reply(w, 200, &models.UserToken{Token: tok})
	case "password":
		var up models.UserPassword
		if r.Method != http.MethodPut || json.Unmarshal(body, &up) != nil || up.Password == "" {
			fail(w, 400, r.Method, prefix, key, "bad password request")
			return
		}
		f.mu.Lock()
		f.passwords[key] = up.Password
		u := f.objs[prefix][key]
		f.mu.Unlock()
		reply(w, 200, u)
	default:
		fail(w, 404, r.Method, "", "/api/v3/"+path, "No route")
	}
}

func (f *fakeServer) serveCollection(w http.ResponseWriter, r *http.Request, prefix string, body []byte) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		res := []map[string]any{}
		for _, o := range f.objs[prefix] {
			ok := true
			for field, specs := range r.URL.Query() {
				if field == "limit" {
					continue
				}
				for _, s := range specs {
					ok = ok && matches(o, field, s)
				}
			}
			if ok {
				res = append(res, o)
			}
		}
		f.mu.Unlock()
		kf := f.keyFields[prefix]
		sort.Slice(res, func(i, j int) bool { return fmt.Sprint(res[i][kf]) < fmt.Sprint(res[j][kf]) })
		if l := r.URL.Query().Get("limit"); l != "" {
			var n int
			fmt.Sscan(l, &n)
			res = res[:min(n, len(res))]
		}
		reply(w, 200, res)
	case http.MethodPost:
		var o map[string]any
		if err := json.Unmarshal(body, &o); err != nil || r.Header.Get("Content-Type") != "application/json" {
			fail(w, 400, "CREATE", prefix, "", "body must be a JSON object")
			return
		}
		kf := f.keyFields[prefix]
		if kf == "Uuid" && o[kf] == nil {
			o[kf] = uuid.NewString()
		}
		key, _ := o[kf].(string)
		if key == "" {
			fail(w, 400, "CREATE", prefix, "", "Empty key not allowed")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, dup := f.objs[prefix][key]; dup {
			fail(w, 409, "CREATE", prefix, key, "already exists")
			return
		}
		if _, ok := o["Params"]; !ok && prefix != "params" && prefix != "users" {
			o["Params"] = map[string]any{}
		}
		f.objs[prefix][key] = o
		reply(w, 201, o)
	default:
		fail(w, 405, r.Method, prefix, "", "Method not allowed")
	}
}

func (f *fakeServer) serveObject(w http.ResponseWriter, r *http.Request, prefix, key string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objs[prefix][key]
	switch r.Method {
	case http.MethodHead:
		w.WriteHeader(200)
	case http.MethodGet:
		reply(w, 200, o)
	case http.MethodDelete:
		delete(f.objs[prefix], key)
		reply(w, 200, o)
	case http.MethodPatch:
		p, err := jsonpatch2.NewPatch(body)
		if err != nil {
			fail(w, 400, "PATCH", prefix, key, err.Error())
			return
		}
		cur, _ := json.Marshal(o)
		res, err, loc := p.Apply(cur)
		if err != nil {
			fail(w, 409, "PATCH", prefix, key, fmt.Sprintf("patch op %d failed: %v", loc, err))
			return
		}
		var n map[string]any
		_ = json.Unmarshal(res, &n)
		f.objs[prefix][key] = n
		reply(w, 200, n)
	default:
		fail(w, 405, r.Method, prefix, key, "Method not allowed")
	}
}

func (f *fakeServer) serveParams(w http.ResponseWriter, r *http.Request, prefix, key, name string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objs[prefix][key]
	params, _ := o["Params"].(map[string]any)
	if params == nil {
		params = map[string]any{}
		o["Params"] = params
	}
	view := params
	if r.URL.Query().Get("aggregate") == "true" {
		view = map[string]any{}
		for k, v := range f.objs["profiles"]["global"]["Params"].(map[string]any) {
			view[k] = v
		}
		for k, v := range params {
			view[k] = v
		}
	}
	if name == "" {
		switch r.Method {
		case http.MethodGet:
			reply(w, 200, view)
		case http.MethodPost:
			var np map[string]any
			if err := json.Unmarshal(body, &np); err != nil {
				fail(w, 400, "POST", prefix, key, "params must be an object")
				return
			}
			o["Params"] = np
			reply(w, 200, np)
		default:
			fail(w, 405, r.Method, prefix, key, "Method not allowed")
		}
		return
	}
	switch r.Method {
	case http.MethodGet:
		reply(w, 200, view[name])
	case http.MethodPost:
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			fail(w, 400, "POST", prefix, key, "value must be JSON")
			return
		}
		params[name] = v
		reply(w, 200, v)
	case http.MethodDelete:
		old := params[name]
		delete(params, name)
		reply(w, 200, old)
	default:
		fail(w, 405, r.Method, prefix, key, "Method not allowed")
	}
}

// serveActions offers "echo" everywhere (returns its params) and "count"
// on the system scope; only plugin "p1" exists.
func (f *fakeServer) serveActions(w http.ResponseWriter, r *http.Request, prefix, key, cmd string, body []byte) {
	plugin := r.URL.Query().Get("plugin")
	if plugin != "" && plugin != "p1" {
		fail(w, 400, "GET", prefix, key, "Action "+cmd+" on "+prefix+" for plugin "+plugin+" not found")
		return
	}
	model := prefix
	if prefix == "system" {
		model = ""
	}
	avail := []models.AvailableAction{{Provider: "fake", Model: model, Command: "echo", RequiredParams: []string{}, OptionalParams: []string{}}}
	if cmd == "" {
		reply(w, 200, avail)
		return
	}
	if cmd != "echo" {
		typ := "GET"
		if r.Method == http.MethodPost {
			typ = "INVOKE"
		}
		fail(w, 400, typ, prefix, key, "Action "+cmd+" on "+prefix+": Not Found")
		return
	}
	if r.Method == http.MethodGet {
		reply(w, 200, avail[0])
		return
	}
	var params map[string]any
	if err := json.Unmarshal(body, &params); err != nil {
		fail(w, 400, "INVOKE", prefix, key, "params must be a JSON object")
		return
	}
	f.mu.Lock()
	f.actions = append(f.actions, map[string]any{"prefix": prefix, "key": key, "cmd": cmd, "plugin": plugin, "params": params,
		"timeout": r.URL.Query().Get("timeout")})
	f.mu.Unlock()
	reply(w, 200, params)
}

func (f *fakeServer) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.wsConns[c] = map[string]bool{}
	f.notify()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.wsConns, c)
		f.notify()
		f.mu.Unlock()
		_ = c.CloseNow()
	}()
	for {
		_, data, err := c.Read(r.Context())
		if err != nil {
			return
		}
		verb, filter, _ := strings.Cut(string(data), " ")
		f.mu.Lock()
		switch verb {
		case "register":
			f.wsConns[c][filter] = true
		case "deregister":
			delete(f.wsConns[c], filter)
		}
		f.notify()
		f.mu.Unlock()
		ack, _ := json.Marshal(&models.Event{Type: "websocket", Action: verb, Key: filter})
		if err := c.Write(r.Context(), websocket.MessageText, ack); err != nil {
			return
		}
	}
}

// broadcast sends e to websockets with a filter whose type part is * or e.Type.
func (f *fakeServer) broadcast(e models.Event) {
	buf, _ := json.Marshal(&e)
	f.mu.Lock()
	var targets []*websocket.Conn
	for c, filters := range f.wsConns {
		for flt := range filters {
			typ, _, _ := strings.Cut(flt, ".")
			if typ == "*" || typ == e.Type {
				targets = append(targets, c)
				break
			}
		}
	}
	f.mu.Unlock()
	for _, c := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = c.Write(ctx, websocket.MessageText, buf)
		cancel()
	}
}

// registered reports whether some websocket has registered filter.
func (f *fakeServer) registered(filter string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range f.wsConns {
		if fl[filter] {
			return true
		}
	}
	return false
}
