// Package drpcompat holds conformance tests only: they replay, against a
// real provisiond (server/servertest), the HTTP and websocket exchanges
// that Digital Rebar Provision's Go API client
// (github.com/digitalrebar/provision/v4/api, which runs inside DRP
// plugins) and drpcli make, and decode the answers the way that client
// does. DRP's module cannot be downloaded here, so this file carries a
// small re-implementation of the request/response rules of api.R.Do and
// api.EventStream, written from reading DRP's source; every test names the
// DRP file and function it mirrors.
package drpcompat

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictorLowther/jsonpatch2"
)

// apiPath mirrors api.APIPATH.
const apiPath = "/api/v3"

// drpError mirrors DRP's models.Error: the JSON shape the client decodes
// every answer of status >= 400 into.
type drpError struct {
	Model    string
	Key      string
	Type     string
	Messages []string
	Code     int
}

// Error renders the string drpcli prints, with the algorithm of DRP's
// models.Error.Error() (models/errors.go): "Type: Model/Key" (path.Join,
// or only the Model, or only the Type), then ": msg" for one message or
// "\n  msg1\n  msg2" for several.
func (e *drpError) Error() string {
	var res string
	switch {
	case e.Key != "":
		res = e.Type + ": " + path.Join(e.Model, e.Key)
	case e.Model != "":
		res = e.Type + ": " + e.Model
	default:
		res = e.Type
	}
	switch len(e.Messages) {
	case 0:
		return res
	case 1:
		return res + ": " + e.Messages[0]
	default:
		return res + "\n  " + strings.Join(e.Messages, "\n  ")
	}
}

// exchange is one request the DRP client sent and what came back.
type exchange struct {
	Method    string
	URL       string
	ReqHeader http.Header
	ReqBody   []byte
	// ReqLength is the request's Content-Length (-1 or 0 with a streamed
	// body: sent chunked).
	ReqLength int64
	Status    int
	Header    http.Header
	Body      []byte
}

// drpClient mirrors api.Client: an endpoint, optional user/password and a
// token, the trace level/token, and the transport DRP builds (TLS without
// verification, HTTP/2 allowed).
type drpClient struct {
	t                    testing.TB
	endpoint             string
	username, password   string
	token                string
	traceLvl, traceToken string
	hc                   *http.Client

	mu  sync.Mutex
	log []exchange
}

func newTransport() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // DRP's client never verifies; test servers are self-signed
		ForceAttemptHTTP2: true,
	}}
}

// tokenSession mirrors api.TokenSession: no request is made.
func tokenSession(t testing.TB, endpoint, token string) *drpClient {
	return &drpClient{t: t, endpoint: endpoint, token: token, hc: newTransport()}
}

// userSession mirrors api.UserSession / UserSessionToken(..., true): one
// GET /api/v3/users/<user>/token with an explicit Basic header (no ttl),
// whose UserToken becomes the session's bearer token.
func userSession(t testing.TB, endpoint, user, pass string) (*drpClient, error) {
	c := &drpClient{t: t, endpoint: endpoint, username: user, password: pass, hc: newTransport()}
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	var tok struct {
		Token string
		Info  json.RawMessage
	}
	if err := c.req().urlFor("users", user, "token").headers("Authorization", "Basic "+basic).do(&tok); err != nil {
		return nil, err
	}
	c.token = tok.Token
	return c, nil
}

// reauth mirrors Client.reauth, the 300 s refresh of a UserSession: the
// same URL with ?ttl=600, authorised by the current bearer token.
func (c *drpClient) reauth() (string, error) {
	var tok struct{ Token string }
	err := c.req().urlFor("users", c.username, "token").params("ttl", "600").do(&tok)
	return tok.Token, err
}

// exchanges returns what was sent so far.
func (c *drpClient) exchanges() []exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]exchange(nil), c.log...)
}

// last returns the last exchange.
func (c *drpClient) last() exchange {
	ex := c.exchanges()
	if len(ex) == 0 {
		c.t.Fatal("no exchange recorded")
	}
	return ex[len(ex)-1]
}

// drpReq mirrors api.R.
type drpReq struct {
	c        *drpClient
	method   string
	uri      *url.URL
	header   http.Header
	body     []byte
	hasBody  bool
	stream   io.Reader // a reader that is not in memory, sent as is (chunked)
	err      []string
	paranoid bool
}

// req mirrors Client.Req: GET by default.
func (c *drpClient) req() *drpReq {
	return &drpReq{c: c, method: "GET", header: http.Header{}}
}

// urlFor mirrors Client.UrlForProxy without a proxy: endpoint +
// path.Join("/api/v3", path.Join(args...)), parsed with ParseRequestURI.
func (r *drpReq) urlFor(args ...string) *drpReq {
	u, err := url.ParseRequestURI(r.c.endpoint + path.Join(apiPath, path.Join(args...)))
	if err != nil {
		r.err = append(r.err, err.Error())
		return r
	}
	r.uri = u
	return r
}

// params mirrors R.Params: url.Values encoded, replacing any query.
func (r *drpReq) params(args ...string) *drpReq {
	if r.uri == nil || len(args)%2 == 1 {
		r.err = append(r.err, "bad params")
		return r
	}
	v := url.Values{}
	for i := 1; i < len(args); i += 2 {
		v.Add(args[i-1], args[i])
	}
	r.uri.RawQuery = v.Encode()
	return r
}

// filter mirrors R.Filter: "reverse"/"decode" take no value,
// sort/limit/offset/slim/params one, and "<index> <Op> <value>" becomes
// <index>=<Op>(<value>) (Between/Except take two values joined by a comma).
func (r *drpReq) filter(prefix string, args ...string) *drpReq {
	r.method = "GET"
	r.urlFor(prefix)
	out := []string{}
	for i := 0; i < len(args); {
		f := args[i]
		switch f {
		case "reverse", "decode":
			out = append(out, f, "true")
			i++
		case "sort", "limit", "offset", "slim", "params":
			out = append(out, f, args[i+1])
			i += 2
		default:
			op := strings.ToUpper(args[i+1][:1]) + strings.ToLower(args[i+1][1:])
			i += 2
			switch op {
			case "Between", "Except":
				if strings.Contains(args[i], ",") {
					out = append(out, f, fmt.Sprintf("%s(%s)", op, args[i]))
					i++
				} else {
					out = append(out, f, fmt.Sprintf("%s(%s,%s)", op, args[i], args[i+1]))
					i += 2
				}
			default:
				out = append(out, f, fmt.Sprintf("%s(%s)", op, args[i]))
				i++
			}
		}
	}
	return r.params(out...)
}

// headers mirrors R.Headers (Add, not Set).
func (r *drpReq) headers(args ...string) *drpReq {
	for i := 1; i < len(args); i += 2 {
		r.header.Add(args[i-1], args[i])
	}
	return r
}

// bodyOf mirrors R.Body: nil → JSON content type and no body; io.Reader or
// []byte → application/octet-stream; anything else → its JSON.
func (r *drpReq) bodyOf(b any) *drpReq {
	switch v := b.(type) {
	case nil:
		r.headers("Content-Type", "application/json")
	case []byte:
		r.headers("Content-Type", "application/octet-stream")
		r.body, r.hasBody = v, true
	case io.Reader:
		// As in DRP, the reader itself is the request body: for a file
		// (drpcli upload) net/http knows no length and sends it chunked.
		r.headers("Content-Type", "application/octet-stream")
		r.stream = v
	default:
		r.headers("Content-Type", "application/json")
		buf, err := json.Marshal(&v)
		if err != nil {
			r.err = append(r.err, err.Error())
		}
		r.body, r.hasBody = buf, true
	}
	return r
}

func (r *drpReq) meth(m string) *drpReq  { r.method = m; return r }
func (r *drpReq) get() *drpReq           { return r.meth("GET") }
func (r *drpReq) head() *drpReq          { return r.meth("HEAD") }
func (r *drpReq) del() *drpReq           { return r.meth("DELETE") }
func (r *drpReq) post(b any) *drpReq     { return r.meth("POST").bodyOf(b) }
func (r *drpReq) put(b any) *drpReq      { return r.meth("PUT").bodyOf(b) }
func (r *drpReq) patch(p any) *drpReq    { return r.meth("PATCH").bodyOf(p) }
func (r *drpReq) paranoidPatch() *drpReq { r.paranoid = true; return r }

// patchObj mirrors R.PatchObj: GenPatch(old, new, paranoid), i.e.
// jsonpatch2.GenerateFull(json(old), json(new), true, paranoid).
func (r *drpReq) patchObj(old, new any) *drpReq {
	p, err := genPatch(old, new, r.paranoid)
	if err != nil {
		r.err = append(r.err, err.Error())
		return r
	}
	return r.patch(p)
}

// genPatch mirrors api.GenPatch in DRP v4.
func genPatch(old, new any, paranoid bool) (jsonpatch2.Patch, error) {
	a, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(new)
	if err != nil {
		return nil, err
	}
	return jsonpatch2.GenerateFull(a, b, true, paranoid)
}

// do mirrors R.Do (without its transport retries): trace headers, Accept,
// Cache-Control (plus application/octet-stream in Accept when val is an
// io.Writer), Authorization (Bearer when a token is known, Basic
// otherwise, unless already set); then io.Writer → copy when status < 300; HEAD → status <= 300 copies the
// response headers into val, otherwise an error with the status text;
// everything else must carry a Content-Type whose media type is
// application/json (or the call fails with "Cannot handle content-type"),
// status >= 400 decodes a models.Error, and a body is decoded into val
// unless Content-Length is 0.
func (r *drpReq) do(val any) error {
	c := r.c
	if r.uri == nil {
		return &drpError{Type: "CLIENT_ERROR", Messages: []string{"No URL to talk to"}}
	}
	if len(r.err) > 0 {
		return &drpError{Type: "CLIENT_ERROR", Messages: r.err}
	}
	if c.traceLvl != "" {
		r.headers("X-Log-Request", c.traceLvl, "X-Log-Token", c.traceToken)
	}
	r.headers("Accept", "application/json")
	// Newer DRP clients also ask caches to keep nothing (drp-protocol §5.1).
	r.headers("Cache-Control", "no-store")
	if _, ok := val.(io.Writer); ok {
		r.headers("Accept", "application/octet-stream")
	}
	var body io.Reader
	if r.hasBody {
		body = bytes.NewReader(r.body)
	}
	if r.stream != nil {
		body = r.stream
	}
	req, err := http.NewRequest(r.method, r.uri.String(), body)
	if err != nil {
		return &drpError{Type: "CLIENT_ERROR", Messages: []string{err.Error()}}
	}
	req.Header = r.header
	if req.Header.Get("Authorization") == "" {
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		} else {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.username+":"+c.password)))
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &drpError{Type: "CLIENT_ERROR", Messages: []string{err.Error()}}
	}
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(resp.Body)
	c.mu.Lock()
	c.log = append(c.log, exchange{Method: r.method, URL: r.uri.String(), ReqHeader: req.Header.Clone(), ReqBody: r.body, ReqLength: req.ContentLength,
		Status: resp.StatusCode, Header: resp.Header.Clone(), Body: raw})
	c.mu.Unlock()
	if rerr != nil {
		return &drpError{Type: "CLIENT_ERROR", Messages: []string{rerr.Error()}}
	}
	if w, ok := val.(io.Writer); ok && resp.StatusCode < 300 {
		_, err := w.Write(raw)
		if err != nil {
			return &drpError{Type: "CLIENT_ERROR", Messages: []string{err.Error()}}
		}
		return nil
	}
	if r.method == "HEAD" {
		if resp.StatusCode <= 300 {
			if val != nil {
				buf, _ := json.Marshal(resp.Header)
				return json.Unmarshal(buf, val)
			}
			return nil
		}
		return &drpError{Type: "CLIENT_ERROR", Code: resp.StatusCode, Messages: []string{http.StatusText(resp.StatusCode)}}
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
		return &drpError{Type: "CLIENT_ERROR", Messages: []string{"Cannot handle content-type " + ct, "No decoder for content-type " + ct}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if resp.StatusCode >= 400 {
		res := &drpError{}
		if err := dec.Decode(res); err != nil {
			return &drpError{Type: "CLIENT_ERROR", Code: resp.StatusCode, Messages: []string{err.Error()}}
		}
		return res
	}
	if val != nil && resp.ContentLength != 0 {
		if err := dec.Decode(val); err != nil {
			return &drpError{Type: "CLIENT_ERROR", Messages: []string{err.Error()}}
		}
	}
	return nil
}

// mustDo fails the test when do fails.
func (r *drpReq) mustDo(t testing.TB, val any) {
	t.Helper()
	if err := r.do(val); err != nil {
		t.Fatalf("%s %s: %v", r.method, r.uri, err)
	}
}

// asDRPError fails unless err is a server models.Error with code status,
// and returns it.
func asDRPError(t testing.TB, err error, status int) *drpError {
	t.Helper()
	e, ok := err.(*drpError)
	if !ok || e == nil {
		t.Fatalf("want a models.Error with code %d, got %v", status, err)
	}
	if e.Type == "CLIENT_ERROR" {
		t.Fatalf("want the server's models.Error (code %d), got a client-side failure: %v", status, e)
	}
	if e.Code != status {
		t.Fatalf("error code %d, want %d: %v", e.Code, status, e)
	}
	return e
}
