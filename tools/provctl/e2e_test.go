package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/servertest"
)

// End-to-end: provctl commands, run in-process, against a real provisiond.

func newRealCLI(t *testing.T) (*cli, *servertest.Server) {
	ts := servertest.Start(t, servertest.Options{})
	c := &cli{t: t, env: map[string]string{"RS_ENDPOINT": ts.URL, "RS_PASSWORD": ts.AdminPassword}}
	// Log in once with the password, then use a token (as drpcli users do).
	var tok struct{ Token string }
	c.ok(&tok, "users", "token", servertest.AdminUser, "--ttl", "1h")
	if tok.Token == "" {
		t.Fatal("no token")
	}
	c.env = map[string]string{"RS_ENDPOINT": ts.URL, "RS_TOKEN": tok.Token}
	return c, ts
}

func TestE2EProvctlObjects(t *testing.T) {
	c, _ := newRealCLI(t)
	var info map[string]any
	c.ok(&info, "info")
	if info["api_port"] == nil || info["version"] == "" {
		t.Fatalf("info = %v", info)
	}

	var m map[string]any
	c.ok(&m, "machines", "create", "m1")
	uuid, _ := m["Uuid"].(string)
	if m["Name"] != "m1" || uuid == "" {
		t.Fatalf("created %v", m)
	}
	if e := c.fails("machines", "create", "m1"); !strings.Contains(e, "m1") {
		t.Fatalf("duplicate create: %q", e)
	}
	c.ok(nil, "profiles", "create", "Name: p1\nParams:\n  p/one: 1\n")

	var list []map[string]any
	c.ok(&list, "machines", "list", "Name=Eq(m1)")
	if len(list) != 1 || list[0]["Uuid"] != uuid {
		t.Fatalf("list = %v", list)
	}
	c.ok(&list, "machines", "list", "Name=Eq(none)")
	if len(list) != 0 {
		t.Fatalf("filtered list = %v", list)
	}
	if e := c.fails("machines", "show", "Name:nope"); !strings.HasPrefix(e, "Error: GET: machines/") || !strings.Contains(e, "Not Found") {
		t.Fatalf("missing machine: %q", e)
	}

	c.ok(&m, "machines", "update", "Name:m1", `{"Description":"rack 3","Profiles":["p1"]}`)
	if m["Description"] != "rack 3" {
		t.Fatalf("update = %v", m)
	}
	c.ok(&m, "machines", "patch", "Name:m1", `[{"op":"test","path":"/Description","value":"rack 3"},{"op":"replace","path":"/Description","value":"rack 4"}]`)
	if m["Description"] != "rack 4" {
		t.Fatalf("patch = %v", m)
	}
	if e := c.fails("machines", "patch", "Name:m1", `[{"op":"test","path":"/Description","value":"rack 3"},{"op":"replace","path":"/Description","value":"x"}]`); !strings.Contains(e, "machines/") {
		t.Fatalf("failing test op: %q", e)
	}
	c.ok(&m, "machines", "show", uuid)
	if m["Description"] != "rack 4" {
		t.Fatalf("a failed patch changed the machine: %v", m)
	}

	var v any
	c.ok(&v, "machines", "set", "Name:m1", "param", "my/param", "to", `{"a":[1,2]}`)
	c.ok(&v, "machines", "get", "Name:m1", "param", "my/param")
	if b, _ := json.Marshal(v); string(b) != `{"a":[1,2]}` {
		t.Fatalf("get = %s", b)
	}
	c.ok(&v, "machines", "get", "Name:m1", "param", "p/one")
	if v != nil {
		t.Fatalf("profile param without --aggregate = %v", v)
	}
	c.ok(&v, "machines", "get", "Name:m1", "param", "p/one", "--aggregate")
	if v != 1.0 {
		t.Fatalf("profile param with --aggregate = %v", v)
	}
	var params map[string]any
	c.ok(&params, "machines", "params", "Name:m1", "--aggregate")
	if params["p/one"] != 1.0 || params["my/param"] == nil {
		t.Fatalf("aggregate params = %v", params)
	}
	c.ok(nil, "machines", "remove", "Name:m1", "param", "my/param")
	c.ok(&v, "machines", "get", "Name:m1", "param", "my/param")
	if v != nil {
		t.Fatalf("removed param = %v", v)
	}

	if out := c.ok(nil, "machines", "destroy", "Name:m1"); out != "Deleted machine Name:m1\n" {
		t.Fatalf("destroy printed %q", out)
	}
	c.fails("machines", "show", uuid)
	out := c.ok(nil, "--format", "yaml", "profiles", "show", "p1")
	if !strings.Contains(out, "Name: p1") {
		t.Fatalf("yaml = %q", out)
	}
}

func TestE2EProvctlUsersAndEvents(t *testing.T) {
	c, ts := newRealCLI(t)
	c.ok(nil, "users", "password", servertest.AdminUser, "n3w-passw0rd")
	pw := &cli{t: t, env: map[string]string{"RS_ENDPOINT": ts.URL, "RS_PASSWORD": "n3w-passw0rd"}}
	pw.ok(nil, "info")
	old := &cli{t: t, env: map[string]string{"RS_ENDPOINT": ts.URL, "RS_PASSWORD": ts.AdminPassword}}
	old.fails("info")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		a := &app{getenv: func(k string) string { return c.env[k] }, in: strings.NewReader(""), out: &out, err: &errOut}
		done <- a.run(ctx, []string{"events", "watch", "e2e.*.*"})
	}()
	// Post until the watcher (registering asynchronously) prints one.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed nothing; stderr %q", errOut.String())
		}
		c.ok(nil, "events", "post", `{"Type":"e2e","Action":"ping","Key":"k"}`)
		select {
		case code := <-done:
			t.Fatalf("watch exited early with %d: %q", code, errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch exit %d: %q", code, errOut.String())
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	var e map[string]any
	if err := json.Unmarshal([]byte(line), &e); err != nil || e["Type"] != "e2e" || e["Action"] != "ping" {
		t.Fatalf("event line %q: %v", line, err)
	}
}
