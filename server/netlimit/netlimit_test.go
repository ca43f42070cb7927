package netlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c (EOF or reset)
// within a generous deadline rather than keeping it open.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || err != nil
}

func TestCapsAndReserve(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	ln := Wrap(raw, Options{Name: "t", Max: 3, PerIP: 2, Reserve: 1, Metrics: m})
	defer ln.Close()
	accepted := make(chan *Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.(*Conn)
		}
	}()
	next := func() *Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	addr := raw.Addr().String()
	dialFrom(t, "127.0.0.1", addr)
	dialFrom(t, "127.0.0.1", addr)
	a1, a2 := next(), next()
	if a1.Reserve() || a2.Reserve() {
		t.Fatal("first connections marked reserve")
	}
	if over := dialFrom(t, "127.0.0.1", addr); !closedByServer(t, over) {
		t.Fatal("third connection from one address kept open")
	}
	squat := dialFrom(t, "127.0.0.2", addr)
	r := next()
	if !r.Reserve() || !Reserved(ConnContext(context.Background(), r)) {
		t.Fatal("connection into the last slot not marked reserve")
	}
	// The listener is full; the unclaimed reserve connection makes way.
	dialFrom(t, "127.0.0.3", addr)
	admin := next()
	if !closedByServer(t, squat) {
		t.Fatal("unclaimed reserve connection not evicted for a newer one")
	}
	if !admin.Reserve() || ln.Open() != 3 {
		t.Fatalf("newcomer reserve=%v, open=%d; want a reserve slot and 3 open", admin.Reserve(), ln.Open())
	}
	Claim(ConnContext(context.Background(), admin))
	if over := dialFrom(t, "127.0.0.4", addr); !closedByServer(t, over) {
		t.Fatal("connection over the total kept open although the reserve is claimed")
	}
	if got := counter(t, m.refused.WithLabelValues("t", ReasonEvicted)); got != 1 {
		t.Errorf("evictions = %v", got)
	}
	if got := counter(t, m.refused.WithLabelValues("t", ReasonPerIP)); got != 1 {
		t.Errorf("per_ip refusals = %v", got)
	}
	if got := counter(t, m.refused.WithLabelValues("t", ReasonTotal)); got != 1 {
		t.Errorf("total refusals = %v", got)
	}
	a1.Close()
	a1.Close() // a second Close frees nothing more
	if ln.Open() != 2 {
		t.Fatalf("open = %d after one close, want 2", ln.Open())
	}
	dialFrom(t, "127.0.0.5", addr)
	if c := next(); !c.Reserve() {
		t.Fatal("slot freed below a full reserve: new connection should take the reserve slot")
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
