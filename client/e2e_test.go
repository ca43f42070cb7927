package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// These tests run the client against a real in-process provisiond.

func TestE2EObjectsAndParams(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := ts.Client(t)
	ctx := context.Background()

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.ApiPort == 0 || info.Version == "" {
		t.Fatalf("info = %+v", info)
	}

	var m models.Machine
	if err := c.Create(ctx, "machines", &models.Machine{Name: "m1", Profiles: []string{}, Params: map[string]any{}}, &m); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if m.Name != "m1" || m.Uuid.String() == "00000000-0000-0000-0000-000000000000" {
		t.Fatalf("created %+v", m)
	}
	ok, err := c.Exists(ctx, "machines", "Name:m1")
	if err != nil || !ok {
		t.Fatalf("Exists(Name:m1) = %v, %v", ok, err)
	}
	ok, err = c.Exists(ctx, "machines", "Name:nope")
	if err != nil || ok {
		t.Fatalf("Exists(Name:nope) = %v, %v", ok, err)
	}
	var list []models.Machine
	if err := c.List(ctx, "machines", &list, "Name", "Eq(m1)"); err != nil || len(list) != 1 || list[0].Uuid != m.Uuid {
		t.Fatalf("List = %+v, %v", list, err)
	}

	err = c.Get(ctx, "machines", "Name:nope", &models.Machine{})
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusNotFound {
		t.Fatalf("missing machine: %v", err)
	}

	// PatchTo: the server applies the generated patch (with test ops).
	upd := m
	upd.Description = "rack 3"
	upd.Params = map[string]any{"a/b": 1.0}
	var got models.Machine
	if err := c.PatchTo(ctx, "machines", m.Key(), &m, &upd, &got); err != nil {
		t.Fatalf("PatchTo: %v", err)
	}
	if got.Description != "rack 3" || got.Params["a/b"] != 1.0 {
		t.Fatalf("patched %+v", got)
	}
	// A stale original fails the test ops and changes nothing.
	stale := m
	stale2 := m
	stale2.Description = "other"
	if err := c.PatchTo(ctx, "machines", m.Key(), &stale, &stale2, nil); err == nil {
		t.Fatal("PatchTo from a stale object succeeded")
	} else if !errors.As(err, &me) {
		t.Fatalf("stale PatchTo: want *models.Error, got %v", err)
	}
	if err := c.Get(ctx, "machines", m.Key(), &got); err != nil || got.Description != "rack 3" {
		t.Fatalf("after failed patch: %+v, %v", got, err)
	}

	// Params, including inheritance from the global profile.
	if err := c.SetParam(ctx, "profiles", "global", "g/param", "from-global"); err != nil {
		t.Fatalf("SetParam global: %v", err)
	}
	if err := c.SetParam(ctx, "machines", m.Key(), "x/y", []any{"a"}); err != nil {
		t.Fatalf("SetParam: %v", err)
	}
	var v any
	if err := c.GetParam(ctx, "machines", m.Key(), "x/y", false, &v); err != nil {
		t.Fatal(err)
	}
	if l, ok := v.([]any); !ok || len(l) != 1 || l[0] != "a" {
		t.Fatalf("GetParam = %#v", v)
	}
	if err := c.GetParam(ctx, "machines", m.Key(), "g/param", true, &v); err != nil || v != "from-global" {
		t.Fatalf("aggregated GetParam = %v, %v", v, err)
	}
	params, err := c.GetParams(ctx, "machines", m.Key(), true)
	if err != nil || params["g/param"] != "from-global" || params["a/b"] != 1.0 {
		t.Fatalf("GetParams aggregate = %v, %v", params, err)
	}
	if err := c.DeleteParam(ctx, "machines", m.Key(), "x/y"); err != nil {
		t.Fatal(err)
	}
	v = "sentinel"
	if err := c.GetParam(ctx, "machines", m.Key(), "x/y", false, &v); err != nil || v != nil {
		t.Fatalf("deleted param = %v, %v", v, err)
	}

	if err := c.Delete(ctx, "machines", "Name:m1", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if ok, _ := c.Exists(ctx, "machines", m.Key()); ok {
		t.Fatal("machine still exists")
	}
}

func TestE2ETokensAndAuth(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := ts.Client(t)
	ctx := context.Background()
	tok, err := c.UserToken(ctx, servertest.AdminUser, time.Hour)
	if err != nil || tok.Token == "" {
		t.Fatalf("UserToken = %+v, %v", tok, err)
	}
	tc, err := client.New(ts.URL, client.Options{Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Info(ctx); err != nil {
		t.Fatalf("Info with token: %v", err)
	}
	bad, err := client.New(ts.URL, client.Options{Username: servertest.AdminUser, Password: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Info(ctx)
	var me *models.Error
	if !errors.As(err, &me) || (me.Code != http.StatusUnauthorized && me.Code != http.StatusForbidden) {
		t.Fatalf("bad password: %v", err)
	}
	if _, err := bad.Events(ctx); !errors.As(err, &me) {
		t.Fatalf("websocket with a bad password: want *models.Error, got %v", err)
	}
}

func TestE2EEventStream(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := ts.Client(t)
	ctx := context.Background()
	s, err := c.Events(ctx)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	defer s.Close()
	// Register returns once the real server acknowledged the filters.
	if err := s.Register(ctx, "machines.*.*", "custom.ping.*"); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := c.PostEvent(ctx, &models.Event{Time: time.Now(), Type: "custom", Action: "ping", Key: "k1"}); err != nil {
		t.Fatalf("PostEvent: %v", err)
	}
	var m models.Machine
	if err := c.Create(ctx, "machines", &models.Machine{Name: "ev1"}, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"custom/ping/k1": false, "machines/create/" + m.Key(): false}
	timeout := time.After(30 * time.Second)
	for remaining := len(want); remaining > 0; {
		select {
		case e, ok := <-s.C():
			if !ok {
				t.Fatal("event stream closed")
			}
			if e.Type == "websocket" {
				t.Fatalf("acknowledgement delivered as an event: %+v", e)
			}
			k := e.Type + "/" + e.Action + "/" + e.Key
			if seen, ok := want[k]; ok && !seen {
				want[k] = true
				remaining--
			}
		case <-timeout:
			t.Fatalf("events not received: %v", want)
		}
	}
	if err := s.Deregister(ctx, "custom.ping.*"); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	// A filter the server refuses (an empty action passes the client's
	// shape check) is an error naming the server's reason, not a silent
	// registration that can never deliver.
	err = s.Register(ctx, "machines..x")
	var me *models.Error
	if !errors.As(err, &me) || me.Code != 400 || !strings.Contains(err.Error(), "empty action") {
		t.Fatalf("Register of a refused filter: %v", err)
	}
	if slices.Contains(s.Filters(), "machines..x") {
		t.Fatal("a refused filter is kept for re-registration")
	}
}

// TestE2EEventStreamSurvivesServerRestart stops provisiond under an open
// stream and starts it again on the same port: the stream must reconnect,
// re-register its filter and deliver events from the new server.
func TestE2EEventStreamSurvivesServerRestart(t *testing.T) {
	port := freePort(t)
	base := t.TempDir()
	opts := servertest.Options{BaseRoot: base, AdminPassword: "restart-pw-123", Config: func(c *config.Config) { c.APIPort = port }}
	ts := servertest.Start(t, opts)
	c, err := client.New(ts.URL, client.Options{Username: servertest.AdminUser, Password: "restart-pw-123"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := c.EventsWith(ctx, client.StreamOptions{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Register(ctx, "restart.*.*"); err != nil {
		t.Fatal(err)
	}
	ts.Stop(t)
	ts2 := servertest.Start(t, opts)
	if ts2.URL != ts.URL {
		t.Fatalf("restarted on %s, want %s", ts2.URL, ts.URL)
	}
	deadline := time.Now().Add(60 * time.Second)
	for s.Reconnects() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("stream never reconnected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The re-register may still be in flight: post until one arrives.
	for {
		if err := c.PostEvent(ctx, &models.Event{Time: time.Now(), Type: "restart", Action: "ping", Key: "k"}); err != nil {
			t.Fatal(err)
		}
		select {
		case e, ok := <-s.C():
			if !ok {
				t.Fatal("stream closed")
			}
			if e.Type != "restart" {
				t.Fatalf("unexpected event %+v", e)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no event after the restart")
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
