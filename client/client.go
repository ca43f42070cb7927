// Package client is the Go client of the provision REST API (/api/v3). It is
// shared by provctl and by pluginsdk, and speaks the same wire protocol as
// Digital Rebar Provision's api client, so it also works against DRP.
//
// TLS: provisiond normally serves a self-signed certificate, so by default
// the client accepts whatever certificate the server presents, exactly as
// DRP's client does. Set Options.RootCAs to verify the server against a CA
// pool instead, or supply a fully configured Options.HTTPClient.
//
// Errors: every HTTP status >= 400 is returned as a *models.Error decoded
// from the body (use errors.As). Transport failures are retried with a short,
// bounded backoff when the request body can be replayed.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
)

// APIPath is the path prefix of every REST call.
const APIPath = "/api/v3"

// Defaults used by FromEnv and by New for unset options.
const (
	// DefaultEndpoint is where provisiond listens out of the box.
	DefaultEndpoint = "https://127.0.0.1:8092"
	// DefaultUsername is the built-in admin user.
	DefaultUsername = "rocketskates"
	// DefaultPassword is DRP's well-known default password of the admin user.
	DefaultPassword = "rocketskates"
	// DefaultRequestTimeout bounds one REST call (all its retries included)
	// when the caller's context has no earlier deadline.
	DefaultRequestTimeout = 5 * time.Minute
	// DefaultMaxRetries is how many times a transport failure is retried.
	DefaultMaxRetries = 5
	// DefaultRetryDelay is the first retry backoff; it doubles on each retry.
	DefaultRetryDelay = 100 * time.Millisecond
	// maxRetryDelay caps a single retry backoff.
	maxRetryDelay = 2 * time.Second
	// maxErrorBody bounds how much of an error response is read.
	maxErrorBody = 1 << 20
)

// Options configures a Client.
type Options struct {
	// Token is a bearer token (RS_TOKEN). Takes precedence over Username/Password.
	Token string
	// Username and Password are used for Basic auth when Token is empty.
	Username, Password string
	// HTTPClient overrides the transport (tests, unix sockets). When nil a
	// client that accepts the server's self-signed certificate is used.
	HTTPClient *http.Client
	// UserAgent is sent with every request.
	UserAgent string
	// RootCAs, when set (and HTTPClient is nil), makes the client verify the
	// server certificate against this pool instead of accepting any.
	RootCAs *x509.CertPool
	// RequestTimeout bounds each call; 0 means DefaultRequestTimeout and a
	// negative value means no limit beyond the caller's context.
	RequestTimeout time.Duration
	// MaxRetries is how often a transport error is retried; 0 means
	// DefaultMaxRetries and a negative value disables retries.
	MaxRetries int
	// RetryDelay is the first retry backoff (doubled each time, capped at
	// 2s); 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// ParanoidPatch makes PatchTo prepend a test of the whole original
	// object (drpcli --ref), so the update fails if anything changed.
	ParanoidPatch bool
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
}

// Client talks to one provision endpoint. It is safe for concurrent use.
type Client struct {
	endpoint string
	base     *url.URL
	opts     Options
	hc       *http.Client
	// wsHC is used for websocket handshakes; it never negotiates HTTP/2,
	// which cannot carry an Upgrade.
	wsHC *http.Client
	log  *slog.Logger
}

// New returns a client for endpoint (e.g. https://127.0.0.1:8092; the
// /api/v3 prefix is added by the client).
func New(endpoint string, opts Options) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("client: bad endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: bad endpoint %q: scheme must be http or https", endpoint)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: bad endpoint %q: missing host", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = DefaultRetryDelay
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "provision-client"
	}
	c := &Client{endpoint: strings.TrimSuffix(endpoint, "/"), base: u, opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient != nil {
		c.hc = opts.HTTPClient
		c.wsHC = http1Only(opts.HTTPClient)
	} else {
		tr := defaultTransport(opts.RootCAs)
		c.hc = &http.Client{Transport: tr}
		c.wsHC = http1Only(c.hc)
	}
	return c, nil
}

// defaultTransport is http.DefaultTransport with bounded dial/handshake
// times and either a CA pool or acceptance of self-signed certificates.
func defaultTransport(pool *x509.CertPool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if pool != nil {
		tlsConf.RootCAs = pool
	} else {
		// provisiond (like DRP) uses a self-signed certificate by default.
		tlsConf.InsecureSkipVerify = true //nolint:gosec // documented default, see package doc
	}
	tr.TLSClientConfig = tlsConf
	return tr
}

// http1Only returns a copy of hc whose transport (when it is an
// *http.Transport) speaks only HTTP/1.1, as websocket handshakes need.
func http1Only(hc *http.Client) *http.Client {
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		if hc.Transport != nil {
			return hc
		}
		tr = http.DefaultTransport.(*http.Transport)
	}
	tr = tr.Clone()
	var p http.Protocols
	p.SetHTTP1(true)
	tr.Protocols = &p
	cp := *hc
	cp.Transport = tr
	return &cp
}

// FromEnv builds a client from RS_ENDPOINT (default https://127.0.0.1:8092)
// and RS_TOKEN, falling back to RS_USERNAME/RS_PASSWORD.
func FromEnv() (*Client, error) {
	opts := Options{Token: os.Getenv("RS_TOKEN")}
	if opts.Token == "" {
		opts.Username = envOr("RS_USERNAME", DefaultUsername)
		opts.Password = envOr("RS_PASSWORD", DefaultPassword)
	}
	return New(envOr("RS_ENDPOINT", DefaultEndpoint), opts)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// WithRequestTimeout returns a client that shares c's connections and
// settings but bounds each call by d instead (0: DefaultRequestTimeout,
// negative: only the caller's context), e.g. for one long plugin action.
func (c *Client) WithRequestTimeout(d time.Duration) *Client {
	if d == 0 {
		d = DefaultRequestTimeout
	}
	cp := *c
	cp.opts.RequestTimeout = d
	return &cp
}

// RequestTimeout is the bound of each call (negative: none).
func (c *Client) RequestTimeout() time.Duration { return c.opts.RequestTimeout }

// Endpoint returns the base URL the client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// url builds the absolute URL of /api/v3/<path>?query. path segments are
// escaped as needed; slashes inside path are kept (param names contain them).
func (c *Client) url(path string, query url.Values) *url.URL {
	u := *c.base
	u.Path = c.base.Path + APIPath + "/" + strings.TrimPrefix(path, "/")
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return &u
}

// authHeader is the Authorization header value for the configured credentials.
func (c *Client) authHeader() string {
	if c.opts.Token != "" {
		return "Bearer " + c.opts.Token
	}
	if c.opts.Username != "" || c.opts.Password != "" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.opts.Username+":"+c.opts.Password))
	}
	return ""
}

// requestBody is a prepared request body that can be replayed when possible.
type requestBody struct {
	contentType string
	length      int64
	// open returns the body for one attempt; nil when there is no body.
	open func() (io.Reader, error)
	// rewindable reports whether open may be called more than once.
	rewindable bool
}

func prepareBody(body any) (*requestBody, error) {
	switch b := body.(type) {
	case nil:
		return &requestBody{rewindable: true}, nil
	case io.Reader:
		rb := &requestBody{contentType: "application/octet-stream", length: -1}
		if s, ok := b.(io.Seeker); ok {
			start, err := s.Seek(0, io.SeekCurrent)
			if err == nil {
				if end, err := s.Seek(0, io.SeekEnd); err == nil {
					rb.length = end - start
				}
				if _, err := s.Seek(start, io.SeekStart); err != nil {
					return nil, fmt.Errorf("client: rewinding request body: %w", err)
				}
				rb.rewindable = true
				rb.open = func() (io.Reader, error) {
					if _, err := s.Seek(start, io.SeekStart); err != nil {
						return nil, fmt.Errorf("client: rewinding request body: %w", err)
					}
					return b, nil
				}
				return rb, nil
			}
		}
		used := false
		rb.open = func() (io.Reader, error) {
			if used {
				return nil, errors.New("client: request body cannot be replayed")
			}
			used = true
			return b, nil
		}
		return rb, nil
	default:
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("client: encoding request body: %w", err)
		}
		return &requestBody{
			contentType: "application/json",
			length:      int64(len(buf)),
			rewindable:  true,
			open:        func() (io.Reader, error) { return bytes.NewReader(buf), nil },
		}, nil
	}
}

// Do sends one request to /api/v3/<path> with the given query. body, when
// not nil, is sent as JSON (an io.Reader is streamed as octet-stream); out,
// when not nil, receives the decoded JSON answer (an io.Writer receives the
// raw body). Any status >= 400 is returned as a *models.Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	_, err := c.do(ctx, method, path, query, body, out)
	return err
}

// do is Do that also returns the response (with its body consumed).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (*http.Response, error) {
	if c.opts.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.RequestTimeout)
		defer cancel()
	}
	rb, err := prepareBody(body)
	if err != nil {
		return nil, err
	}
	u := c.url(path, query)
	_, raw := out.(io.Writer)
	retries := c.opts.MaxRetries
	if retries < 0 || !rb.rewindable {
		retries = 0
	}
	delay := c.opts.RetryDelay
	for attempt := 0; ; attempt++ {
		req, err := c.newRequest(ctx, method, u, rb, raw)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err == nil {
			return resp, c.handleResponse(resp, method, path, out)
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// The caller gave up while the transport failed on its own
			// (e.g. a dropped connection): say both, so errors.Is finds
			// the cancellation the caller asked for.
			return nil, fmt.Errorf("client: %w (and the request's context ended: %w)", err, cerr)
		}
		if ctx.Err() != nil || attempt >= retries || !retryable(err) {
			// err (a *url.Error) already names the method and URL.
			return nil, fmt.Errorf("client: %w", err)
		}
		c.log.Debug("retrying after transport error", "method", method, "url", u.Redacted(), "attempt", attempt+1, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("client: %w (gave up retrying: %w)", err, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, maxRetryDelay)
	}
}

// retryable reports whether a transport error may go away on retry.
func retryable(err error) bool {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil && strings.Contains(ue.Err.Error(), "unsupported protocol scheme") {
		return false
	}
	return true
}

func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, rb *requestBody, raw bool) (*http.Request, error) {
	var r io.Reader
	if rb.open != nil {
		var err error
		if r, err = rb.open(); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("client: building %s %s: %w", method, u.Redacted(), err)
	}
	if r != nil {
		if rb.length >= 0 {
			req.ContentLength = rb.length
		}
		req.Header.Set("Content-Type", rb.contentType)
	}
	if raw {
		req.Header.Set("Accept", "application/octet-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("Cache-Control", "no-store")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if a := c.authHeader(); a != "" {
		req.Header.Set("Authorization", a)
	}
	return req, nil
}

// handleResponse turns an error status into a *models.Error or decodes the
// body into out, and always closes the body.
func (c *Client) handleResponse(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return decodeError(resp, method, path)
	}
	switch o := out.(type) {
	case nil:
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	case io.Writer:
		if _, err := io.Copy(o, resp.Body); err != nil {
			return fmt.Errorf("client: reading %s %s: %w", method, path, err)
		}
		return nil
	default:
		if resp.StatusCode == http.StatusNoContent || method == http.MethodHead {
			return nil
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("client: decoding answer of %s %s: %w", method, path, err)
		}
		return nil
	}
}

// decodeError builds the *models.Error for a failed response. A body that is
// not a models.Error becomes Type CLIENT_ERROR carrying the raw body.
func decodeError(resp *http.Response, method, path string) error {
	buf, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &models.Error{}
	if len(bytes.TrimSpace(buf)) > 0 && json.Unmarshal(buf, e) == nil && (e.Type != "" || len(e.Messages) > 0) {
		if e.Code == 0 {
			e.Code = resp.StatusCode
		}
		return e
	}
	e = &models.Error{Model: path, Type: "CLIENT_ERROR", Code: resp.StatusCode}
	if len(bytes.TrimSpace(buf)) > 0 {
		e.Messages = []string{string(buf)}
	} else {
		// HEAD answers and empty bodies carry no error document.
		e.Messages = []string{fmt.Sprintf("%s: %d %s", method, resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return e
}
