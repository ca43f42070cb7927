package bmc

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/cookiejar"
	"time"
)

// NewHTTPClient returns the HTTPS client the HTTP-based drivers (redfish,
// lpar) use: certificate verification off (BMCs and HMCs ship self-signed
// certificates, as DRP assumed), every request bounded by timeout, GET/HEAD
// re-sent up to retries times when no HTTP answer came back, and a cookie
// jar for cookie-based sessions.
func NewHTTPClient(timeout time.Duration, retries int) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Timeout: timeout,
		Jar:     jar,
		Transport: &retryTransport{retries: retries, base: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // BMC certificates are self-signed
			TLSHandshakeTimeout: min(timeout, 10*time.Second),
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConnsPerHost: 2,
		}},
	}
}

// retryTransport re-sends GET/HEAD requests that got no HTTP answer.
type retryTransport struct {
	base    *http.Transport
	retries int
}

// RoundTrip implements http.RoundTripper.
func (rt *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(r)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return resp, err
	}
	for i := 0; i < rt.retries && err != nil && r.Context().Err() == nil; i++ {
		t := time.NewTimer(time.Duration(i+1) * 100 * time.Millisecond)
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		t.Stop()
		resp, err = rt.base.RoundTrip(r)
	}
	return resp, err
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the base.
func (rt *retryTransport) CloseIdleConnections() { rt.base.CloseIdleConnections() }
