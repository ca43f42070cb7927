package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/servertest"
	"github.com/provisionhq/provision/server/store"
)

// benchServer starts a server with n machines and returns it, a bearer
// header and the first machine's key.
func benchServer(b *testing.B, n int) (*servertest.Server, string, string) {
	b.Helper()
	ts := servertest.Start(b, servertest.Options{Config: func(c *config.Config) { c.LogLevel = "info" }})
	var first string
	for i := 0; i < n; i++ {
		var m models.Machine
		resp, body := ts.Do(b, "POST", "/api/v3/machines", map[string]any{"Name": fmt.Sprintf("b%03d", i), "Params": map[string]any{"rack": i % 4}})
		if resp.StatusCode != 201 {
			b.Fatalf("create: %d %s", resp.StatusCode, body)
		}
		if i == 0 {
			models.Remarshal(jsonAny(b, body), &m)
			first = m.Uuid.String()
		}
	}
	resp, body := ts.Do(b, "GET", "/api/v3/users/rocketskates/token?ttl=3600", nil)
	if resp.StatusCode != 200 {
		b.Fatalf("token: %d", resp.StatusCode)
	}
	var ut models.UserToken
	models.Remarshal(jsonAny(b, body), &ut)
	return ts, servertest.Bearer(ut.Token), first
}

func jsonAny(b *testing.B, buf []byte) any {
	var v any
	if err := jsonUnmarshal(buf, &v); err != nil {
		b.Fatal(err)
	}
	return v
}

func doBench(b *testing.B, hc *http.Client, authz, method, url, body string, want int) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Authorization", authz)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
}

// BenchmarkHTTPSGet: GET one machine over real HTTPS (HTTP/2, keep-alive).
func BenchmarkHTTPSGet(b *testing.B) {
	ts, authz, key := benchServer(b, 1)
	hc := servertest.HTTPClient()
	url := ts.URL + "/api/v3/machines/" + key
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		doBench(b, hc, authz, "GET", url, "", 200)
	}
}

// BenchmarkHTTPSGetParallel: the same with concurrent clients.
func BenchmarkHTTPSGetParallel(b *testing.B) {
	ts, authz, key := benchServer(b, 1)
	hc := servertest.HTTPClient()
	url := ts.URL + "/api/v3/machines/" + key
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			doBench(b, hc, authz, "GET", url, "", 200)
		}
	})
}

// BenchmarkHTTPSList100: list 100 machines with a filter over HTTPS.
func BenchmarkHTTPSList100(b *testing.B) {
	ts, authz, _ := benchServer(b, 100)
	hc := servertest.HTTPClient()
	url := ts.URL + "/api/v3/machines?rack=Lt(4)"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		doBench(b, hc, authz, "GET", url, "", 200)
	}
}

// BenchmarkHTTPSPatch: PATCH one field (test+replace), durable (fsync) per request.
func BenchmarkHTTPSPatch(b *testing.B) {
	ts, authz, key := benchServer(b, 1)
	hc := servertest.HTTPClient()
	url := ts.URL + "/api/v3/machines/" + key
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf(`[{"op":"replace","path":"/Description","value":"d%d"}]`, i)
		doBench(b, hc, authz, "PATCH", url, body, 200)
	}
}

// BenchmarkInProcessGet is the floor for HTTPS GET: the same gin handler
// called directly (no TLS, no network).
func BenchmarkInProcessGet(b *testing.B) {
	ts, authz, key := benchServer(b, 1)
	h := ts.Server.API().Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", "/api/v3/machines/"+key, nil)
		req.Header.Set("Authorization", authz)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkInProcessList100 is the floor for the list benchmark.
func BenchmarkInProcessList100(b *testing.B) {
	ts, authz, _ := benchServer(b, 100)
	h := ts.Server.API().Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", "/api/v3/machines?rack=Lt(4)", nil)
		req.Header.Set("Authorization", authz)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkInProcessPatch is the floor for PATCH (handler + store fsync).
func BenchmarkInProcessPatch(b *testing.B) {
	ts, authz, key := benchServer(b, 1)
	h := ts.Server.API().Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf(`[{"op":"replace","path":"/Description","value":"d%d"}]`, i)
		req := httptest.NewRequest("PATCH", "/api/v3/machines/"+key, strings.NewReader(body))
		req.Header.Set("Authorization", authz)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkServiceGet is the object service read the handler performs.
func BenchmarkServiceGet(b *testing.B) {
	ts, _, key := benchServer(b, 1)
	objs := ts.Server.Objects()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := objs.GetRendered(ctx, "GET", "machines", key, objects.RenderOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreRead is a raw bbolt read of the same object.
func BenchmarkStoreRead(b *testing.B) {
	ts, _, key := benchServer(b, 1)
	st := ts.Server.Store()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := st.View(ctx, func(tx store.Tx) error {
			if _, ok := tx.Get("machines", key); !ok {
				return fmt.Errorf("missing")
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
