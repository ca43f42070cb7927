package pluginhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/provisionhq/provision/models"
)

// Authorizer decides whether the caller of c may do action on
// scope/specific (DRP claims). Nil allows everything (authentication is
// still the router group's job).
type Authorizer func(c *gin.Context, scope, action, specific string) bool

// APIOptions configures the routes the host mounts.
type APIOptions struct {
	// Authorize checks claims; nil allows every authenticated caller.
	Authorize Authorizer
	// Principal names the caller for events; nil leaves it empty.
	Principal func(c *gin.Context) string
}

// API serves the host's REST routes. Build it with Host.API.
type API struct {
	h    *Host
	opts APIOptions
}

// API returns the host's REST handlers.
func (h *Host) API(opts APIOptions) *API { return &API{h: h, opts: opts} }

// Register mounts, on the authenticated /api/v3 group g:
// plugin_providers (list/show/upload/download/delete), system actions and
// /plugin-apis/<plugin>/*. Per-object actions are mounted by the server for
// each type with ListActions/GetAction/RunAction handlers below, because
// the server owns those URL trees.
func (a *API) Register(g gin.IRoutes) {
	g.GET("/plugin_providers", a.listProviders)
	g.HEAD("/plugin_providers", a.listProviders)
	g.GET("/plugin_providers/:name", a.showProvider)
	g.HEAD("/plugin_providers/:name", a.showProvider)
	g.GET("/plugin_providers/:name/binary", func(c *gin.Context) { a.Download(c, c.Param("name")) })
	g.POST("/plugin_providers/:name", func(c *gin.Context) { a.Upload(c, c.Param("name")) })
	g.DELETE("/plugin_providers/:name", a.deleteProvider)
	a.RegisterSystem(g)
}

// RegisterSystem mounts the routes whose first path segment is not an
// object prefix: /system/actions[/<cmd>] and /plugin-apis/<plugin>/*.
func (a *API) RegisterSystem(g gin.IRoutes) {
	g.GET("/system/actions", func(c *gin.Context) { a.ListActions(c, SystemPrefix, "") })
	g.GET("/system/actions/:cmd", func(c *gin.Context) { a.GetAction(c, SystemPrefix, "", c.Param("cmd")) })
	g.POST("/system/actions/:cmd", func(c *gin.Context) { a.RunAction(c, SystemPrefix, "", c.Param("cmd")) })
	g.Any("/plugin-apis/:plugin/*path", func(c *gin.Context) { a.PluginAPI(c, c.Param("plugin")) })
}

func fail(c *gin.Context, err error) {
	var me *models.Error
	if !errors.As(err, &me) {
		me = &models.Error{Type: "API_ERROR", Code: http.StatusInternalServerError, Messages: []string{err.Error()}}
	}
	if me.Code < 400 || me.Code > 599 {
		if me.Code == 499 {
			c.Abort() // the client is gone
			return
		}
		me.Code = http.StatusInternalServerError
	}
	c.AbortWithStatusJSON(me.Code, me)
}

func (a *API) allowed(c *gin.Context, scope, action, specific string) bool {
	if a.opts.Authorize == nil || a.opts.Authorize(c, scope, action, specific) {
		return true
	}
	if c.IsAborted() {
		return false // the authorizer answered already
	}
	c.AbortWithStatusJSON(http.StatusForbidden, &models.Error{Model: scope, Key: specific, Type: c.Request.Method,
		Code: http.StatusForbidden, Messages: []string{"Forbidden"}})
	return false
}

func (a *API) listProviders(c *gin.Context) {
	if !a.allowed(c, "plugin_providers", "list", "") {
		return
	}
	list := a.h.Providers()
	n := strconv.Itoa(len(list))
	c.Header("X-DRP-LIST-COUNT", n)
	c.Header("X-DRP-LIST-TOTAL-COUNT", n)
	c.Header("X-DRP-LIST-FILTER-COUNT", n)
	if c.Request.Method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	c.JSON(http.StatusOK, list)
}

func (a *API) showProvider(c *gin.Context) {
	name := c.Param("name")
	if !a.allowed(c, "plugin_providers", "get", name) {
		return
	}
	p, ok := a.h.Provider(name)
	if !ok {
		fail(c, &models.Error{Model: "plugin_providers", Key: name, Type: c.Request.Method, Code: http.StatusNotFound, Messages: []string{"Not Found"}})
		return
	}
	if c.Request.Method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	c.JSON(http.StatusOK, p)
}

// Download serves GET /plugin_providers/<name>/binary: the executable.
func (a *API) Download(c *gin.Context, name string) {
	if !a.allowed(c, "plugin_providers", "get", name) {
		return
	}
	f, err := a.h.ProviderBinary(name)
	if err != nil {
		fail(c, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Type", "application/octet-stream")
	c.Header("Content-Length", strconv.FormatInt(st.Size(), 10))
	if info, ok := a.h.Provider(name); ok && info.Sha256Sum != "" {
		c.Header("X-DRP-SHA256SUM", info.Sha256Sum)
	}
	c.Status(http.StatusOK)
	_, _ = io.Copy(c.Writer, f)
}

// Upload serves POST /plugin_providers/<name>[?replaceWritable=true] with
// the executable as application/octet-stream or as the "file" field of a
// multipart/form-data body.
func (a *API) Upload(c *gin.Context, name string) {
	if !a.allowed(c, "plugin_providers", "post", name) {
		return
	}
	replace := c.Query("replaceWritable") == "true"
	ct, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var body io.Reader
	size := int64(-1)
	switch ct {
	case "application/octet-stream":
		body, size = c.Request.Body, c.Request.ContentLength
	case "multipart/form-data":
		if params["boundary"] == "" {
			fail(c, &models.Error{Model: "plugin_providers", Key: name, Type: "POST", Code: http.StatusBadRequest, Messages: []string{"multipart upload without boundary"}})
			return
		}
		mr, err := c.Request.MultipartReader()
		if err != nil {
			fail(c, &models.Error{Model: "plugin_providers", Key: name, Type: "POST", Code: http.StatusBadRequest, Messages: []string{err.Error()}})
			return
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				fail(c, &models.Error{Model: "plugin_providers", Key: name, Type: "POST", Code: http.StatusBadRequest, Messages: []string{"multipart upload has no \"file\" field"}})
				return
			}
			if part.FormName() == "file" {
				body = part
				break
			}
			_ = part.Close()
		}
	default:
		fail(c, &models.Error{Model: "plugin_providers", Key: name, Type: "POST", Code: http.StatusUnsupportedMediaType,
			Messages: []string{fmt.Sprintf("Invalid content type %q: use application/octet-stream or multipart/form-data", c.GetHeader("Content-Type"))}})
		return
	}
	info, err := a.h.Upload(c.Request.Context(), name, body, size, replace)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, info)
}

func (a *API) deleteProvider(c *gin.Context) {
	name := c.Param("name")
	if !a.allowed(c, "plugin_providers", "delete", name) {
		return
	}
	if err := a.h.DeleteProvider(c.Request.Context(), name); err != nil {
		fail(c, err)
		return
	}
	// JSON-typed even when empty: DRP's client (R.Do) refuses an answer
	// without a JSON Content-Type, 204 included.
	c.Data(http.StatusNoContent, "application/json", nil)
}

// PluginAPI serves /plugin-apis/<plugin>/* by proxying to the plugin.
func (a *API) PluginAPI(c *gin.Context, plugin string) {
	if !a.allowed(c, "plugins", "action", plugin) {
		return
	}
	a.h.ServePluginAPI(c.Writer, c.Request, plugin)
}

func scopeOf(prefix string) string {
	if prefix == SystemPrefix {
		return "system"
	}
	return prefix
}

// ListActions serves GET <prefix>/<id>/actions[?plugin=].
func (a *API) ListActions(c *gin.Context, prefix, id string) {
	if !a.allowed(c, scopeOf(prefix), "get", id) {
		return
	}
	list, err := a.h.ListActions(c.Request.Context(), prefix, id, c.Query("plugin"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

// GetAction serves GET <prefix>/<id>/actions/<cmd>[?plugin=].
func (a *API) GetAction(c *gin.Context, prefix, id, cmd string) {
	if !a.allowed(c, scopeOf(prefix), "get", id) {
		return
	}
	act, err := a.h.GetAction(c.Request.Context(), prefix, id, cmd, c.Query("plugin"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, act)
}

// RunAction serves POST <prefix>/<id>/actions/<cmd>[?plugin=&timeout=]:
// the body is a JSON object of params ({} or empty for none); the answer is
// the plugin's result verbatim. ?timeout= (e.g. 30s) overrides the default
// action timeout. The call is cancelled when the client goes away.
func (a *API) RunAction(c *gin.Context, prefix, id, cmd string) {
	if !a.allowed(c, scopeOf(prefix), "action:"+cmd, id) {
		return
	}
	errOf := func(code int, msg string) *models.Error {
		return &models.Error{Model: prefix, Key: id, Type: "INVOKE", Code: code, Messages: []string{msg}}
	}
	timeout, err := ParseTimeout(c.Query("timeout"))
	if err != nil {
		fail(c, errOf(http.StatusBadRequest, err.Error()))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, maxPluginRequest+1))
	if err != nil {
		fail(c, errOf(http.StatusBadRequest, "cannot read body: "+err.Error()))
		return
	}
	if len(raw) > maxPluginRequest {
		fail(c, errOf(http.StatusRequestEntityTooLarge, "body too large"))
		return
	}
	params := map[string]any{}
	if s := strings.TrimSpace(string(raw)); s != "" && s != "null" {
		if err := json.Unmarshal(raw, &params); err != nil {
			fail(c, errOf(http.StatusBadRequest, "body must be a JSON object of params: "+err.Error()))
			return
		}
	}
	req := ActionRequest{Prefix: prefix, ID: id, Command: cmd, Plugin: c.Query("plugin"), Params: params, Timeout: timeout}
	if a.opts.Principal != nil {
		req.Principal = a.opts.Principal(c)
	}
	res, err := a.h.RunAction(c.Request.Context(), req)
	if err != nil {
		fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", append(res, '\n'))
}
