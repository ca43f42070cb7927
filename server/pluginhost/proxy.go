package pluginhost

import (
	"net/http"
	"net/http/httputil"

	"github.com/provisionhq/provision/models"
)

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
			Transport:     p.tr,
			FlushInterval: -1, // stream both ways (SSE, chunked, long polls)
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
