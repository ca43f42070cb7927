// Package netlimit caps the connections a listener keeps open, in total
// and per source address, so that one client (or a flood of them) cannot
// exhaust the process's file descriptors and stop the server answering
// everyone.
//
// A connection over the per-address cap is closed as soon as it is
// accepted (on a plain HTTP listener after a one-line 503 answer). The
// last Reserve slots of the total are reserve slots for the administrator,
// who is only known after TLS and HTTP authentication, so the reserve
// cannot be decided at accept time. Instead a connection accepted into a
// reserve slot is marked (ConnContext, Reserved) and must prove itself:
// the HTTP layer serves on it only requests that authenticate as a
// superuser, then calls Claim; any other request is refused and the
// connection closed. Until claimed, reserve connections are cheap to
// take away: when the listener is full, a new connection evicts the oldest
// unclaimed reserve connection instead of being refused, so idle
// connections cannot squat the reserve; connections are refused for the
// total cap only when every reserve slot is claimed. An idle connection
// is in any case closed by the server's header timeout.
package netlimit

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal reasons, the "reason" label of the refused-connections metric.
const (
	ReasonTotal   = "total"
	ReasonPerIP   = "per_ip"
	ReasonReserve = "reserve"
	ReasonEvicted = "evicted"
)

// Metrics are the connection-limit metrics shared by every limited
// listener (labelled by listener name).
type Metrics struct {
	refused  *prometheus.CounterVec
	accepted *prometheus.CounterVec
	open     *prometheus.GaugeVec
}

// NewMetrics registers provision_connections_refused_total{listener,reason},
// provision_connections_accepted_total{listener} and
// provision_connections_open{listener} on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_connections_refused_total",
			Help: "Connections closed because a connection cap was reached, by listener and reason: total, per_ip, reserve (a reserve connection's request was not a superuser's), evicted (an unclaimed reserve connection made way for a newer one).",
		}, []string{"listener", "reason"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_connections_accepted_total", Help: "Connections accepted within the caps, by listener.",
		}, []string{"listener"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "provision_connections_open", Help: "Open connections by listener.",
		}, []string{"listener"}),
	}
	reg.MustRegister(m.refused, m.accepted, m.open)
	return m
}

// Refused counts one connection of listener refused for reason.
func (m *Metrics) Refused(listener, reason string) {
	if m != nil {
		m.refused.WithLabelValues(listener, reason).Inc()
	}
}

// Options configure a limited listener.
type Options struct {
	// Name labels the listener in metrics ("api", "static").
	Name string
	// Max caps open connections (must be positive).
	Max int
	// PerIP caps open connections from one source address (must be
	// positive).
	PerIP int
	// Reserve is how many of Max are reserve slots (see the package doc).
	Reserve int
	// RefuseHTTP answers a refused connection with a plain-text HTTP 503
	// before closing it (for listeners that serve plain HTTP).
	RefuseHTTP bool
	// Metrics receives refusals and the open count; nil records nothing.
	Metrics *Metrics
}

// Listener is a net.Listener that enforces Options.
type Listener struct {
	net.Listener
	opts Options

	mu       sync.Mutex
	total    int
	perIP    map[string]int
	unclaimd []*Conn // reserve connections not yet claimed, oldest first
}

// Wrap limits ln.
func Wrap(ln net.Listener, opts Options) *Listener {
	return &Listener{Listener: ln, opts: opts, perIP: map[string]int{}}
}

// Open is the number of connections currently open.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Accept returns the next connection within the caps; connections over a
// cap are closed here and never reach the caller.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := sourceIP(c.RemoteAddr())
		for {
			lc, victim, reason := l.admit(c, ip)
			if lc != nil {
				return lc, nil
			}
			if victim == nil {
				l.opts.Metrics.Refused(l.opts.Name, reason)
				l.refuse(c, reason)
				break
			}
			// Make way: close the oldest unclaimed reserve connection
			// (outside the lock: Close releases its slot), then retry.
			l.opts.Metrics.Refused(l.opts.Name, ReasonEvicted)
			_ = victim.Close()
		}
	}
}

// admit takes a slot for c, or returns an unclaimed reserve connection to
// evict first, or the reason to refuse c.
func (l *Listener) admit(c net.Conn, ip string) (*Conn, *Conn, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.perIP[ip] >= l.opts.PerIP:
		return nil, nil, ReasonPerIP
	case l.total >= l.opts.Max && len(l.unclaimd) > 0:
		victim := l.unclaimd[0]
		l.unclaimd = l.unclaimd[1:]
		return nil, victim, ""
	case l.total >= l.opts.Max:
		return nil, nil, ReasonTotal
	}
	l.total++
	l.perIP[ip]++
	if l.opts.Metrics != nil {
		l.opts.Metrics.open.WithLabelValues(l.opts.Name).Set(float64(l.total))
		l.opts.Metrics.accepted.WithLabelValues(l.opts.Name).Inc()
	}
	lc := &Conn{Conn: c, l: l, ip: ip, reserve: l.total > l.opts.Max-l.opts.Reserve}
	if lc.reserve {
		l.unclaimd = append(l.unclaimd, lc)
	}
	return lc, nil, ""
}

// unqueue removes c from the unclaimed reserve connections (callers hold
// mu).
func (l *Listener) unqueue(c *Conn) {
	for i, u := range l.unclaimd {
		if u == c {
			l.unclaimd = append(l.unclaimd[:i:i], l.unclaimd[i+1:]...)
			return
		}
	}
}

func (l *Listener) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unqueue(c)
	l.total--
	if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
		delete(l.perIP, c.ip)
	}
	if l.opts.Metrics != nil {
		l.opts.Metrics.open.WithLabelValues(l.opts.Name).Set(float64(l.total))
	}
}

// refuse closes c, first answering 503 on a plain HTTP listener. The write
// is bounded so a client that does not read cannot stall Accept.
func (l *Listener) refuse(c net.Conn, reason string) {
	if l.opts.RefuseHTTP {
		msg := "too many connections to this server"
		if reason == ReasonPerIP {
			msg = "too many connections from your address"
		}
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: " +
			strconv.Itoa(len(msg)+1) + "\r\n\r\n" + msg + "\n"))
	}
	_ = c.Close()
}

func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Conn is a connection counted by a Listener; Close releases its slot.
type Conn struct {
	net.Conn
	l       *Listener
	ip      string
	reserve bool
	claimed bool // guarded by l.mu
	once    sync.Once
}

// Reserve reports whether the connection holds a reserve slot.
func (c *Conn) Reserve() bool { return c.reserve }

// Close closes the connection and frees its slot (once).
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

type connKey struct{}

// ConnContext is an http.Server.ConnContext that records the limited
// connection (TLS connections are unwrapped) in every request's context,
// for Reserved and Claim.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// Reserved reports whether ctx belongs to a request on a reserve
// connection: every request on it must be a superuser's.
func Reserved(ctx context.Context) bool {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c != nil && c.reserve
}

// Claim marks the reserve connection of ctx as proven (a superuser's
// request is served on it), so it is no longer evicted for newer
// connections. Later requests on it are still held to Reserved.
func Claim(ctx context.Context) {
	c, _ := ctx.Value(connKey{}).(*Conn)
	if c == nil || !c.reserve {
		return
	}
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.claimed = true
	c.l.unqueue(c)
}
