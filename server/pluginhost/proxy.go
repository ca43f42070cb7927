package pluginhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"strconv"

	"github.com/provisionhq/provision/models"
)

// maxErrorBody bounds the plugin error bodies the proxy inspects; larger
// ones are passed on untouched.
const maxErrorBody = 64 << 10

// proxyFor returns p's /plugin-apis reverse proxy, built once per process.
func (p *process) proxyFor() *httputil.ReverseProxy {
	p.proxyOnce.Do(func() {
		p.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				// DRP joins the socket path onto the URL, so plugins
				// saw "/<socket path>/api/v3/plugin-apis/...". The
				// plugin gets the original request path instead, as
				// DRP's own README promises ("No translation of URL").
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = "unix"
				pr.Out.URL.Path = pr.In.URL.Path
				pr.Out.URL.RawPath = pr.In.URL.RawPath
				pr.Out.URL.RawQuery = pr.In.URL.RawQuery
				pr.Out.Host = "unix"
				// The caller's credentials are for provisiond, not for
				// the plugin, which has its own RS_TOKEN.
				pr.Out.Header.Del("Authorization")
				pr.Out.Header.Del("Cookie")
				pr.SetXForwarded()
			},
			Transport:      p.tr,
			FlushInterval:  -1, // stream both ways (SSE, chunked, long polls)
			ModifyResponse: p.fillErrorMessage,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				writeJSON(w, http.StatusBadGateway, &models.Error{Model: "plugin-apis", Key: p.name, Type: r.Method,
					Code: http.StatusBadGateway, Messages: []string{"Plugin " + p.name + " did not answer: " + err.Error()}})
			},
		}
	})
	return p.proxy
}

// ServePluginAPI proxies one /api/v3/plugin-apis/<plugin>/... request to
// the plugin's socket. Authentication is the caller's job (mount it in the
// authenticated group).
func (h *Host) ServePluginAPI(w http.ResponseWriter, r *http.Request, plugin string) {
	in := h.instance(plugin)
	if in == nil {
		writeJSON(w, http.StatusNotFound, &models.Error{Model: "plugins", Key: plugin, Type: r.Method,
			Code: http.StatusNotFound, Messages: []string{"Not Found"}})
		return
	}
	p, nr := in.current()
	if nr != nil {
		nr.Type = r.Method
		writeJSON(w, nr.Code, nr)
		return
	}
	p.proxyFor().ServeHTTP(w, r)
}

// fillErrorMessage gives a plugin's DRP-style error answer a message when
// it has none. DRP's plugin library answers an unknown plugin-apis path
// with 404 and "Messages":null (the SDK keeps that wire form on the
// socket), which REST clients would print as a bare "GET: /api/v3/...".
// Only a JSON models.Error body (no other keys, Messages null or empty)
// is rewritten; every other answer passes through untouched.
func (p *process) fillErrorMessage(resp *http.Response) error {
	if resp.StatusCode < 400 || resp.Header.Get("Content-Encoding") != "" || resp.ContentLength > maxErrorBody {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil
	}
	orig := resp.Body
	body, err := io.ReadAll(io.LimitReader(orig, maxErrorBody+1))
	if err != nil {
		return fmt.Errorf("read plugin %s error answer: %w", p.name, err)
	}
	if len(body) > maxErrorBody {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), orig), orig}
		return nil
	}
	_ = orig.Close()
	filled, ok := withMessage(body, resp.StatusCode, resp.Request.URL.Path, p.name)
	if !ok {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(filled))
	resp.ContentLength = int64(len(filled))
	resp.Header.Set("Content-Length", strconv.Itoa(len(filled)))
	return nil
}

// withMessage returns body with a message added when it is a models.Error
// without messages, and whether it changed anything.
func withMessage(body []byte, status int, path, plugin string) ([]byte, bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return nil, false
	}
	for k := range fields {
		switch k {
		case "Model", "Key", "Type", "Messages", "Code":
		default:
			return nil, false
		}
	}
	var e models.Error
	if json.Unmarshal(body, &e) != nil || len(e.Messages) > 0 {
		return nil, false
	}
	if status == http.StatusNotFound {
		e.Messages = []string{fmt.Sprintf("No route: %s on plugin %s", path, plugin)}
	} else {
		e.Messages = []string{fmt.Sprintf("Plugin %s answered %s %d %s without a message", plugin, path, status, http.StatusText(status))}
	}
	out, err := json.Marshal(&e)
	if err != nil {
		return nil, false
	}
	return append(out, '\n'), true
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}
