package tlsutil

import "crypto/tls"

// AEADSuites returns the only TLS 1.2 cipher suites the API offers: ECDHE
// key exchange with an AEAD cipher (AES-GCM or ChaCha20-Poly1305). CBC
// suites (with SHA-1 or SHA-256 MACs) and static-RSA key exchange are left
// out. TLS 1.3 suites are not configurable in Go and are all AEAD.
func AEADSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// ServerConfig is the TLS configuration of the API listener: TLS 1.3
// preferred (Go negotiates the highest version both sides speak), TLS 1.2
// accepted with AEADSuites only, nothing older.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: AEADSuites(),
	}
}
