package api_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

func dialWS(t *testing.T, ts *servertest.Server, authz, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}}
	h := http.Header{}
	if authz != "" {
		h.Set("Authorization", authz)
	}
	url := strings.Replace(ts.URL, "https://", "wss://", 1) + "/api/v3/ws" + query
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: h})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial websocket: %v (status %d)", err, code)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readEvent(t *testing.T, c *websocket.Conn) models.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, buf, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	var e models.Event
	if err := json.Unmarshal(buf, &e); err != nil {
		t.Fatalf("event %q: %v", buf, err)
	}
	return e
}

func register(t *testing.T, c *websocket.Conn, filter string) {
	t.Helper()
	if err := c.Write(context.Background(), websocket.MessageText, []byte("register "+filter)); err != nil {
		t.Fatal(err)
	}
	ack := readEvent(t, c)
	if ack.Type != "websocket" || ack.Key != filter {
		t.Fatalf("expected ack for %s, got %+v", filter, ack)
	}
}

func TestWebsocketFiltersAndRights(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	mustStatus(t, call(t, ts, "POST", "/api/v3/users", map[string]any{"Name": "prof-only", "Roles": []string{"profiles:get,list:*"}}, nil), 201, "user")
	ts.Do(t, "PUT", "/api/v3/users/prof-only/password", map[string]any{"Password": "pw"})
	tok := token(t, ts, servertest.BasicAuth("prof-only", "pw"), "prof-only", "")

	all := dialWS(t, ts, admin, "")
	register(t, all, "machines.create,delete.*")
	register(t, all, "profiles.*.*")
	limited := dialWS(t, ts, "", "?token="+tok)
	register(t, limited, "*.*.*")

	resp, _ := servertest.DoAs(t, ts.URL, "", "GET", "/api/v3/ws", nil)
	mustStatus(t, resp, 401, "websocket without credentials")

	var m models.Machine
	call(t, ts, "POST", "/api/v3/machines", map[string]any{"Name": "w1"}, &m)
	call(t, ts, "PATCH", "/api/v3/machines/"+m.Uuid.String(), []map[string]any{{"op": "replace", "path": "/Description", "value": "d"}}, nil)
	call(t, ts, "POST", "/api/v3/profiles", map[string]any{"Name": "wp"}, nil)
	call(t, ts, "DELETE", "/api/v3/machines/"+m.Uuid.String(), nil, nil)

	// The admin connection sees machine create and delete (not the update)
	// and the profile create, in order, with principal and object.
	want := []string{"machines.create." + m.Uuid.String(), "profiles.create.wp", "machines.delete." + m.Uuid.String()}
	for _, w := range want {
		e := readEvent(t, all)
		if got := e.Type + "." + e.Action + "." + e.Key; got != w {
			t.Fatalf("admin stream: got %s, want %s", got, w)
		}
		if e.Principal != servertest.AdminUser || e.Object == nil {
			t.Fatalf("event lacks principal/object: %+v", e)
		}
	}
	// The limited connection registered everything but may only see profiles.
	e := readEvent(t, limited)
	if e.Type != "profiles" || e.Key != "wp" {
		t.Fatalf("limited stream got %s.%s.%s", e.Type, e.Action, e.Key)
	}
	// Posted events go through the same path; Original is set on updates.
	register(t, all, "machines.update.*")
	var m2 models.Machine
	call(t, ts, "POST", "/api/v3/machines", map[string]any{"Name": "w2", "Description": "before"}, &m2)
	call(t, ts, "PATCH", "/api/v3/machines/"+m2.Uuid.String(), []map[string]any{{"op": "replace", "path": "/Description", "value": "after"}}, nil)
	for {
		e := readEvent(t, all)
		if e.Action != "update" {
			continue
		}
		var obj, orig models.Machine
		e.ObjectAs(&obj)
		models.Remarshal(e.Original, &orig)
		if obj.Description != "after" || orig.Description != "before" {
			t.Fatalf("update event object %q original %q", obj.Description, orig.Description)
		}
		break
	}
}

func TestWebsocketSlowSubscriberIsolation(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.WSQueueLen = 8 }})
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	slow := dialWS(t, ts, admin, "")
	register(t, slow, "bulk.*.*")
	fast := dialWS(t, ts, admin, "")
	register(t, fast, "bulk.*.*")
	// From here on the slow client never reads. Each event is 64 KiB, so its
	// socket buffers fill after some events and its queue soon after.
	payload := strings.Repeat("x", 64<<10)
	const n = 400
	bus := ts.Server.Bus()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("k%d", i)
		resp, body := ts.Do(t, "POST", "/api/v3/events", map[string]any{"Type": "bulk", "Action": "poke", "Key": key, "Object": payload})
		if resp.StatusCode != 204 {
			t.Fatalf("post event %d: %d %s", i, resp.StatusCode, body)
		}
		// The fast client must get every event, in order, while the slow
		// one is stuck.
		e := readEvent(t, fast)
		if e.Key != key {
			t.Fatalf("fast subscriber got %s, want %s", e.Key, key)
		}
	}
	if bus.Dropped() == 0 {
		t.Fatalf("slow subscriber never dropped an event; the test did not exercise isolation")
	}
	// The server still answers promptly-enough requests while the slow one is stuck.
	resp, _ := ts.Do(t, "GET", "/api/v3/info", nil)
	mustStatus(t, resp, 200, "info while a subscriber is stuck")
	_, metrics := ts.Do(t, "GET", "/metrics", nil)
	if !strings.Contains(string(metrics), "provision_events_dropped_total") || !strings.Contains(string(metrics), "provision_http_requests_total") {
		t.Fatalf("metrics lack event/request counters")
	}
}

// TestWebsocketInvalidFilterErrorAck: against a real provisiond, a
// register with an invalid filter and an unknown command each get one
// "websocket" acknowledgement carrying a 400 models.Error (so DRP's
// client, which counts acks, does not hang), while a valid register's ack
// keeps DRP's shape (no Object) and the connection keeps working.
func TestWebsocketInvalidFilterErrorAck(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := dialWS(t, ts, servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword), "")
	send := func(msg string) {
		t.Helper()
		if err := c.Write(context.Background(), websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ msg, action, key, says string }{
		{"register machines.create", "register", "machines.create", `invalid filter "machines.create"`},
		{"subscribe machines.*.*", "subscribe", "machines.*.*", `unknown request "subscribe"`},
	} {
		send(tc.msg)
		ack := readEvent(t, c)
		var me models.Error
		if err := ack.ObjectAs(&me); ack.Type != "websocket" || ack.Action != tc.action || ack.Key != tc.key || err != nil ||
			me.Code != 400 || len(me.Messages) != 1 || !strings.Contains(me.Messages[0], tc.says) {
			t.Fatalf("%q: ack %+v (Object %v, %v), want an error ack whose message contains %q", tc.msg, ack, ack.Object, err, tc.says)
		}
	}
	send("register machines.*.*")
	ack := readEvent(t, c)
	if ack.Type != "websocket" || ack.Action != "register" || ack.Key != "machines.*.*" || ack.Object != nil {
		t.Fatalf("valid register ack %+v, want websocket.register.machines.*.* without Object", ack)
	}
	var m models.Machine
	call(t, ts, "POST", "/api/v3/machines", map[string]any{"Name": "after-bad-filter"}, &m)
	if e := readEvent(t, c); e.Type != "machines" || e.Action != "create" {
		t.Fatalf("after the refusals, got %s.%s, want machines.create", e.Type, e.Action)
	}
}
