package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// tokenClient returns a client of ts using a bearer token (Basic auth
// would add a password hash check to every request).
func tokenClient(b *testing.B, ts *servertest.Server) *client.Client {
	ctx := context.Background()
	tok, err := ts.Client(b).UserToken(ctx, servertest.AdminUser, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(ts.URL, client.Options{Token: tok.Token})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkE2EGetMachine measures GET /machines/<uuid> through the client
// against a real in-process provisiond (token auth, TLS keep-alive).
func BenchmarkE2EGetMachine(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{Config: quiet})
	c := tokenClient(b, ts)
	ctx := context.Background()
	var m models.Machine
	if err := c.Create(ctx, "machines", &models.Machine{Name: "bench", Params: map[string]any{"a": 1}}, &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var got models.Machine
		if err := c.Get(ctx, "machines", m.Key(), &got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkE2EPatchTo measures an update through PatchTo (generated patch
// with test ops, applied and stored by a real provisiond).
func BenchmarkE2EPatchTo(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{Config: quiet})
	c := tokenClient(b, ts)
	ctx := context.Background()
	var m models.Machine
	if err := c.Create(ctx, "machines", &models.Machine{Name: "bench"}, &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		next := m
		next.Params = map[string]any{"counter": float64(i)}
		var got models.Machine
		if err := c.PatchTo(ctx, "machines", m.Key(), &m, &next, &got); err != nil {
			b.Fatal(err)
		}
		m, i = got, i+1
	}
}

// quiet keeps debug logging out of the measurement.
func quiet(c *config.Config) { c.LogLevel = "warn" }
