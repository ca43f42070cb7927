package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/models"
)

func newTestClient(t *testing.T, endpoint string, opts Options) *Client {
	t.Helper()
	if opts.RetryDelay == 0 {
		opts.RetryDelay = time.Millisecond
	}
	c, err := New(endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthAndStandardHeaders(t *testing.T) {
	f, srv := newFakeAPI(t)
	f.put("profiles/global", map[string]any{"Name": "global"})
	for _, tc := range []struct {
		name string
		opts Options
		auth string
	}{
		{"bearer", Options{Token: "good-token", Username: "ignored", Password: "ignored"}, "Bearer good-token"},
		{"basic", Options{Username: "rocketskates", Password: "s3cret"}, "Basic cm9ja2V0c2thdGVzOnMzY3JldA=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, srv.URL, tc.opts)
			var out map[string]any
			if err := c.Get(context.Background(), "profiles", "global", &out); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if out["Name"] != "global" {
				t.Fatalf("got %v", out)
			}
			f.mu.Lock()
			h := f.headers[len(f.headers)-1]
			f.mu.Unlock()
			if got := h.Get("Authorization"); got != tc.auth {
				t.Errorf("Authorization = %q, want %q", got, tc.auth)
			}
			if got := h.Get("Accept"); got != "application/json" {
				t.Errorf("Accept = %q", got)
			}
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}
		})
	}
}

func TestBadCredentialsGiveServerError(t *testing.T) {
	_, srv := newFakeAPI(t)
	c := newTestClient(t, srv.URL, Options{Token: "wrong"})
	_, err := c.Info(context.Background())
	var me *models.Error
	if !errors.As(err, &me) {
		t.Fatalf("want *models.Error, got %T %v", err, err)
	}
	if me.Code != http.StatusForbidden || me.Type != "AUTH" {
		t.Fatalf("got %+v", me)
	}
}

func TestErrorDecoding(t *testing.T) {
	_, srv := newFakeAPI(t)
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	ctx := context.Background()

	err := c.Get(ctx, "machines", "nope", &map[string]any{})
	var me *models.Error
	if !errors.As(err, &me) {
		t.Fatalf("want *models.Error, got %T %v", err, err)
	}
	if me.Code != 404 || me.Model != "machines" || me.Key != "nope" || me.Type != "GET" {
		t.Fatalf("decoded error %+v", me)
	}
	if got, want := err.Error(), "GET: machines/nope: Not Found"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}

	err = c.Do(ctx, http.MethodGet, "plain-error", nil, nil, nil)
	if !errors.As(err, &me) {
		t.Fatalf("want *models.Error, got %T %v", err, err)
	}
	if me.Type != "CLIENT_ERROR" || me.Code != http.StatusBadGateway || len(me.Messages) != 1 || me.Messages[0] != "upstream exploded" {
		t.Fatalf("undecodable body gave %+v", me)
	}
}

func TestExists(t *testing.T) {
	f, srv := newFakeAPI(t)
	f.put("plugins/p1", map[string]any{"Name": "p1"})
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	ok, err := c.Exists(context.Background(), "plugins", "p1")
	if err != nil || !ok {
		t.Fatalf("Exists(p1) = %v, %v", ok, err)
	}
	ok, err = c.Exists(context.Background(), "plugins", "p2")
	if err != nil || ok {
		t.Fatalf("Exists(p2) = %v, %v", ok, err)
	}
	bad := newTestClient(t, srv.URL, Options{Token: "wrong"})
	if _, err := bad.Exists(context.Background(), "plugins", "p1"); err == nil {
		t.Fatal("Exists with a bad token must fail, not report absence")
	}
}

func TestBodiesAndQueries(t *testing.T) {
	_, srv := newFakeAPI(t)
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	ctx := context.Background()
	var echo struct {
		Method, Query, ContentType, Body string
		Length                           int64
	}
	q, err := FilterQuery("Name", "Eq(a b)", "limit", "10")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodPost, "echo", q, map[string]int{"x": 1}, &echo); err != nil {
		t.Fatal(err)
	}
	if echo.ContentType != "application/json" || echo.Body != `{"x":1}` {
		t.Fatalf("JSON body sent as %+v", echo)
	}
	got, _ := url.ParseQuery(echo.Query)
	if got.Get("Name") != "Eq(a b)" || got.Get("limit") != "10" {
		t.Fatalf("query %q", echo.Query)
	}
	if err := c.Do(ctx, http.MethodPost, "echo", nil, strings.NewReader("raw bytes"), &echo); err != nil {
		t.Fatal(err)
	}
	if echo.ContentType != "application/octet-stream" || echo.Body != "raw bytes" || echo.Length != 9 {
		t.Fatalf("reader body sent as %+v", echo)
	}
	var buf bytes.Buffer
	if err := c.Do(ctx, http.MethodGet, "binary", nil, nil, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), []byte{0, 1, 2, 3}) {
		t.Fatalf("raw download got %v", buf.Bytes())
	}
	if _, err := FilterQuery("Name"); err == nil {
		t.Fatal("odd filter count must fail")
	}
}

// TestRunActionWithTimeoutAndLongerBound: the action's server-side limit
// goes out as ?timeout= (seconds, next to ?plugin=), and WithRequestTimeout
// gives one call a longer bound without changing the shared client.
func TestRunActionWithTimeoutAndLongerBound(t *testing.T) {
	_, srv := newFakeAPI(t)
	c := newTestClient(t, srv.URL, Options{Token: "good-token", RequestTimeout: time.Second})
	ctx := context.Background()
	var echo struct{ Method, Query, Body string }
	long := c.WithRequestTimeout(20*time.Minute + 30*time.Second)
	if err := long.RunActionWithTimeout(ctx, "machines", "m1", "echo", "p1", 20*time.Minute, map[string]any{"k": "v"}, &echo); err != nil {
		t.Fatal(err)
	}
	got, _ := url.ParseQuery(echo.Query)
	if echo.Method != http.MethodPost || got.Get("timeout") != "1200" || got.Get("plugin") != "p1" || echo.Body != `{"k":"v"}` {
		t.Fatalf("action sent as %+v", echo)
	}
	if err := c.RunAction(ctx, "system", "", "echo", "", nil, &echo); err != nil || echo.Query != "" || echo.Body != "{}" {
		t.Fatalf("plain RunAction sent as %+v (%v)", echo, err)
	}
	if err := c.RunActionWithTimeout(ctx, "system", "", "echo", "", -time.Second, nil, &echo); err == nil {
		t.Fatal("a negative action timeout was accepted")
	}
	if long.RequestTimeout() != 20*time.Minute+30*time.Second || c.RequestTimeout() != time.Second ||
		c.WithRequestTimeout(0).RequestTimeout() != DefaultRequestTimeout {
		t.Fatalf("bounds: long %s, shared %s", long.RequestTimeout(), c.RequestTimeout())
	}
}

func TestRetriesTransportErrors(t *testing.T) {
	f, srv := newFakeAPI(t)
	c := newTestClient(t, srv.URL, Options{Token: "good-token", MaxRetries: 3})
	ctx := context.Background()

	// A rewindable (JSON) body is replayed after two dropped connections.
	f.mu.Lock()
	f.failNext, f.attempts = 2, 0
	f.mu.Unlock()
	var echo struct{ Body string }
	if err := c.Do(ctx, http.MethodPost, "echo", nil, map[string]string{"k": "v"}, &echo); err != nil {
		t.Fatalf("Do after 2 transport failures: %v", err)
	}
	if echo.Body != `{"k":"v"}` {
		t.Fatalf("replayed body %q", echo.Body)
	}
	f.mu.Lock()
	if f.attempts != 3 {
		t.Errorf("attempts = %d, want 3", f.attempts)
	}
	// More failures than retries: the transport error surfaces.
	f.failNext, f.attempts = 10, 0
	f.mu.Unlock()
	err := c.Do(ctx, http.MethodGet, "echo", nil, nil, nil)
	var me *models.Error
	if err == nil || errors.As(err, &me) {
		t.Fatalf("want a transport error, got %v", err)
	}
	f.mu.Lock()
	if f.attempts != 4 {
		t.Errorf("attempts = %d, want 1+3 retries", f.attempts)
	}
	// A non-rewindable body is never retried.
	f.failNext, f.attempts = 1, 0
	f.mu.Unlock()
	if err := c.Do(ctx, http.MethodPost, "echo", nil, io.MultiReader(strings.NewReader("once")), nil); err == nil {
		t.Fatal("non-rewindable body: want error")
	}
	f.mu.Lock()
	if f.attempts != 1 {
		t.Errorf("attempts = %d, want 1", f.attempts)
	}
	// HTTP errors are not retried.
	f.failNext, f.attempts = 0, 0
	f.mu.Unlock()
	if err := c.Get(ctx, "machines", "missing", nil); err == nil {
		t.Fatal("want 404")
	}
	f.mu.Lock()
	if f.attempts != 1 {
		t.Errorf("attempts = %d after an HTTP error, want 1", f.attempts)
	}
	f.mu.Unlock()
}

func TestRetryRespectsContext(t *testing.T) {
	f, srv := newFakeAPI(t)
	// A huge backoff: only the context can end the wait.
	c := newTestClient(t, srv.URL, Options{Token: "good-token", MaxRetries: 5, RetryDelay: time.Hour})
	f.mu.Lock()
	f.failNext = 100
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Do(ctx, http.MethodGet, "echo", nil, nil, nil) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.mu.Lock()
		n := f.attempts
		f.mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first attempt never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Do did not return after cancel")
	}
}

type testMachine struct {
	Name     string
	Params   map[string]any
	Profiles []string
	Tasks    []string
	Runnable bool
}

func TestPatchToProducesNewObject(t *testing.T) {
	f, srv := newFakeAPI(t)
	old := testMachine{Name: "m1", Params: map[string]any{"a": 1.0, "gone": "x"}, Profiles: []string{"p1"}, Tasks: []string{"t1"}}
	f.put("machines/m1", old)
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	upd := testMachine{Name: "m1", Params: map[string]any{"a": 2.0, "new": []any{"y"}}, Profiles: []string{"p1", "p2"}, Tasks: []string{"t1"}, Runnable: true}

	p, err := GeneratePatch(old, upd, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := 0
	for i, op := range p {
		if op.Op == "test" {
			tests++
			continue
		}
		if op.Op == "replace" || op.Op == "remove" {
			if i == 0 || p[i-1].Op != "test" || p[i-1].Path != op.Path {
				t.Errorf("op %d (%s %s) is not preceded by a test of the old value", i, op.Op, op.Path)
			}
		}
	}
	if tests == 0 {
		t.Fatalf("patch has no test ops: %+v", p)
	}

	var got testMachine
	if err := c.PatchTo(context.Background(), "machines", "m1", old, upd, &got); err != nil {
		t.Fatalf("PatchTo: %v", err)
	}
	if !reflect.DeepEqual(got, upd) {
		t.Fatalf("server returned %+v, want %+v", got, upd)
	}
	var stored testMachine
	if err := json.Unmarshal(f.get("machines/m1"), &stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored, upd) {
		t.Fatalf("stored %+v, want %+v", stored, upd)
	}

	// The patch also applies with jsonpatch2 directly to the old document.
	oldJSON, _ := json.Marshal(old)
	newJSON, _ := json.Marshal(upd)
	res, err, _ := p.Apply(oldJSON)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal(res, &a)
	_ = json.Unmarshal(newJSON, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("applied patch gives %s, want %s", res, newJSON)
	}

	// A stale "old" makes the test ops fail: nothing changes.
	before := f.get("machines/m1")
	stale := old
	err = c.PatchTo(context.Background(), "machines", "m1", stale, testMachine{Name: "m1", Params: map[string]any{"a": 3.0}, Profiles: []string{}, Tasks: []string{}}, nil)
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusConflict {
		t.Fatalf("stale PatchTo: want 409 *models.Error, got %v", err)
	}
	if !bytes.Equal(before, f.get("machines/m1")) {
		t.Fatal("a failed patch changed the object")
	}
}

func TestParanoidPatchTestsWholeDocument(t *testing.T) {
	old := map[string]any{"Name": "a", "Description": "x"}
	upd := map[string]any{"Name": "a", "Description": "y"}
	p, err := GeneratePatch(old, upd, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) == 0 || p[0].Op != "test" || p[0].Path != "" || !reflect.DeepEqual(p[0].Value, old) {
		t.Fatalf("paranoid patch does not start with a whole-document test: %+v", p)
	}
	oldJSON, _ := json.Marshal(old)
	changed, _ := json.Marshal(map[string]any{"Name": "a", "Description": "x", "Other": 1})
	if _, err, _ := p.Apply(changed); err == nil {
		t.Fatal("paranoid patch applied to a changed document")
	}
	if _, err, _ := p.Apply(oldJSON); err != nil {
		t.Fatalf("paranoid patch on the original: %v", err)
	}
	var _ jsonpatch2.Patch = p
}

func TestPatchToNoChangeDoesNotWrite(t *testing.T) {
	f, srv := newFakeAPI(t)
	obj := testMachine{Name: "m1"}
	f.put("machines/m1", obj)
	c := newTestClient(t, srv.URL, Options{Token: "good-token"})
	var got testMachine
	if err := c.PatchTo(context.Background(), "machines", "m1", obj, obj, &got); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.headers {
		if h.Get("Content-Type") != "" {
			t.Fatal("an unchanged object was written")
		}
	}
	if got.Name != "m1" {
		t.Fatalf("got %+v", got)
	}
}

func TestCAPoolVerifiesServer(t *testing.T) {
	f, srv := newFakeAPI(t)
	f.put("profiles/global", map[string]any{"Name": "global"})
	// An unrelated pool rejects the server's certificate, without retries.
	c := newTestClient(t, srv.URL, Options{Token: "good-token", RootCAs: x509.NewCertPool()})
	if err := c.Get(context.Background(), "profiles", "global", nil); err == nil {
		t.Fatal("an empty CA pool accepted the server")
	}
	f.mu.Lock()
	if f.attempts != 0 {
		t.Errorf("the server saw %d requests from an unverified client", f.attempts)
	}
	f.mu.Unlock()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c = newTestClient(t, srv.URL, Options{Token: "good-token", RootCAs: pool})
	if err := c.Get(context.Background(), "profiles", "global", nil); err != nil {
		t.Fatalf("the server's own CA was rejected: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("RS_ENDPOINT", "")
	t.Setenv("RS_TOKEN", "")
	t.Setenv("RS_USERNAME", "")
	t.Setenv("RS_PASSWORD", "")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint() != DefaultEndpoint || c.authHeader() != "Basic cm9ja2V0c2thdGVzOnJvY2tldHNrYXRlcw==" {
		t.Fatalf("defaults: %s %s", c.Endpoint(), c.authHeader())
	}
	t.Setenv("RS_ENDPOINT", "https://example.test:9000/")
	t.Setenv("RS_TOKEN", "tok")
	c, err = FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint() != "https://example.test:9000" || c.authHeader() != "Bearer tok" {
		t.Fatalf("env: %s %s", c.Endpoint(), c.authHeader())
	}
	if _, err := New("ftp://x", Options{}); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
}

func TestURLBuilding(t *testing.T) {
	c := newTestClient(t, "https://h:1/proxy/", Options{})
	if got := c.url("machines/Name:a b/params/incrementer/step", nil).String(); got != "https://h:1/proxy/api/v3/machines/Name:a%20b/params/incrementer/step" {
		t.Fatalf("url = %s", got)
	}
	if got := c.wsURL(); got != "wss://h:1/proxy/api/v3/ws" {
		t.Fatalf("wsURL = %s", got)
	}
}
