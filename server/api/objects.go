package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/gin-gonic/gin"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/objects"
)

func noRoute(c *gin.Context) *models.Error {
	return &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusNotFound, Messages: []string{"No route"}}
}

func methodNotAllowed(c *gin.Context) *models.Error {
	return &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusMethodNotAllowed, Messages: []string{"Method not allowed"}}
}

// splitPath turns /api/v3/a/b%2Fc/d into [a b/c d], honouring escapes.
func splitPath(u *url.URL) ([]string, bool) {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, Prefix+"/") {
		return nil, false
	}
	p = strings.TrimSuffix(strings.TrimPrefix(p, Prefix+"/"), "/")
	if p == "" {
		return nil, false
	}
	raw := strings.Split(p, "/")
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		s, err := url.PathUnescape(r)
		if err != nil {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func boolQuery(c *gin.Context, name string) bool {
	b, _ := strconv.ParseBool(c.Query(name))
	return b
}

func listQuery(c *gin.Context, name string) []string {
	v := c.Query(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// dispatch serves every object URL:
//
//	/<prefix>                       GET list, HEAD count, POST create
//	/<prefix>/<id>                  GET, HEAD, PUT, PATCH, DELETE (+HandleItem)
//	/<prefix>/<id>/params           GET, POST (replace all), PATCH
//	/<prefix>/<id>/params/<name...> GET, POST (set), DELETE
//	/<prefix>/<id>/pubkey           GET
//	/<prefix>/<id>/<sub>[/...]      HandleSub extensions
func (a *API) dispatch(c *gin.Context) {
	segs, ok := splitPath(c.Request.URL)
	if !ok {
		WriteError(c, noRoute(c))
		return
	}
	prefix := segs[0]
	kind, ok := a.opts.Objects.Kind(prefix)
	if !ok {
		WriteError(c, noRoute(c))
		return
	}
	if kind.SlashKeys && len(segs) > 2 {
		segs = []string{prefix, strings.Join(segs[1:], "/")}
	}
	c.Set(keyPrefix, prefix)
	m := c.Request.Method
	if len(segs) == 1 {
		c.Set(keyRoute, Prefix+"/"+prefix)
		switch m {
		case http.MethodGet, http.MethodHead:
			a.list(c, prefix)
		case http.MethodPost:
			a.create(c, prefix)
		default:
			WriteError(c, methodNotAllowed(c))
		}
		return
	}
	id := segs[1]
	c.Set(keyID, id)
	if len(segs) == 2 {
		c.Set(keyRoute, Prefix+"/"+prefix+"/:id")
		switch m {
		case http.MethodGet, http.MethodHead:
			a.get(c, prefix, id)
			return
		case http.MethodPut:
			a.put(c, prefix, id)
			return
		case http.MethodPatch:
			a.patch(c, prefix, id)
			return
		case http.MethodDelete:
			a.delete(c, prefix, id)
			return
		}
		if h := a.itemHandler(prefix, m); h != nil {
			h(c)
			return
		}
		WriteError(c, methodNotAllowed(c))
		return
	}
	sub, rest := segs[2], segs[3:]
	c.Set(keySub, strings.Join(rest, "/"))
	c.Set(keyRoute, Prefix+"/"+prefix+"/:id/"+sub)
	switch sub {
	case "params":
		if len(rest) == 0 {
			switch m {
			case http.MethodGet:
				a.getParams(c, prefix, id)
			case http.MethodPost:
				a.setParams(c, prefix, id)
			case http.MethodPatch:
				a.patchParams(c, prefix, id)
			default:
				WriteError(c, methodNotAllowed(c))
			}
			return
		}
		name := strings.Join(rest, "/")
		switch m {
		case http.MethodGet:
			a.getParam(c, prefix, id, name)
		case http.MethodPost, http.MethodPut:
			a.setParam(c, prefix, id, name)
		case http.MethodDelete:
			a.deleteParam(c, prefix, id, name)
		default:
			WriteError(c, methodNotAllowed(c))
		}
		return
	case "pubkey":
		if len(rest) != 0 {
			WriteError(c, noRoute(c))
			return
		}
		if m != http.MethodGet {
			WriteError(c, methodNotAllowed(c))
			return
		}
		a.pubkey(c, prefix, id)
		return
	}
	handlers := a.subHandlers(prefix, sub)
	if handlers == nil {
		WriteError(c, noRoute(c))
		return
	}
	if h := handlers[m]; h != nil {
		h(c)
		return
	}
	WriteError(c, methodNotAllowed(c))
}

func (a *API) itemHandler(prefix, method string) gin.HandlerFunc {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if h := a.items[prefix][method]; h != nil {
		return h
	}
	return a.items["*"][method]
}

func (a *API) subHandlers(prefix, sub string) map[string]gin.HandlerFunc {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if h := a.subs[prefix][sub]; h != nil {
		return h
	}
	return a.subs["*"][sub]
}

func (a *API) renderOptions(c *gin.Context, prefix, key string) (objects.RenderOptions, bool) {
	ro := objects.RenderOptions{Decode: boolQuery(c, "decode"), Slim: listQuery(c, "slim"), Params: listQuery(c, "params")}
	if ro.Decode && !Require(c, prefix, "getSecure", key) {
		return ro, false
	}
	return ro, true
}

const jsonType = "application/json; charset=utf-8"

func (a *API) list(c *gin.Context, prefix string) {
	if !Require(c, prefix, "list", "*") {
		return
	}
	q, err := a.opts.Objects.ParseListQuery(prefix, c.Request.URL.Query())
	if err != nil {
		WriteError(c, err)
		return
	}
	ro, ok := a.renderOptions(c, prefix, "*")
	if !ok {
		return
	}
	if c.Request.Method == http.MethodHead {
		ro = objects.RenderOptions{}
	}
	res, err := a.opts.Objects.List(c.Request.Context(), prefix, q, ro)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Header("X-DRP-LIST-COUNT", strconv.Itoa(len(res.Items)))
	c.Header("X-DRP-LIST-TOTAL-COUNT", strconv.Itoa(res.Total))
	c.Header("X-DRP-LIST-FILTER-COUNT", strconv.Itoa(res.Matched))
	if c.Request.Method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	size := 2
	for _, it := range res.Items {
		size += len(it.JSON) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, it := range res.Items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it.JSON...)
	}
	buf = append(buf, ']')
	c.Data(http.StatusOK, jsonType, buf)
}

func (a *API) get(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "get", id) {
		return
	}
	ro, ok := a.renderOptions(c, prefix, id)
	if !ok {
		return
	}
	method := c.Request.Method
	r, err := a.opts.Objects.GetRendered(c.Request.Context(), method, prefix, id, ro)
	if err != nil {
		WriteError(c, err)
		return
	}
	inm := c.GetHeader("If-None-Match")
	if wait, ok := preferWait(c.Request); ok && inm == r.ETag {
		c.Header("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
		if r, err = a.waitForChange(c, prefix, id, ro, r, wait); err != nil {
			WriteError(c, err)
			return
		}
		if c.Request.Context().Err() != nil {
			return // the client went away
		}
	}
	c.Header("ETag", r.ETag)
	if inm != "" && inm == r.ETag {
		// JSON-typed although empty: DRP's client (R.Do) reports any
		// non-HEAD answer without a JSON Content-Type as an error, and
		// with one it takes the empty 304 as "nothing to decode".
		c.Header("Content-Type", "application/json")
		c.Status(http.StatusNotModified)
		return
	}
	if method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	c.Data(http.StatusOK, jsonType, r.JSON)
}

// MaxPreferWait caps the long-poll of GET with "Prefer: wait=<dur>".
const MaxPreferWait = 10 * time.Minute

// preferWait reads "Prefer: wait=<seconds or Go duration>" (RFC 7240) on a
// GET that carries If-None-Match: the long-poll DRP's client uses to wait
// for an object to change. It is capped at MaxPreferWait.
func preferWait(r *http.Request) (time.Duration, bool) {
	if r.Method != http.MethodGet || r.Header.Get("If-None-Match") == "" {
		return 0, false
	}
	for _, h := range r.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			val = strings.Trim(strings.TrimSpace(val), `"`)
			d, err := time.ParseDuration(val)
			if err != nil {
				secs, serr := strconv.ParseFloat(val, 64)
				if serr != nil {
					return 0, false
				}
				d = time.Duration(secs * float64(time.Second))
			}
			if d <= 0 {
				return 0, false
			}
			return min(d, MaxPreferWait), true
		}
	}
	return 0, false
}

// waitForChange long-polls: it returns the object once its ETag differs
// from cur's, cur when wait passes (the caller answers 304), or an error
// (404 once the object is deleted). It ends early when the client goes
// away.
func (a *API) waitForChange(c *gin.Context, prefix, id string, ro objects.RenderOptions, cur objects.Rendered, wait time.Duration) (objects.Rendered, error) {
	ctx := c.Request.Context()
	key := cur.Key
	sub := a.opts.Bus.Subscribe("prefer-wait "+prefix+"/"+key, 8, func(e *models.Event) bool {
		return e.Type == prefix && e.Key == key
	})
	defer sub.Close()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Re-read after subscribing, and after every event (or lost
		// event), so no change between the reads is missed.
		r, err := a.opts.Objects.GetRendered(ctx, http.MethodGet, prefix, id, ro)
		if err != nil || r.ETag != cur.ETag {
			return r, err
		}
		select {
		case <-sub.C():
		case <-timer.C:
			return cur, nil
		case <-ctx.Done():
			return cur, nil
		}
	}
}

// respondWrite answers a create, replace, patch or delete: err as a
// models.Error, otherwise the resulting object rendered with status.
func (a *API) respondWrite(c *gin.Context, status int, prefix string, obj models.Model, err error) {
	if err != nil {
		WriteError(c, err)
		return
	}
	ro, ok := a.renderOptions(c, prefix, obj.Key())
	if !ok {
		return
	}
	buf, err := a.opts.Objects.Render(prefix, obj, ro)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Data(status, jsonType, buf)
}

// respondJSON answers err as a models.Error, otherwise v as JSON with 200.
func respondJSON(c *gin.Context, v any, err error) {
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// bodyObject reads the request body as an object of prefix (method names
// the operation in errors). On failure it writes the error and returns
// false.
func (a *API) bodyObject(c *gin.Context, method, prefix string) (models.Model, bool) {
	body, err := ReadBody(c)
	if err != nil {
		WriteError(c, err)
		return nil, false
	}
	obj, err := a.opts.Objects.DecodeBody(method, prefix, body)
	if err != nil {
		WriteError(c, err)
		return nil, false
	}
	return obj, true
}

func (a *API) create(c *gin.Context, prefix string) {
	if !Require(c, prefix, "create", "*") {
		return
	}
	obj, ok := a.bodyObject(c, "CREATE", prefix)
	if !ok {
		return
	}
	res, err := a.opts.Objects.Create(c.Request.Context(), PrincipalOf(c).Name, prefix, obj)
	a.respondWrite(c, http.StatusCreated, prefix, res, err)
}

func (a *API) put(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "update", id) {
		return
	}
	obj, ok := a.bodyObject(c, "PUT", prefix)
	if !ok {
		return
	}
	res, err := a.opts.Objects.Replace(c.Request.Context(), PrincipalOf(c).Name, prefix, id, obj)
	a.respondWrite(c, http.StatusOK, prefix, res, err)
}

func readPatch(c *gin.Context, prefix, id string) (jsonpatch2.Patch, error) {
	body, err := ReadBody(c)
	if err != nil {
		return nil, err
	}
	p, perr := jsonpatch2.NewPatch(body)
	if perr != nil {
		return nil, &models.Error{Model: prefix, Key: id, Type: "PATCH", Code: http.StatusBadRequest,
			Messages: []string{"Invalid JSON Patch: " + perr.Error()}}
	}
	return p, nil
}

func (a *API) patch(c *gin.Context, prefix, id string) {
	if !PrincipalOf(c).Allows(prefix, "patch", id) && !Require(c, prefix, "update", id) {
		return
	}
	p, err := readPatch(c, prefix, id)
	if err != nil {
		WriteError(c, err)
		return
	}
	res, err := a.opts.Objects.Patch(c.Request.Context(), PrincipalOf(c).Name, prefix, id, p)
	a.respondWrite(c, http.StatusOK, prefix, res, err)
}

func (a *API) delete(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "delete", id) {
		return
	}
	res, err := a.opts.Objects.Delete(c.Request.Context(), PrincipalOf(c).Name, prefix, id)
	a.respondWrite(c, http.StatusOK, prefix, res, err)
}

func (a *API) paramOptions(c *gin.Context, prefix, id string) (objects.ParamOptions, bool) {
	o := objects.ParamOptions{Aggregate: boolQuery(c, "aggregate"), Decode: boolQuery(c, "decode"), Compose: boolQuery(c, "compose")}
	if o.Decode && !Require(c, prefix, "getSecure", id) {
		return o, false
	}
	return o, true
}

func (a *API) getParams(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "get", id) {
		return
	}
	o, ok := a.paramOptions(c, prefix, id)
	if !ok {
		return
	}
	p, err := a.opts.Objects.GetParams(c.Request.Context(), prefix, id, o)
	if err != nil {
		WriteError(c, err)
		return
	}
	if names := listQuery(c, "params"); len(names) > 0 {
		keep := map[string]any{}
		for _, n := range names {
			if v, ok := p[n]; ok {
				keep[n] = v
			}
		}
		p = keep
	}
	c.JSON(http.StatusOK, p)
}

func (a *API) getParam(c *gin.Context, prefix, id, name string) {
	if !Require(c, prefix, "get", id) {
		return
	}
	o, ok := a.paramOptions(c, prefix, id)
	if !ok {
		return
	}
	o.Defaults = o.Aggregate
	v, _, err := a.opts.Objects.GetParam(c.Request.Context(), prefix, id, name, o)
	respondJSON(c, v, err)
}

func (a *API) setParams(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "update", id) {
		return
	}
	var p map[string]any
	if err := ReadJSON(c, &p); err != nil {
		WriteError(c, err)
		return
	}
	if p == nil {
		p = map[string]any{}
	}
	res, err := a.opts.Objects.SetParams(c.Request.Context(), PrincipalOf(c).Name, prefix, id, p)
	respondJSON(c, res, err)
}

func (a *API) patchParams(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "update", id) {
		return
	}
	p, err := readPatch(c, prefix, id)
	if err != nil {
		WriteError(c, err)
		return
	}
	res, err := a.opts.Objects.PatchParams(c.Request.Context(), PrincipalOf(c).Name, prefix, id, p)
	respondJSON(c, res, err)
}

func (a *API) setParam(c *gin.Context, prefix, id, name string) {
	if !Require(c, prefix, "update", id) {
		return
	}
	body, err := ReadBody(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		WriteError(c, &models.Error{Model: prefix, Key: id, Type: "POST", Code: http.StatusBadRequest, Messages: []string{"Invalid JSON: " + err.Error()}})
		return
	}
	res, err := a.opts.Objects.SetParam(c.Request.Context(), PrincipalOf(c).Name, prefix, id, name, v)
	respondJSON(c, res[name], err)
}

func (a *API) deleteParam(c *gin.Context, prefix, id, name string) {
	if !Require(c, prefix, "update", id) {
		return
	}
	old, err := a.opts.Objects.DeleteParam(c.Request.Context(), PrincipalOf(c).Name, prefix, id, name)
	respondJSON(c, old, err)
}

func (a *API) pubkey(c *gin.Context, prefix, id string) {
	if !Require(c, prefix, "get", id) {
		return
	}
	if _, err := a.opts.Objects.Get(c.Request.Context(), prefix, id); err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, a.opts.Objects.Keys().PublicKey())
}

func metaTarget(c *gin.Context) (string, string) {
	return c.Param("prefix"), strings.TrimPrefix(c.Param("id"), "/")
}

// getMeta serves GET /meta/<prefix>/<id>: the object's Meta map.
func (a *API) getMeta(c *gin.Context) {
	prefix, id := metaTarget(c)
	if !Require(c, prefix, "get", id) {
		return
	}
	r, err := a.opts.Objects.GetRendered(c.Request.Context(), "GET", prefix, id, objects.RenderOptions{})
	if err != nil {
		WriteError(c, err)
		return
	}
	var obj struct{ Meta map[string]string }
	if err := json.Unmarshal(r.JSON, &obj); err != nil {
		WriteError(c, err)
		return
	}
	if obj.Meta == nil {
		obj.Meta = map[string]string{}
	}
	c.JSON(http.StatusOK, obj.Meta)
}

// patchMeta serves PATCH /meta/<prefix>/<id>: a JSON Patch on the Meta map.
func (a *API) patchMeta(c *gin.Context) {
	prefix, id := metaTarget(c)
	if !PrincipalOf(c).Allows(prefix, "patch", id) && !Require(c, prefix, "update", id) {
		return
	}
	p, err := readPatch(c, prefix, id)
	if err != nil {
		WriteError(c, err)
		return
	}
	// Re-root the patch at /Meta and apply it to the object.
	for i := range p {
		p[i].Path = "/Meta" + p[i].Path
		if p[i].From != "" {
			p[i].From = "/Meta" + p[i].From
		}
	}
	buf, _ := json.Marshal(p)
	rooted, perr := jsonpatch2.NewPatch(buf)
	if perr != nil {
		WriteError(c, &models.Error{Model: prefix, Key: id, Type: "PATCH", Code: http.StatusBadRequest, Messages: []string{"Invalid JSON Patch: " + perr.Error()}})
		return
	}
	res, err := a.opts.Objects.Patch(c.Request.Context(), PrincipalOf(c).Name, prefix, id, rooted)
	if err != nil {
		WriteError(c, err)
		return
	}
	out, _ := models.Clone(res)
	var obj struct{ Meta map[string]string }
	_ = models.Remarshal(out, &obj)
	c.JSON(http.StatusOK, obj.Meta)
}
