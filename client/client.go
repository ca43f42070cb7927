// Package client is the Go client of the provision REST API (/api/v3). It is
// shared by provctl and by pluginsdk, and speaks the same wire protocol as
// Digital Rebar Provision's api client, so it also works against DRP.
//
// CONTRACT STUB: the signatures below are the agreed API; bodies are being
// implemented. Do not change signatures without updating every caller.
package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/models"
)

var errUnimplemented = errors.New("client: not implemented yet")

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
}

// Client talks to one provision endpoint. It is safe for concurrent use.
type Client struct {
	endpoint string
	opts     Options
}

// New returns a client for endpoint (e.g. https://127.0.0.1:8092; the
// /api/v3 prefix is added by the client).
func New(endpoint string, opts Options) (*Client, error) {
	return &Client{endpoint: endpoint, opts: opts}, nil
}

// FromEnv builds a client from RS_ENDPOINT (default https://127.0.0.1:8092)
// and RS_TOKEN, falling back to RS_USERNAME/RS_PASSWORD.
func FromEnv() (*Client, error) { return nil, errUnimplemented }

// Endpoint returns the base URL the client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// Do sends one request to /api/v3/<path> with the given query. body, when
// not nil, is sent as JSON (an io.Reader is streamed as octet-stream); out,
// when not nil, receives the decoded JSON answer (an io.Writer receives the
// raw body). Any status >= 400 is returned as a *models.Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return errUnimplemented
}

// Info fetches GET /api/v3/info.
func (c *Client) Info(ctx context.Context) (*models.Info, error) { return nil, errUnimplemented }

// List fetches a collection into out (a pointer to a slice). filters are
// key/value pairs in DRP's syntax, e.g. "Name", "Eq(foo)", "limit", "10".
func (c *Client) List(ctx context.Context, prefix string, out any, filters ...string) error {
	return errUnimplemented
}

// Get fetches one object by key or <Index>:<value>.
func (c *Client) Get(ctx context.Context, prefix, key string, out any) error { return errUnimplemented }

// Exists reports whether an object exists (HEAD).
func (c *Client) Exists(ctx context.Context, prefix, key string) (bool, error) {
	return false, errUnimplemented
}

// Create POSTs obj to the collection; out receives the created object.
func (c *Client) Create(ctx context.Context, prefix string, obj, out any) error {
	return errUnimplemented
}

// Put replaces an object.
func (c *Client) Put(ctx context.Context, prefix, key string, obj, out any) error {
	return errUnimplemented
}

// Patch applies an RFC 6902 patch to an object.
func (c *Client) Patch(ctx context.Context, prefix, key string, patch jsonpatch2.Patch, out any) error {
	return errUnimplemented
}

// PatchTo generates a patch (with test ops) from old to new and applies it,
// as DRP's client does for updates.
func (c *Client) PatchTo(ctx context.Context, prefix, key string, old, new, out any) error {
	return errUnimplemented
}

// Delete removes an object; out, when not nil, receives the deleted object.
func (c *Client) Delete(ctx context.Context, prefix, key string, out any) error {
	return errUnimplemented
}

// GetParams returns an object's params, aggregated over profiles and global
// when aggregate is true.
func (c *Client) GetParams(ctx context.Context, prefix, key string, aggregate bool) (map[string]any, error) {
	return nil, errUnimplemented
}

// GetParam decodes one param value into out (JSON null when unset).
func (c *Client) GetParam(ctx context.Context, prefix, key, name string, aggregate bool, out any) error {
	return errUnimplemented
}

// SetParam sets one param on an object.
func (c *Client) SetParam(ctx context.Context, prefix, key, name string, value any) error {
	return errUnimplemented
}

// DeleteParam removes one param from an object.
func (c *Client) DeleteParam(ctx context.Context, prefix, key, name string) error {
	return errUnimplemented
}

// RunAction POSTs /<prefix>/<key>/actions/<cmd>[?plugin=] (prefix "system"
// with key "" for system actions) and decodes the result into out.
func (c *Client) RunAction(ctx context.Context, prefix, key, cmd, plugin string, params map[string]any, out any) error {
	return errUnimplemented
}

// PostEvent publishes an event through POST /api/v3/events.
func (c *Client) PostEvent(ctx context.Context, e *models.Event) error { return errUnimplemented }
