// Package api is provisiond's REST surface (/api/v3) on gin: middleware
// (recovery, metrics, logging, body limit, time limit, authentication), the
// generic object routes for every registered object kind, and the fixed
// routes (info, indexes, users' tokens and passwords, events, websocket).
//
// Object routes are dispatched by this package rather than by gin's tree so
// that kinds can be added while serving. Other packages extend the surface
// with Group (fixed gin routes under /api/v3) and HandleItem/HandleSub
// (extra methods and sub-paths of object URLs, e.g. /<prefix>/<id>/actions).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/auth"
	"github.com/provisionhq/provision/server/events"
	"github.com/provisionhq/provision/server/netlimit"
	"github.com/provisionhq/provision/server/objects"
)

// Prefix is the path of the API.
const Prefix = "/api/v3"

// Options configures the API.
type Options struct {
	// Objects serves the object kinds. Required.
	Objects *objects.Service
	// Auth authenticates requests and mints tokens. Required.
	Auth *auth.Service
	// Bus receives events posted to /api/v3/events. Required.
	Bus *events.Bus
	// WS serves /api/v3/ws. Required.
	WS *events.WebsocketHandler
	// Info describes the server for /api/v3/info and token answers.
	Info func(ctx context.Context) models.Info
	// Logger logs requests (never bodies or query strings).
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// MetricsOpen serves /metrics without authentication.
	MetricsOpen bool
	// MaxBodyBytes bounds request bodies (413 beyond).
	MaxBodyBytes int64
	// RequestTimeout bounds every request but the websocket.
	RequestTimeout time.Duration
	// Logs returns the recent log lines served at /api/v3/logs (oldest
	// first); nil serves none.
	Logs func() []models.LogLine
	// ReadTimeout is the http.Server's ReadTimeout, which bounds reading
	// a request's body: plugin actions and uploads get their longer time
	// limit instead; once the body is read, the request time limit alone
	// bounds the handler.
	ReadTimeout time.Duration
	// ReserveHint explains the connection reserve in the 503 answered to
	// a non-superuser request on a reserve connection (see
	// netlimit.Reserved), e.g. which flags set it.
	ReserveHint string
	// OnReserveRefused is called for every such refusal (metrics).
	OnReserveRefused func()
	// Logins throttles failed password logins; nil does not throttle.
	Logins *LoginThrottle
}

// ctx keys stored on the gin context.
const (
	keyPrincipal = "provision.principal"
	keyPrefix    = "provision.prefix"
	keyID        = "provision.id"
	keySub       = "provision.sub"
	keyRoute     = "provision.route"
)

// API is the HTTP handler of provisiond.
type API struct {
	opts   Options
	engine *gin.Engine
	v3     *gin.RouterGroup
	log    *slog.Logger

	mu        sync.RWMutex
	items     map[string]map[string]gin.HandlerFunc            // prefix|"*" → method → handler
	subs      map[string]map[string]map[string]gin.HandlerFunc // prefix|"*" → sub → method → handler
	limits    map[string]int64                                 // path prefix → body limit
	streaming map[string]bool                                  // path prefixes exempt from the time limit
	rules     []TimeoutRule                                    // per-request time limit overrides

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New builds the API and its routes.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 20
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = time.Minute
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Info == nil {
		opts.Info = func(context.Context) models.Info { return models.Info{} }
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	a := &API{
		opts: opts, engine: e, log: opts.Logger,
		items:     map[string]map[string]gin.HandlerFunc{},
		subs:      map[string]map[string]map[string]gin.HandlerFunc{},
		limits:    map[string]int64{},
		streaming: map[string]bool{Prefix + "/ws": true},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_http_requests_total", Help: "API requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "provision_http_request_duration_seconds", Help: "API request latency by method and route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "route"}),
	}
	for _, c := range []prometheus.Collector{a.requests, a.latency} {
		if err := opts.Registry.Register(c); err != nil {
			a.log.Warn("metrics: register", "error", err)
		}
	}
	// A long-poll GET (Prefer: wait=) may outlast the request timeout.
	a.rules = append(a.rules, func(r *http.Request) (time.Duration, bool) {
		if d, ok := preferWait(r); ok {
			return d + time.Minute, true
		}
		return 0, false
	})
	e.Use(a.observe, a.recover, a.limit, a.reserveGate)
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	metrics := promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})
	if opts.MetricsOpen {
		e.GET("/metrics", gin.WrapH(metrics))
	} else {
		e.GET("/metrics", a.authenticate, a.require("metrics", "get", "*"), gin.WrapH(metrics))
	}
	a.v3 = e.Group(Prefix, a.authenticate)
	a.fixedRoutes()
	e.NoRoute(a.authenticate, a.dispatch)
	e.NoMethod(a.authenticate, func(c *gin.Context) {
		WriteError(c, &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusMethodNotAllowed,
			Messages: []string{"Method not allowed"}})
	})
	return a
}

// Handler returns the http.Handler serving everything.
func (a *API) Handler() http.Handler { return a.engine }

// Engine returns the gin engine, for routes outside /api/v3. Add routes
// before the server starts serving.
func (a *API) Engine() *gin.Engine { return a.engine }

// Group returns the authenticated /api/v3 route group. Routes added here
// must use paths whose first segment is not an object kind prefix (e.g.
// /plugin-apis/:plugin/*path, /system/actions); extend object URLs with
// HandleItem and HandleSub instead. Add routes before the server starts
// serving. Handlers check rights with Require.
func (a *API) Group() *gin.RouterGroup { return a.v3 }

// HandleItem serves method on /api/v3/<prefix>/<id> for a method the
// generic routes do not serve (e.g. POST for a provider upload); prefix "*"
// applies to every kind. The handler reads ObjectPrefix and ObjectID and
// checks rights itself. Safe to call while serving.
func (a *API) HandleItem(prefix, method string, h gin.HandlerFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.items[prefix] == nil {
		a.items[prefix] = map[string]gin.HandlerFunc{}
	}
	a.items[prefix][method] = h
}

// HandleSub serves method on /api/v3/<prefix>/<id>/<sub>[/<rest...>]
// (e.g. sub "actions"); prefix "*" applies to every kind. The handler reads
// ObjectPrefix, ObjectID and SubPath (the rest after sub) and checks rights
// itself. Safe to call while serving.
func (a *API) HandleSub(prefix, sub, method string, h gin.HandlerFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.subs[prefix] == nil {
		a.subs[prefix] = map[string]map[string]gin.HandlerFunc{}
	}
	if a.subs[prefix][sub] == nil {
		a.subs[prefix][sub] = map[string]gin.HandlerFunc{}
	}
	a.subs[prefix][sub][method] = h
}

// SetBodyLimit changes the body size limit of requests whose path starts
// with pathPrefix (the longest matching prefix wins), e.g. for uploads.
func (a *API) SetBodyLimit(pathPrefix string, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limits[pathPrefix] = n
}

// SetStreaming exempts requests whose path starts with pathPrefix from the
// request time limit (long-lived streams). Such handlers must end when the
// request context ends.
func (a *API) SetStreaming(pathPrefix string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.streaming[pathPrefix] = true
}

// TimeoutRule decides the time limit of the requests it recognises: it
// returns ok false for others. A limit of 0 or less means no limit from
// the API: the handler bounds the work itself and must end when the
// request context ends (the client going away still cancels it).
type TimeoutRule func(r *http.Request) (limit time.Duration, ok bool)

// AddTimeoutRule overrides the global request time limit for the requests
// rule recognises, e.g. plugin actions whose own timeout (and per-request
// ?timeout=) may exceed it. Rules are consulted in the order added; the
// first that recognises a request wins; streaming prefixes (SetStreaming)
// are never limited. Safe to call while serving.
func (a *API) AddTimeoutRule(rule TimeoutRule) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rules = append(a.rules, rule)
}

// PrincipalOf returns the authenticated caller of a request.
func PrincipalOf(c *gin.Context) *auth.Principal {
	p, _ := c.Get(keyPrincipal)
	pr, _ := p.(*auth.Principal)
	return pr
}

// ObjectPrefix is the kind prefix of an object URL served by HandleItem/HandleSub.
func ObjectPrefix(c *gin.Context) string { return c.GetString(keyPrefix) }

// ObjectID is the id segment (key or <Index>:<value>) of an object URL.
func ObjectID(c *gin.Context) string { return c.GetString(keyID) }

// SubPath is what follows the sub-resource name in a HandleSub URL, without
// a leading slash ("" when nothing follows).
func SubPath(c *gin.Context) string { return c.GetString(keySub) }

// WriteError answers with err as a models.Error whose Code is the status.
// Errors other than *models.Error become 500.
func WriteError(c *gin.Context, err error) {
	var me *models.Error
	if !errors.As(err, &me) {
		me = &models.Error{Type: c.Request.Method, Code: http.StatusInternalServerError, Messages: []string{err.Error()}}
		if errors.Is(err, context.DeadlineExceeded) {
			me.Code = http.StatusServiceUnavailable
			me.Messages = []string{"request took too long"}
		}
	}
	if me.Code < 400 || me.Code > 599 {
		me.Code = http.StatusInternalServerError
	}
	if me.Messages == nil {
		me.Messages = []string{}
	}
	c.Abort()
	c.JSON(me.Code, me)
}

// Require checks that the caller may do action on scope/specific; when not,
// it answers 403 and returns false.
func Require(c *gin.Context, scope, action, specific string) bool {
	msg := PrincipalOf(c).Denial(scope, action, specific)
	if msg == "" {
		return true
	}
	WriteError(c, &models.Error{Model: scope, Key: specific, Type: "AUTH", Code: http.StatusForbidden,
		Messages: []string{msg}})
	return false
}

func (a *API) require(scope, action, specific string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !Require(c, scope, action, specific) {
			c.Abort()
		}
	}
}

// ReadBody reads the request body within the size limit (413 beyond it).
func ReadBody(c *gin.Context) ([]byte, error) {
	buf, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusRequestEntityTooLarge,
				Messages: []string{fmt.Sprintf("Request body larger than %d bytes", mbe.Limit)}}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.Header("Connection", "close")
			return nil, &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusRequestTimeout,
				Messages: []string{"Request body not received in time: send it faster or raise --read-timeout (RS_READ_TIMEOUT)"}}
		}
		return nil, &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusBadRequest,
			Messages: []string{"Cannot read body: " + err.Error()}}
	}
	return buf, nil
}

// ReadJSON reads the body and decodes it into v.
func ReadJSON(c *gin.Context, v any) error {
	buf, err := ReadBody(c)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(buf))) == 0 {
		return &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusBadRequest, Messages: []string{"Empty body"}}
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusBadRequest,
			Messages: []string{"Invalid JSON: " + err.Error()}}
	}
	return nil
}

// --- middleware ---

func (a *API) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.GetString(keyRoute)
	if route == "" {
		route = c.FullPath()
	}
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	d := time.Since(start)
	a.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
	a.latency.WithLabelValues(c.Request.Method, route).Observe(d.Seconds())
	lvl := slog.LevelDebug
	switch {
	case status >= 500:
		lvl = slog.LevelError
	case status >= 400:
		lvl = slog.LevelInfo
	}
	if a.log.Enabled(c.Request.Context(), lvl) {
		who := ""
		if p := PrincipalOf(c); p != nil {
			who = p.Name
		}
		// Only the path: query strings may carry tokens, bodies secrets.
		a.log.Log(c.Request.Context(), lvl, "request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", status, "duration", d, "principal", who, "remote", c.ClientIP())
	}
}

func (a *API) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			a.log.Error("handler panic", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				WriteError(c, &models.Error{Type: c.Request.Method, Key: c.Request.URL.Path, Code: http.StatusInternalServerError,
					Messages: []string{"Panic recovered: internal error (see server log)"}})
			}
		}
	}()
	c.Next()
}

func (a *API) limit(c *gin.Context) {
	path := c.Request.URL.Path
	a.mu.RLock()
	n, best := a.opts.MaxBodyBytes, -1
	for p, l := range a.limits {
		if strings.HasPrefix(path, p) && len(p) > best {
			n, best = l, len(p)
		}
	}
	stream := false
	for p := range a.streaming {
		if strings.HasPrefix(path, p) {
			stream = true
		}
	}
	rules := a.rules
	a.mu.RUnlock()
	timeout, ruled := a.opts.RequestTimeout, false
	for _, rule := range rules {
		if d, ok := rule(c.Request); ok {
			timeout, ruled = d, true
			break
		}
	}
	if c.Request.ContentLength > n {
		WriteError(c, &models.Error{Type: c.Request.Method, Key: path, Code: http.StatusRequestEntityTooLarge,
			Messages: []string{fmt.Sprintf("Request body larger than %d bytes", n)}})
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
	}
	// The body of a request with its own time limit (plugin actions) or
	// its own body limit (provider uploads) may take as long as the
	// request; any other body must arrive within ReadTimeout.
	budget := a.opts.ReadTimeout
	if ruled || n > a.opts.MaxBodyBytes {
		budget = max(budget, timeout)
	}
	a.readDeadline(c, budget)
	if !stream && timeout > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
	}
	c.Next()
}

// readDeadline gives the body of this request budget to arrive when that
// is longer than the http.Server's ReadTimeout, which it set as the read
// deadline of the whole request. net/http itself lifts the deadline once
// the body has been read (or at once when there is none, as for
// websockets and long-polls), so the handler's time is bounded by the
// request time limit, not by ReadTimeout.
func (a *API) readDeadline(c *gin.Context, budget time.Duration) {
	if c.Request.Body == nil || c.Request.Body == http.NoBody || budget <= a.opts.ReadTimeout {
		return
	}
	err := http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(budget))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		a.log.Debug("set read deadline", "path", c.Request.URL.Path, "error", err)
	}
}

// reserveGate serves a request on a reserve connection (the last slots
// of the API listener's connection cap, see netlimit) only when it
// authenticates as a superuser; anything else gets 503 and the
// connection is closed, freeing the slot.
func (a *API) reserveGate(c *gin.Context) {
	if !netlimit.Reserved(c.Request.Context()) {
		return
	}
	c.Header("Connection", "close")
	if a.authenticate(c); c.IsAborted() {
		return
	}
	if PrincipalOf(c).Covers(models.Claim{Scope: "*", Action: "*", Specific: "*"}) {
		c.Writer.Header().Del("Connection")
		netlimit.Claim(c.Request.Context())
		return
	}
	if a.opts.OnReserveRefused != nil {
		a.opts.OnReserveRefused()
	}
	c.Header("Retry-After", "1")
	WriteError(c, &models.Error{Type: "LIMIT", Key: c.Request.URL.Path, Code: http.StatusServiceUnavailable,
		Messages: []string{"Too many connections: the server is at its API connection limit and the remaining slots are reserved for superusers; retry later. " + a.opts.ReserveHint}})
}

func (a *API) authenticate(c *gin.Context) {
	if PrincipalOf(c) != nil {
		return
	}
	allowQuery := c.Request.URL.Path == Prefix+"/ws"
	var throttled []string
	if user, ok := passwordUser(c.Request, allowQuery); ok && a.opts.Logins != nil {
		if throttled, ok = a.opts.Logins.take(c, user); !ok {
			return
		}
	}
	p, err := a.opts.Auth.Authenticate(c.Request.Context(), c.Request, allowQuery)
	if err == nil && throttled != nil {
		a.opts.Logins.refund(throttled)
	}
	if err != nil {
		err.Type = "AUTH"
		if err.Key == "" {
			err.Key = c.Request.URL.Path
		}
		c.Header("WWW-Authenticate", `Basic realm="provision"`)
		WriteError(c, err)
		return
	}
	c.Set(keyPrincipal, p)
	// Writes check what the caller grants against its own rights
	// (auth.GuardUserRights) through the request context.
	c.Request = c.Request.WithContext(auth.WithPrincipal(c.Request.Context(), p))
}

// --- fixed routes ---

func (a *API) fixedRoutes() {
	g := a.v3
	g.GET("/info", a.require("info", "get", "*"), func(c *gin.Context) {
		c.JSON(http.StatusOK, a.opts.Info(c.Request.Context()))
	})
	g.GET("/objects", func(c *gin.Context) { c.JSON(http.StatusOK, a.opts.Objects.Prefixes()) })
	// DRP's Client.Logs and drpcli logs get: the buffered log lines
	// ([]logger.Line), claim logs:get (superuser, readonly).
	g.GET("/logs", a.require("logs", "get", "*"), func(c *gin.Context) {
		lines := []models.LogLine{}
		if a.opts.Logs != nil {
			lines = a.opts.Logs()
		}
		c.JSON(http.StatusOK, lines)
	})
	g.GET("/indexes", func(c *gin.Context) {
		out := map[string]map[string]models.Index{}
		for _, p := range a.opts.Objects.Prefixes() {
			if k, ok := a.opts.Objects.Kind(p); ok {
				out[p] = k.Indexes
			}
		}
		c.JSON(http.StatusOK, out)
	})
	g.GET("/indexes/:prefix", func(c *gin.Context) {
		k, ok := a.opts.Objects.Kind(c.Param("prefix"))
		if !ok {
			WriteError(c, &models.Error{Model: "indexes", Key: c.Param("prefix"), Type: "GET", Code: 404, Messages: []string{"Not Found"}})
			return
		}
		c.JSON(http.StatusOK, k.Indexes)
	})
	g.GET("/indexes/:prefix/:field", func(c *gin.Context) {
		k, ok := a.opts.Objects.Kind(c.Param("prefix"))
		idx, found := k.Indexes[c.Param("field")]
		if !ok || !found {
			WriteError(c, &models.Error{Model: "indexes", Key: c.Param("prefix") + "/" + c.Param("field"), Type: "GET", Code: 404, Messages: []string{"Not Found"}})
			return
		}
		c.JSON(http.StatusOK, idx)
	})
	g.GET("/meta/:prefix/*id", a.getMeta)
	g.PATCH("/meta/:prefix/*id", a.patchMeta)
	g.GET("/users/:name/token", a.userToken)
	g.PUT("/users/:name/password", a.userPassword)
	g.POST("/events", a.require("events", "post", "*"), a.postEvent)
	g.GET("/ws", func(c *gin.Context) {
		p := PrincipalOf(c)
		allow := func(e *models.Event) bool { return p.Allows(e.Type, "get", e.Key) }
		a.opts.WS.ServeClient(c.Writer, c.Request, events.WSClient{Principal: p.Name, Allow: allow,
			Superuser: p.Covers(models.Claim{Scope: "*", Action: "*", Specific: "*"})})
	})
}

func (a *API) userToken(c *gin.Context) {
	name := c.Param("name")
	p := PrincipalOf(c)
	// A user proving its password may mint its own tokens; a token holder
	// needs the users:token right, and MintUserToken keeps the new token
	// within the caller's rights and lifetime so no token can widen
	// itself. Process tokens (plugins, define) cannot mint at all.
	if !(p.ViaPassword && p.Name == name) && !Require(c, "users", "token", name) {
		return
	}
	ttl := auth.DefaultTTL
	if v := c.Query("ttl"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 {
			d, derr := time.ParseDuration(v)
			if derr != nil || d <= 0 {
				WriteError(c, &models.Error{Model: "users", Key: name, Type: "GET", Code: 400,
					Messages: []string{fmt.Sprintf("ttl must be a positive number of seconds or a duration, not %q", v)}})
				return
			}
			ttl = d
		} else {
			ttl = time.Duration(secs) * time.Second
		}
	}
	var claims []models.Claim
	if s, act, sp := c.Query("scope"), c.Query("action"), c.Query("specific"); s != "" || act != "" || sp != "" {
		def := func(v string) string {
			if v == "" {
				return "*"
			}
			return v
		}
		claims = []models.Claim{{Scope: def(s), Action: def(act), Specific: def(sp)}}
	} else if r := c.Query("roles"); r != "" {
		var err error
		if claims, err = auth.RoleClaims(strings.Split(r, ",")); err != nil {
			WriteError(c, &models.Error{Model: "users", Key: name, Type: "GET", Code: 400, Messages: []string{err.Error()}})
			return
		}
	}
	tok, err := a.opts.Auth.MintUserToken(c.Request.Context(), p, name, claims, ttl)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, models.UserToken{Token: tok, Info: a.opts.Info(c.Request.Context())})
}

func (a *API) userPassword(c *gin.Context) {
	name := c.Param("name")
	p := PrincipalOf(c)
	if !(p.ViaPassword && p.Name == name) && !Require(c, "users", "password", name) {
		return
	}
	var body models.UserPassword
	if err := ReadJSON(c, &body); err != nil {
		WriteError(c, err)
		return
	}
	if err := a.opts.Auth.SetPassword(c.Request.Context(), p.Name, name, body.Password); err != nil {
		WriteError(c, err)
		return
	}
	out, err := a.opts.Objects.GetRendered(c.Request.Context(), "PUT", "users", name, objects.RenderOptions{})
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", out.JSON)
}

func (a *API) postEvent(c *gin.Context) {
	var e models.Event
	if err := ReadJSON(c, &e); err != nil {
		WriteError(c, err)
		return
	}
	var missing []string
	if e.Type == "" {
		missing = append(missing, "Type")
	}
	if e.Action == "" {
		missing = append(missing, "Action")
	}
	if len(missing) > 0 {
		WriteError(c, &models.Error{Model: "events", Type: "ValidationError", Code: http.StatusUnprocessableEntity,
			Messages: []string{"Event must have " + strings.Join(missing, " and ")}})
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Principal = PrincipalOf(c).Name
	a.opts.Bus.Publish(e)
	// DRP answers 204 with a JSON Content-Type, and DRP's Go client
	// (api.R.Do) rejects any answer without one, even a 204.
	c.Data(http.StatusNoContent, "application/json", nil)
}
