package server_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/servertest"
)

func tlsDial(t *testing.T, ts *servertest.Server, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	host := strings.TrimPrefix(ts.URL, "https://")
	d := &net.Dialer{Timeout: 10 * time.Second}
	return tls.DialWithDialer(d, "tcp", host, cfg)
}

// TestTLSRefusesCBCSuites: a TLS 1.2 client offering only CBC suites (the
// SHA-1 and SHA-256 ones Go still knows) cannot complete a handshake.
func TestTLSRefusesCBCSuites(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c, err := tlsDial(t, ts, &tls.Config{
		InsecureSkipVerify: true, // self-signed test certificate
		MaxVersion:         tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		},
	})
	if err == nil {
		st := c.ConnectionState()
		c.Close()
		t.Fatalf("handshake with CBC-only TLS 1.2 client succeeded: suite %s", tls.CipherSuiteName(st.CipherSuite))
	}
}

// TestTLSNegotiation: a default client gets TLS 1.3; a TLS 1.2-only client
// gets an AEAD suite.
func TestTLSNegotiation(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c, err := tlsDial(t, ts, &tls.Config{InsecureSkipVerify: true}) // self-signed test certificate
	if err != nil {
		t.Fatalf("default handshake: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("default client negotiated %s, want TLS 1.3", tls.VersionName(v))
	}
	c.Close()
	c, err = tlsDial(t, ts, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}) // self-signed test certificate
	if err != nil {
		t.Fatalf("TLS 1.2 handshake: %v", err)
	}
	defer c.Close()
	name := tls.CipherSuiteName(c.ConnectionState().CipherSuite)
	if !strings.Contains(name, "GCM") && !strings.Contains(name, "CHACHA20") {
		t.Errorf("TLS 1.2 client got suite %s, want an AEAD suite", name)
	}
}
