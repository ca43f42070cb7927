package drpcompat

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

// TestEventStream mirrors api.EventStream (api/event_stream.go): the URL
// Client.ws dials (UrlFor("ws") with scheme wss, bearer token in the
// Authorization header, no query), the "register <filter>" frames, the one
// acknowledgement per new filter it blocks on (any event of Type
// "websocket", routed by its client-side "websocket.*.*" handle, whatever
// the token's claims), the events it decodes (models.Event with an
// RFC 3339 Time), reference-counted deregistration and Close.
func TestEventStream(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	if want := strings.Replace(ts.URL, "https://", "wss://", 1) + "/api/v3/ws"; c.dialURL() != want {
		t.Fatalf("Client.ws dials %s, want %s", c.dialURL(), want)
	}
	es, err := c.events()
	if err != nil {
		t.Fatalf("Events(): %v", err)
	}
	defer es.close()

	h1, ch1, acks, err := es.register("machines.create.*", "machines.delete.*")
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if len(acks) != 2 || acks[0].Type != "websocket" || acks[0].Action != "register" || acks[0].Key != "machines.create.*" {
		t.Fatalf("acknowledgements %+v", acks)
	}
	// A second handle on an already registered filter sends nothing new.
	h2, ch2, acks, err := es.register("machines.create.*")
	if err != nil || len(acks) != 0 || len(es.sent) != 2 {
		t.Fatalf("shared filter: %v, acks %v, frames %v", err, acks, es.sent)
	}

	m := &drpMachine{Name: "ev1"}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	for _, ch := range []<-chan receivedEvent{ch1, ch2} {
		ev := next(t, ch)
		if ev.Type != "machines" || ev.Action != "create" || ev.Key != m.Uuid.String() || ev.Time.IsZero() || ev.Principal == "" {
			t.Fatalf("create event %+v", ev)
		}
		var obj drpMachine
		if err := ev.ObjectAs(&obj); err != nil || obj.Name != "ev1" {
			t.Fatalf("event Object does not decode into DRP's Machine: %v %+v", err, obj)
		}
	}
	// Dropping h2 leaves the server filter (h1 still uses it): no frame.
	if acks, err := es.deregister(h2); err != nil || len(acks) != 0 || len(es.sent) != 2 {
		t.Fatalf("deregister shared: %v %v %v", err, acks, es.sent)
	}
	// Dropping h1 deregisters both filters, each acknowledged.
	acks, err = es.deregister(h1)
	if err != nil || len(acks) != 2 || acks[0].Action != "deregister" {
		t.Fatalf("deregister: %v %+v", err, acks)
	}
	if got := strings.Join(es.sent, "|"); !strings.Contains(got, "deregister machines.create.*") || !strings.Contains(got, "deregister machines.delete.*") {
		t.Fatalf("frames %s", got)
	}

	// A token without rights on the "websocket" type still gets its
	// acknowledgements (DRP's client would otherwise block forever), and
	// only the events its claims allow.
	var tok struct{ Token string }
	c.req().urlFor("users", servertest.AdminUser, "token").params("scope", "machines", "action", "get", "ttl", "600").mustDo(t, &tok)
	lc := tokenSession(t, ts.URL, tok.Token)
	les, err := lc.events()
	if err != nil {
		t.Fatalf("limited Events(): %v", err)
	}
	defer les.close()
	_, lch, acks, err := les.register("*.*.*")
	if err != nil || len(acks) != 1 {
		t.Fatalf("limited register: %v %v", err, acks)
	}
	var prof map[string]any
	c.req().post(map[string]any{"Name": "hidden"}).urlFor("profiles").mustDo(t, &prof)
	m2 := &drpMachine{Name: "ev2"}
	c.req().post(m2).urlFor("machines").mustDo(t, m2)
	// The handle's "*.*.*" also matched its own acknowledgement, as in DRP.
	ev := next(t, lch)
	for ev.Type == "websocket" {
		ev = next(t, lch)
	}
	if ev.Type != "machines" || ev.Key != m2.Uuid.String() {
		t.Fatalf("limited token saw %s.%s.%s first", ev.Type, ev.Action, ev.Key)
	}

	// PostEvent (api/event.go, drpcli events post): POST /events → 204,
	// which R.Do only accepts with a JSON Content-Type (DRP's server sends
	// one), and the event arrives on the stream.
	_, ech, _, err := es.register("custom.*.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.req().post(models.Event{Type: "custom", Action: "poke", Key: "k1", Object: map[string]any{"n": 1}}).urlFor("events").do(nil); err != nil {
		t.Fatalf("PostEvent: %v (answer %d %v)", err, c.last().Status, c.last().Header)
	}
	if c.last().Status != http.StatusNoContent {
		t.Fatalf("PostEvent status %d", c.last().Status)
	}
	if ev := next(t, ech); ev.Action != "poke" || ev.Key != "k1" {
		t.Fatalf("posted event %+v", ev)
	}
}

// TestWaitFor mirrors EventStream.WaitFor and drpcli `<type> wait <id>
// <field> <value>`: it subscribes "<prefix>.update.<key>" and
// "<prefix>.save.<key>" and re-reads the object on each such event, so
// every way of changing an object must publish update or save under the
// object's key: PUT, PATCH, params POST/PATCH/DELETE, param set.
func TestWaitFor(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	m := &drpMachine{Name: "w1"}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	key := m.Uuid.String()
	es, err := c.events()
	if err != nil {
		t.Fatal(err)
	}
	defer es.close()

	fill := func() (any, error) {
		var cur drpMachine
		err := c.req().urlFor("machines", key).do(&cur)
		return cur, err
	}
	changes := []struct {
		what  string
		apply func()
		done  func(drpMachine) bool
	}{
		{"PATCH", func() {
			c.req().patch([]map[string]any{{"op": "replace", "path": "/Description", "value": "patched"}}).urlFor("machines", "Name:w1").mustDo(t, &drpMachine{})
		}, func(x drpMachine) bool { return x.Description == "patched" }},
		{"PUT", func() {
			cur, _ := fill()
			x := cur.(drpMachine)
			x.Description = "put"
			c.req().put(&x).urlFor("machines", key).mustDo(t, &drpMachine{})
		}, func(x drpMachine) bool { return x.Description == "put" }},
		{"param set", func() {
			c.req().post("v1").urlFor("machines", key, "params", "a/b").mustDo(t, new(any))
		}, func(x drpMachine) bool { return x.Params["a/b"] == "v1" }},
		{"params PATCH", func() {
			c.req().patch([]map[string]any{{"op": "add", "path": "/c", "value": 1}}).urlFor("machines", key, "params").mustDo(t, new(any))
		}, func(x drpMachine) bool { return x.Params["c"] == float64(1) }},
		{"param delete", func() {
			c.req().del().urlFor("machines", key, "params", "a/b").mustDo(t, new(any))
		}, func(x drpMachine) bool { _, ok := x.Params["a/b"]; return !ok }},
		{"params POST", func() {
			c.req().post(map[string]any{"z": true}).urlFor("machines", key, "params").mustDo(t, new(any))
		}, func(x drpMachine) bool { return x.Params["z"] == true && len(x.Params) == 1 }},
	}
	for _, ch := range changes {
		// The change happens once WaitFor has registered and made its
		// first check, as when drpcli wait runs before the change.
		started := make(chan struct{})
		var once bool
		test := func(o any) bool {
			if !once {
				once = true
				close(started)
			}
			return ch.done(o.(drpMachine))
		}
		res := make(chan string, 1)
		go func() {
			r, err := es.waitFor("machines", key, fill, test, 30*time.Second)
			if err != nil {
				r = "error: " + err.Error()
			}
			res <- r
		}()
		select {
		case <-started:
		case r := <-res:
			t.Fatalf("WaitFor before %s ended before its first check: %s", ch.what, r)
		case <-time.After(30 * time.Second):
			t.Fatalf("WaitFor before %s never made its first check", ch.what)
		}
		ch.apply()
		select {
		case r := <-res:
			if r != "complete" {
				t.Fatalf("WaitFor after %s: %s (no machines.update/save.%s event?)", ch.what, r, key)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("WaitFor after %s never returned", ch.what)
		}
	}
}

// next reads one event from a handle channel within a deadline.
func next(t *testing.T, ch <-chan receivedEvent) models.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok || ev.Err != nil {
			t.Fatalf("stream ended: %v", ev.Err)
		}
		return ev.E
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	return models.Event{}
}

// TestEventStreamAuthForms: Client.ws sends Basic auth when the client has
// no token (UserSessionToken(..., false)), and DRP documents ?token=<token>
// on the websocket URL for clients that cannot set headers.
func TestEventStreamAuthForms(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	basic := &drpClient{t: t, endpoint: ts.URL, username: servertest.AdminUser, password: ts.AdminPassword, hc: newTransport()}
	es, err := basic.events()
	if err != nil {
		t.Fatalf("Events() with Basic auth: %v", err)
	}
	if _, _, acks, err := es.register("machines.*.*"); err != nil || len(acks) != 1 {
		t.Fatalf("register over Basic auth: %v %v", err, acks)
	}
	es.close()

	tok := adminToken(t, ts)
	d := &websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 30 * time.Second} // self-signed test server
	conn, _, err := d.Dial(tokenSession(t, ts.URL, tok).dialURL()+"?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("dial with ?token=: %v", err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("register machines.*.*")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var ack models.Event
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "websocket" {
		t.Fatalf("ack over ?token=: %v %+v", err, ack)
	}
	// Without any credentials the upgrade is refused.
	if _, resp, err := d.Dial(tokenSession(t, ts.URL, tok).dialURL(), nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous websocket: %v %v", err, resp)
	}
}
