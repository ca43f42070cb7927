package client

import (
	"context"
	"testing"
)

// BenchmarkClientGet measures one authenticated GET round trip (request
// building, TLS keep-alive connection, JSON decoding) against an in-process
// TLS server.
func BenchmarkClientGet(b *testing.B) {
	f, srv := newFakeAPI(b)
	f.keepAlive = true
	f.put("machines/m1", testMachine{Name: "m1", Params: map[string]any{"a": 1.0}, Profiles: []string{"p"}})
	c, err := New(srv.URL, Options{Token: "good-token"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var m testMachine
		if err := c.Get(ctx, "machines", "m1", &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientPatchTo measures generating a JSON Patch with test ops and
// sending it (the provctl update path).
func BenchmarkClientPatchTo(b *testing.B) {
	f, srv := newFakeAPI(b)
	f.keepAlive = true
	a := testMachine{Name: "m1", Params: map[string]any{"n": 0.0}, Profiles: []string{}, Tasks: []string{}}
	f.put("machines/m1", a)
	c, err := New(srv.URL, Options{Token: "good-token"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0.0
	for b.Loop() {
		next := testMachine{Name: "m1", Params: map[string]any{"n": n + 1}, Profiles: []string{}, Tasks: []string{}}
		var got testMachine
		if err := c.PatchTo(ctx, "machines", "m1", a, next, &got); err != nil {
			b.Fatal(err)
		}
		a, n = got, n+1
	}
}
