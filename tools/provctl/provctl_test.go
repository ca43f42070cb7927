package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// cli runs provctl commands in-process against one endpoint.
type cli struct {
	t   *testing.T
	env map[string]string
}

type result struct {
	out, err string
	code     int
}

func (c *cli) runIn(ctx context.Context, stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	a := &app{getenv: func(k string) string { return c.env[k] }, in: strings.NewReader(stdin), out: &out, err: &errOut}
	code := a.run(ctx, args)
	return result{out.String(), errOut.String(), code}
}

func (c *cli) run(args ...string) result { return c.runIn(context.Background(), "", args...) }

// ok runs a command that must succeed and decodes its JSON output into v.
func (c *cli) ok(v any, args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("provctl %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.err)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.out), v); err != nil {
			c.t.Fatalf("provctl %s: output %q is not JSON: %v", strings.Join(args, " "), r.out, err)
		}
	}
	return r.out
}

// fails runs a command that must fail and returns its stderr.
func (c *cli) fails(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code == 0 {
		c.t.Fatalf("provctl %s succeeded with %q, want failure", strings.Join(args, " "), r.out)
	}
	if !strings.HasPrefix(r.err, "Error: ") {
		c.t.Fatalf("provctl %s: stderr %q does not start with Error:", strings.Join(args, " "), r.err)
	}
	return r.err
}

func newFakeCLI(t *testing.T) (*cli, *fakeServer) {
	f, srv := newFakeServer(t)
	return &cli{t: t, env: map[string]string{"RS_ENDPOINT": srv.URL, "RS_PASSWORD": "r0cket"}}, f
}

func TestCredentialsFromEnvAndFlags(t *testing.T) {
	c, _ := newFakeCLI(t)
	var info map[string]any
	c.ok(&info, "info")
	if info["version"] != "fake" {
		t.Fatalf("info = %v", info)
	}
	// A wrong password in the environment fails with DRP's error text...
	c.env["RS_PASSWORD"] = "wrong"
	if e := c.fails("info"); e != "Error: AUTH: Forbidden\n" {
		t.Fatalf("stderr %q", e)
	}
	// ...a flag beats the environment...
	c.ok(nil, "-P", "r0cket", "info")
	c.ok(nil, "--username", "rocketskates", "--password", "r0cket", "info")
	// ...and a token beats user/password.
	c.env["RS_TOKEN"] = "admin-token"
	c.ok(nil, "info")
	c.ok(nil, "-T", "admin-token", "-P", "wrong", "info")
	c.fails("-T", "bad-token", "info")
	// Explicit user/password beat a token from the environment.
	c.env["RS_TOKEN"] = "bad-token"
	c.ok(nil, "-P", "r0cket", "info")
	// The endpoint flag beats RS_ENDPOINT.
	good := c.env["RS_ENDPOINT"]
	c.env["RS_ENDPOINT"] = "https://127.0.0.1:1"
	c.ok(nil, "-E", good, "-P", "r0cket", "info")
}

func TestObjectLifecycle(t *testing.T) {
	c, f := newFakeCLI(t)
	var m map[string]any
	c.ok(&m, "machines", "create", "m1")
	uuid, _ := m["Uuid"].(string)
	if m["Name"] != "m1" || uuid == "" {
		t.Fatalf("created %v", m)
	}
	// YAML input, and a file.
	c.ok(nil, "profiles", "create", "Name: p1\nDescription: from yaml\n")
	file := filepath.Join(t.TempDir(), "p2.json")
	if err := os.WriteFile(file, []byte(`{"Name":"p2","Params":{"a":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok(nil, "profiles", "create", file)
	if p := f.object("profiles", "p2"); p["Params"].(map[string]any)["a"] != 1.0 {
		t.Fatalf("file create stored %v", p)
	}
	if e := c.fails("profiles", "create", "p1"); !strings.Contains(e, "CREATE: profiles/p1: already exists") {
		t.Fatalf("duplicate: %q", e)
	}
	// plugins need a full object: a bare word is an error, not {"Name":...}.
	if e := c.fails("plugins", "create", "lonely"); !strings.Contains(e, "not a JSON/YAML object") {
		t.Fatalf("bare plugin name: %q", e)
	}

	var list []map[string]any
	c.ok(&list, "profiles", "list", "Name=Re(^p)")
	if len(list) != 2 || list[0]["Name"] != "p1" || list[1]["Name"] != "p2" {
		t.Fatalf("list = %v", list)
	}
	c.ok(&list, "profiles", "list", "--limit", "1")
	if len(list) != 1 {
		t.Fatalf("limit 1 gave %d", len(list))
	}
	if e := c.fails("profiles", "list", "NoEquals"); !strings.Contains(e, "Field=Value") {
		t.Fatalf("bad filter: %q", e)
	}

	c.ok(&m, "machines", "show", "Name:m1")
	if m["Uuid"] != uuid {
		t.Fatalf("show by Name: %v", m)
	}
	if e := c.fails("machines", "show", "Name:nope"); e != "Error: GET: machines/Name:nope: Not Found\n" {
		t.Fatalf("missing: %q", e)
	}
	c.ok(nil, "machines", "exists", uuid)
	c.fails("machines", "exists", "Name:nope")

	// update merges into the current object and sends a generated patch.
	c.ok(nil, "machines", "set", "Name:m1", "param", "keep", "to", "1")
	c.ok(&m, "machines", "update", "Name:m1", `{"Description":"rack 3","Params":{"new":true}}`)
	params := m["Params"].(map[string]any)
	if m["Description"] != "rack 3" || params["keep"] != 1.0 || params["new"] != true || m["Name"] != "m1" {
		t.Fatalf("update result %v", m)
	}
	if stored := f.object("machines", uuid); !reflect.DeepEqual(stored, m) {
		t.Fatalf("stored %v, printed %v", stored, m)
	}

	// patch sends the user's patch; a failing test op changes nothing.
	c.ok(&m, "machines", "patch", uuid, `[{"op":"test","path":"/Description","value":"rack 3"},{"op":"replace","path":"/Description","value":"rack 4"}]`)
	if m["Description"] != "rack 4" {
		t.Fatalf("patch result %v", m)
	}
	if e := c.fails("machines", "patch", uuid, `[{"op":"test","path":"/Description","value":"rack 3"},{"op":"replace","path":"/Description","value":"x"}]`); !strings.Contains(e, "PATCH: machines/"+uuid) {
		t.Fatalf("failed patch: %q", e)
	}
	if f.object("machines", uuid)["Description"] != "rack 4" {
		t.Fatal("a failed patch changed the object")
	}
	if e := c.fails("machines", "patch", uuid, `{"op":"replace"}`); !strings.Contains(e, "invalid JSON Patch") {
		t.Fatalf("bad patch: %q", e)
	}

	if out := c.ok(nil, "machines", "destroy", "Name:m1"); out != "Deleted machine Name:m1\n" {
		t.Fatalf("destroy printed %q", out)
	}
	if f.object("machines", uuid) != nil {
		t.Fatal("machine still stored")
	}
	c.fails("machines", "destroy", "Name:m1")
}

func TestParamsCommands(t *testing.T) {
	c, f := newFakeCLI(t)
	c.ok(nil, "plugins", "create", `{"Name":"p1","Provider":"fake"}`)
	var v any
	c.ok(&v, "plugins", "set", "p1", "param", "fake/step", "to", "2")
	if v != 2.0 {
		t.Fatalf("set printed %v", v)
	}
	c.ok(&v, "plugins", "set", "p1", "param", "fake/name", "to", "plain words")
	if v != "plain words" {
		t.Fatalf("non-JSON value stored as %v", v)
	}
	c.ok(&v, "plugins", "set", "p1", "param", "fake/list", "to", `["a","b"]`)
	c.ok(&v, "plugins", "get", "p1", "param", "fake/step")
	if v != 2.0 {
		t.Fatalf("get = %v", v)
	}
	c.ok(&v, "plugins", "get", "p1", "param", "g/param")
	if v != nil {
		t.Fatalf("unaggregated inherited param = %v", v)
	}
	c.ok(&v, "plugins", "get", "p1", "param", "g/param", "--aggregate")
	if v != "from-global" {
		t.Fatalf("aggregated param = %v", v)
	}
	var all map[string]any
	c.ok(&all, "plugins", "params", "p1")
	if len(all) != 3 || !reflect.DeepEqual(all["fake/list"], []any{"a", "b"}) {
		t.Fatalf("params = %v", all)
	}
	c.ok(&all, "plugins", "params", "p1", "--aggregate")
	if all["g/param"] != "from-global" {
		t.Fatalf("aggregate params = %v", all)
	}
	c.ok(&v, "plugins", "remove", "p1", "param", "fake/step")
	if v != 2.0 {
		t.Fatalf("remove printed old value %v", v)
	}
	if _, ok := f.object("plugins", "p1")["Params"].(map[string]any)["fake/step"]; ok {
		t.Fatal("param not removed")
	}
	c.ok(&all, "plugins", "params", "p1", `{"only":1}`)
	if got := f.object("plugins", "p1")["Params"]; !reflect.DeepEqual(got, map[string]any{"only": 1.0}) {
		t.Fatalf("params replaced with %v", got)
	}
	if e := c.fails("plugins", "set", "p1", "parm", "x", "to", "1"); !strings.Contains(e, `expected "param"`) {
		t.Fatalf("typo: %q", e)
	}
	c.fails("plugins", "get", "p1", "param")
}

func TestActionsCommands(t *testing.T) {
	c, f := newFakeCLI(t)
	c.ok(nil, "machines", "create", `{"Name":"m1"}`)
	var acts []map[string]any
	c.ok(&acts, "machines", "actions", "Name:m1")
	if len(acts) != 1 || acts[0]["Command"] != "echo" {
		t.Fatalf("actions = %v", acts)
	}
	var res map[string]any
	c.ok(&res, "machines", "runaction", "Name:m1", "echo", "count", "3", "label", "x y", "--plugin", "p1")
	if !reflect.DeepEqual(res, map[string]any{"count": 3.0, "label": "x y"}) {
		t.Fatalf("runaction k v = %v", res)
	}
	res = nil
	c.ok(&res, "machines", "runaction", "Name:m1", "echo", `{"nested":{"a":[1]}}`)
	if !reflect.DeepEqual(res, map[string]any{"nested": map[string]any{"a": []any{1.0}}}) {
		t.Fatalf("runaction json = %v", res)
	}
	f.mu.Lock()
	n := len(f.actions)
	plugin := f.actions[0]["plugin"]
	f.mu.Unlock()
	if n != 2 || plugin != "p1" {
		t.Fatalf("server saw %d actions, first plugin %v", n, plugin)
	}
	if e := c.fails("machines", "runaction", "Name:m1", "explode"); !strings.Contains(e, "INVOKE: machines/") {
		t.Fatalf("unknown action: %q", e)
	}
	c.fails("machines", "runaction", "Name:m1", "echo", "a", "1", "b")
	res = nil
	c.ok(&res, "machines", "action", "Name:m1", "echo", "--plugin", "p1")
	if res["Command"] != "echo" {
		t.Fatalf("machine action = %v", res)
	}
	if e := c.fails("machines", "action", "Name:m1", "explode"); !strings.Contains(e, "GET: machines/") {
		t.Fatalf("unknown machine action: %q", e)
	}
	c.ok(&acts, "system", "actions")
	if len(acts) != 1 || acts[0]["Model"] != "" {
		t.Fatalf("system actions = %v", acts)
	}
	c.ok(&res, "system", "runaction", "echo", "k", "v")
	if res["k"] != "v" {
		t.Fatalf("system runaction = %v", res)
	}
	c.ok(&res, "system", "action", "echo")
	if res["Command"] != "echo" {
		t.Fatalf("system action = %v", res)
	}
}

func TestPluginProviderUploadDownload(t *testing.T) {
	c, f := newFakeCLI(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "myplugin")
	content := []byte("#!/bin/sh\necho not really a plugin\n")
	if err := os.WriteFile(bin, content, 0o755); err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	c.ok(&info, "plugin_providers", "upload", bin)
	if info["path"] != "myplugin" || info["size"] != float64(len(content)) {
		t.Fatalf("upload = %v", info)
	}
	c.ok(&info, "plugin_providers", "upload", bin, "as", "renamed")
	if info["path"] != "renamed" {
		t.Fatalf("upload as = %v", info)
	}
	f.mu.Lock()
	stored := f.binaries["renamed"]
	f.mu.Unlock()
	if !bytes.Equal(stored, content) {
		t.Fatalf("server stored %q", stored)
	}
	dest := filepath.Join(dir, "out")
	if out := c.ok(nil, "plugin_providers", "download", "renamed", "to", dest); !strings.Contains(out, "Downloaded renamed") {
		t.Fatalf("download printed %q", out)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("downloaded %q, %v", got, err)
	}
	c.fails("plugin_providers", "upload", filepath.Join(dir, "missing"))
	c.fails("plugin_providers", "upload", bin, "to", "x")
	c.fails("plugin_providers", "download", "renamed", "into", dest)
	// Providers are never created from JSON.
	if r := c.run("plugin_providers", "create", `{"Name":"x"}`); r.code == 0 {
		t.Fatal("plugin_providers create exists")
	}
}

func TestUsersTokenAndPassword(t *testing.T) {
	c, _ := newFakeCLI(t)
	var tok map[string]any
	c.ok(&tok, "users", "token", "rocketskates", "--ttl", "1h")
	token, _ := tok["Token"].(string)
	if token == "" {
		t.Fatalf("token = %v", tok)
	}
	// The token works on its own.
	c2 := &cli{t: t, env: map[string]string{"RS_ENDPOINT": c.env["RS_ENDPOINT"], "RS_TOKEN": token}}
	c2.ok(nil, "info")

	c.ok(nil, "users", "password", "rocketskates", "n3w-pass")
	c.fails("info") // RS_PASSWORD is now stale
	c.env["RS_PASSWORD"] = "n3w-pass"
	c.ok(nil, "info")
	// From standard input, keeping it off the command line.
	if r := c.runIn(context.Background(), "from-stdin\n", "users", "password", "rocketskates", "-"); r.code != 0 {
		t.Fatalf("password from stdin: %q", r.err)
	}
	c.env["RS_PASSWORD"] = "from-stdin"
	c.ok(nil, "info")
}

func TestYAMLOutputAndBadFormat(t *testing.T) {
	c, _ := newFakeCLI(t)
	out := c.ok(nil, "--format", "yaml", "profiles", "show", "global")
	var p map[string]any
	if err := yaml.Unmarshal([]byte(out), &p); err != nil || p["Name"] != "global" {
		t.Fatalf("yaml output %q: %v", out, err)
	}
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("yaml output looks like JSON: %q", out)
	}
	if e := c.fails("--format", "xml", "info"); !strings.Contains(e, "--format must be json or yaml") {
		t.Fatalf("bad format: %q", e)
	}
	c.fails("no-such-command")
}

func TestEventsWatchAndPost(t *testing.T) {
	c, f := newFakeCLI(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		a := &app{getenv: func(k string) string { return c.env[k] }, in: strings.NewReader(""), out: &out, err: &errOut}
		done <- a.run(ctx, []string{"events", "watch", "machines.*.*"})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !f.registered("machines.*.*") {
		if time.Now().After(deadline) {
			t.Fatalf("watch never registered; stderr %q", errOut.String())
		}
		time.Sleep(time.Millisecond)
	}
	c.ok(nil, "events", "post", `{"Type":"profiles","Action":"update","Key":"ignored"}`)
	c.ok(nil, "events", "post", `{"Type":"machines","Action":"update","Key":"m1","Object":{"Name":"m1"}}`)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatal("no event printed")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch exit %d, stderr %q", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("printed %q, want exactly the machines event", out.String())
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e["Type"] != "machines" || e["Key"] != "m1" {
		t.Fatalf("event line %q: %v", lines[0], err)
	}
	if e := c.fails("events", "post", `{"Key":"x"}`); !strings.Contains(e, "Type and Action") {
		t.Fatalf("bad event: %q", e)
	}
	// Bad standard input is named by what was read, not by the dash.
	for stdin, want := range map[string]string{
		"hello there\n":        `standard input "hello there" is not a JSON/YAML object`,
		`{"Type": "x",` + "\n": `cannot decode standard input "{\"Type\": \"x\","`,
	} {
		r := c.runIn(context.Background(), stdin, "events", "post", "-")
		if r.code != 1 || !strings.Contains(r.err, want) {
			t.Fatalf("events post - with %q: exit %d, stderr %q, want %q", stdin, r.code, r.err, want)
		}
	}
}

func TestCompletion(t *testing.T) {
	c, _ := newFakeCLI(t)
	out := c.ok(nil, "completion", "bash")
	if !strings.Contains(out, "provctl") {
		t.Fatalf("completion output %q", out[:min(len(out), 200)])
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
