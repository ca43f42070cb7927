package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
)

// SystemPrefix is the pseudo prefix of system actions
// (/api/v3/system/actions): AvailableActions whose Model is "".
const SystemPrefix = "system"

// ActionRequest is one action invocation.
type ActionRequest struct {
	// Prefix is the object type ("machines", "plugins", a StoreObjects
	// prefix...) or SystemPrefix.
	Prefix string
	// ID is the object key or <Index>:<value>; ignored for system actions.
	ID string
	// Command is the action to run.
	Command string
	// Plugin, when set, picks that instance (?plugin=).
	Plugin string
	// Params are the caller's params (the request body).
	Params map[string]any
	// Timeout overrides the default action timeout (capped by
	// Config.MaxActionTimeout); 0 uses the default.
	Timeout time.Duration
	// Principal is who asked, for the invocation event.
	Principal string
}

// candidate is one instance able to run an action.
type candidate struct {
	in     *instance
	prov   *provider
	action models.AvailableAction
}

// target is the object an action runs against.
type target struct {
	obj    models.Model
	model  string // AvailableAction.Model to match ("" for system)
	errMod string // Model/Key in error messages
	errKey string
}

func (h *Host) target(ctx context.Context, prefix, id, typ string) (*target, error) {
	if prefix == SystemPrefix {
		// DRP resolves system action params against the global profile
		// and reports errors as system/global; the plugin receives the
		// global profile as Action.Model.
		obj, err := h.deps.Objects.GetObject(ctx, "profiles", "global")
		if err != nil {
			return nil, err
		}
		return &target{obj: obj, model: "", errMod: SystemPrefix, errKey: "global"}, nil
	}
	obj, err := h.deps.Objects.GetObject(ctx, prefix, id)
	if err != nil {
		var me *models.Error
		if errors.As(err, &me) {
			cp := *me
			cp.Type = typ
			return nil, &cp
		}
		return nil, err
	}
	return &target{obj: obj, model: prefix, errMod: prefix, errKey: obj.Key()}, nil
}

// instancesFor returns the instance named plugin, or every instance
// (sorted by name) when plugin is "".
func (h *Host) instancesFor(plugin string) []*instance {
	if plugin == "" {
		return h.sortedInstances()
	}
	if in := h.instance(plugin); in != nil {
		return []*instance{in}
	}
	return nil
}

// candidates lists the instances (sorted by name) offering model/cmd;
// cmd "" matches every command.
func (h *Host) candidates(model, cmd, plugin string) []candidate {
	var out []candidate
	for _, in := range h.instancesFor(plugin) {
		enabled, prov := in.actionsEnabled()
		if !enabled {
			continue
		}
		for _, a := range prov.def.AvailableActions {
			if a.Model == model && (cmd == "" || a.Command == cmd) {
				out = append(out, candidate{in: in, prov: prov, action: a})
			}
		}
	}
	return out
}

// idleOffers says, for each instance (sorted, only plugin when set) that
// is not running although its provider offers model/cmd, "plugin <name>
// is not running: <why>". An action asked of such an instance would
// otherwise be answered "Not Found", which reads like a typo.
func (h *Host) idleOffers(model, cmd, plugin string) []string {
	var out []string
	for _, in := range h.instancesFor(plugin) {
		if enabled, _ := in.actionsEnabled(); enabled {
			continue
		}
		prov := h.provider(in.providerName())
		if prov == nil {
			continue
		}
		for _, a := range prov.def.AvailableActions {
			if a.Model == model && a.Command == cmd {
				out = append(out, fmt.Sprintf("plugin %s is not running: %s", in.name, in.whyNotRunning()))
				break
			}
		}
	}
	return out
}

// notRunning answers a request to run an action no running instance
// offers: 503 naming the instances that would offer it and why they are
// down, or nil when none would (the caller keeps DRP's "Not Found").
func (h *Host) notRunning(t *target, cmd, plugin string) *models.Error {
	idle := h.idleOffers(t.model, cmd, plugin)
	if len(idle) == 0 {
		return nil
	}
	return actionError(t, "INVOKE", http.StatusServiceUnavailable,
		fmt.Sprintf("Action %s on %s: %s", cmd, t.errMod, strings.Join(idle, "; ")))
}

// resolve builds the params of an action (§5.4 step 3): the caller's
// params, then for each required/optional param not given, the object's
// aggregated value (object, profiles, global) and finally the param
// schema's default (DRP plugins such as ipmi rely on those defaults), then
// schema validation. It returns DRP's error messages.
func (h *Host) resolve(ctx context.Context, lk *paramLookup, a models.AvailableAction, body map[string]any) (map[string]any, string, error) {
	params := make(map[string]any, len(body)+len(a.RequiredParams)+len(a.OptionalParams))
	for k, v := range body {
		params[k] = v
	}
	fill := func(name string, required bool) (string, error) {
		if _, ok := params[name]; ok {
			return "", nil
		}
		v, found, err := lk.value(ctx, name)
		if err != nil {
			return "", err
		}
		if !found {
			def, err := lk.def(ctx, name)
			if err != nil {
				return "", err
			}
			if def != nil {
				v, found = def.DefaultValue()
			}
		}
		if found {
			params[name] = v
			return "", nil
		}
		if required {
			return fmt.Sprintf("Action %s Missing Parameter %s", a.Command, name), nil
		}
		return "", nil
	}
	for _, name := range a.RequiredParams {
		if msg, err := fill(name, true); msg != "" || err != nil {
			return nil, msg, err
		}
	}
	for _, name := range a.OptionalParams {
		if _, err := fill(name, false); err != nil {
			return nil, "", err
		}
	}
	for _, list := range [][]string{a.RequiredParams, a.OptionalParams} {
		for _, name := range list {
			v, ok := params[name]
			if !ok {
				continue
			}
			def, err := lk.def(ctx, name)
			if err != nil {
				return nil, "", err
			}
			if err := h.checkAgainst(name, def, v); err != nil {
				return nil, fmt.Sprintf("Action %s: Invalid Parameter: %s: : %v", a.Command, name, err), nil
			}
		}
	}
	return params, "", nil
}

func actionError(t *target, typ string, code int, msg string) *models.Error {
	return &models.Error{Model: t.errMod, Key: t.errKey, Type: typ, Code: code, Messages: []string{msg}}
}

// ListActions returns the actions (one per command, sorted) that currently
// validate against prefix/id: registered by a running or restarting
// instance, required params resolvable and schema-valid.
func (h *Host) ListActions(ctx context.Context, prefix, id, plugin string) ([]models.AvailableAction, error) {
	t, err := h.target(ctx, prefix, id, "GET")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := []models.AvailableAction{}
	lk := h.newLookup(t.obj)
	for _, c := range h.candidates(t.model, "", plugin) {
		if seen[c.action.Command] {
			continue
		}
		_, msg, err := h.resolve(ctx, lk, c.action, nil)
		if err != nil {
			return nil, actionError(t, "GET", http.StatusInternalServerError, err.Error())
		}
		if msg != "" {
			continue
		}
		seen[c.action.Command] = true
		out = append(out, c.action)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Command < out[j].Command })
	return out, nil
}

// GetAction returns one action if it validates against prefix/id: 404 when
// no running instance offers it (naming the instances that would, and why
// they are not running), 400 with DRP's message when it does not
// validate.
func (h *Host) GetAction(ctx context.Context, prefix, id, cmd, plugin string) (*models.AvailableAction, error) {
	t, err := h.target(ctx, prefix, id, "GET")
	if err != nil {
		return nil, err
	}
	cands := h.candidates(t.model, cmd, plugin)
	if len(cands) == 0 {
		// Not available here, as the list shows; say why when an
		// instance that is not running would offer it.
		msg := cmd + ": Not Found"
		if idle := h.idleOffers(t.model, cmd, plugin); len(idle) > 0 {
			msg += ": " + strings.Join(idle, "; ")
		}
		return nil, actionError(t, "GET", http.StatusNotFound, msg)
	}
	var first string
	lk := h.newLookup(t.obj)
	for _, c := range cands {
		_, msg, err := h.resolve(ctx, lk, c.action, nil)
		if err != nil {
			return nil, actionError(t, "GET", http.StatusInternalServerError, err.Error())
		}
		if msg == "" {
			a := c.action
			return &a, nil
		}
		if first == "" {
			first = msg
		}
	}
	return nil, actionError(t, "GET", http.StatusBadRequest, first)
}

// RunAction validates and runs an action and returns the plugin's JSON
// answer verbatim. Errors are *models.Error: 400 validation (DRP's
// messages, and DRP's "Not Found" when no provider offers the action), 404
// missing object, the plugin's own error with its code, 502 when the
// plugin died during the call, 503 when it is restarting or when only
// instances that are not running (config failed, stopped) offer the
// action, 504 on timeout.
func (h *Host) RunAction(ctx context.Context, req ActionRequest) (json.RawMessage, error) {
	t, err := h.target(ctx, req.Prefix, req.ID, "POST")
	if err != nil {
		return nil, err
	}
	cands := h.candidates(t.model, req.Command, req.Plugin)
	if len(cands) == 0 {
		if nr := h.notRunning(t, req.Command, req.Plugin); nr != nil {
			return nil, nr
		}
		if req.Plugin != "" {
			return nil, actionError(t, "INVOKE", http.StatusBadRequest,
				fmt.Sprintf("Action %s on %s for plugin %s not found", req.Command, t.errMod, req.Plugin))
		}
		return nil, actionError(t, "INVOKE", http.StatusBadRequest,
			fmt.Sprintf("Action %s on %s: Not Found", req.Command, t.errMod))
	}
	var chosen *candidate
	var params map[string]any
	var firstMsg string
	var proc *process
	var notRunning *models.Error
	lk := h.newLookup(t.obj)
	for i := range cands {
		c := &cands[i]
		ps, msg, err := h.resolve(ctx, lk, c.action, req.Params)
		if err != nil {
			return nil, actionError(t, "INVOKE", http.StatusInternalServerError, err.Error())
		}
		if msg != "" {
			if firstMsg == "" {
				firstMsg = msg
			}
			continue
		}
		// Prefer a running instance over one that is restarting.
		p, nr := c.in.current()
		if nr != nil {
			if notRunning == nil {
				notRunning = nr
				chosen, params = c, ps
			}
			continue
		}
		chosen, params, proc = c, ps, p
		break
	}
	if chosen == nil {
		return nil, actionError(t, "INVOKE", http.StatusBadRequest, firstMsg)
	}
	timeout := h.ActionTimeout(req.Timeout)
	// One deadline covers waiting for a restarting instance and the call.
	deadline := time.Now().Add(timeout)
	if proc == nil {
		// During a deliberate restart (new params, new provider binary)
		// wait for the new process instead of failing; crashes and
		// failed starts are answered at once.
		w := chosen.in.restartWait()
		if w == nil {
			return nil, notRunning
		}
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-w:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		p, nr := chosen.in.current()
		if nr != nil {
			return nil, nr
		}
		proc = p
	}
	action := &models.Action{Plugin: chosen.in.name, Command: req.Command, Params: params, Model: t.obj}
	h.publishInvocation(ctx, lk, t, req, action)
	return h.invoke(ctx, proc, t, action, timeout, deadline)
}

// ActionTimeout returns the time limit of an action: override (a
// request's ?timeout=) capped at Config.MaxActionTimeout (default 1h), or
// Config.ActionTimeout (default 5m) when override is 0. It is the
// effective bound of an action, not the API's global request timeout:
// hostmodule lifts that for action requests to this plus ActionSlack.
func (h *Host) ActionTimeout(override time.Duration) time.Duration {
	if override > 0 {
		return min(override, h.cfg.MaxActionTimeout)
	}
	return h.cfg.ActionTimeout
}

// ActionSlack is the time an action request gets on top of ActionTimeout
// for resolving params and answering, so that the action's own timeout
// (504 naming it) fires before the request's.
const ActionSlack = 30 * time.Second

func (h *Host) invoke(ctx context.Context, p *process, t *target, action *models.Action, timeout time.Duration, deadline time.Time) (json.RawMessage, error) {
	name := p.name
	if !p.enter() {
		return nil, &models.Error{Model: "plugins", Key: name, Type: "plugin", Code: http.StatusServiceUnavailable,
			Messages: []string{fmt.Sprintf("Plugin %s is stopping", name)}}
	}
	defer p.inflight.Done()
	start := time.Now()
	// One context bounds the call by the deadline and by the process's
	// life (as callCtx would, without a second context per action).
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	stop := context.AfterFunc(p.life, cancel)
	defer stop()
	status, body, err := p.postBound(cctx, "/action", action)
	dur := time.Since(start)
	if err != nil {
		h.metrics.action(name, dur, false)
		switch {
		case p.life.Err() != nil:
			// life also ends when cleanup gives up on a child that outlived
			// SIGKILL (e.g. stuck in the kernel): wait for its exit status
			// only as long as a stop would.
			how := "its exit status is not known yet"
			if waitExit(p.exited, h.cfg.StopGrace) {
				how = p.exitString()
			}
			return nil, actionError(t, "INVOKE", http.StatusBadGateway,
				fmt.Sprintf("Plugin %s exited during action %s (%s)", name, action.Command, how))
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			// The caller went away; nobody reads this.
			return nil, actionError(t, "INVOKE", 499, "client closed the request")
		case ctx.Err() != nil:
			return nil, actionError(t, "INVOKE", http.StatusGatewayTimeout,
				fmt.Sprintf("Action %s on plugin %s exceeded the request time limit", action.Command, name))
		case errors.Is(cctx.Err(), context.DeadlineExceeded):
			// (Canceled is the process's end, answered above.)
			return nil, actionError(t, "INVOKE", http.StatusGatewayTimeout,
				fmt.Sprintf("Action %s on plugin %s timed out after %s", action.Command, name, timeout))
		default:
			return nil, actionError(t, "INVOKE", http.StatusBadGateway,
				fmt.Sprintf("Plugin %s failed during action %s: %v", name, action.Command, err))
		}
	}
	if status >= 400 {
		h.metrics.action(name, dur, false)
		return nil, decodeError(status, body, "plugin", "plugin", name)
	}
	h.metrics.action(name, dur, true)
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" {
		return json.RawMessage("null"), nil
	}
	if !json.Valid([]byte(trimmed)) {
		return nil, actionError(t, "INVOKE", http.StatusBadGateway,
			fmt.Sprintf("Plugin %s answered action %s with invalid JSON", name, action.Command))
	}
	return json.RawMessage(trimmed), nil
}

// publishInvocation emits DRP's per-invocation event {Type: prefix,
// Action: cmd, Key: id, Object: the Action}. Unlike DRP, secure param
// values (decrypted for the plugin) are masked: events are visible to
// anyone allowed to watch them.
func (h *Host) publishInvocation(ctx context.Context, lk *paramLookup, t *target, req ActionRequest, a *models.Action) {
	masked := make(map[string]any, len(a.Params))
	for k, v := range a.Params {
		if def, err := lk.def(ctx, k); err == nil && def != nil && def.Secure {
			v = "*****"
		}
		masked[k] = v
	}
	ev := *a
	ev.Params = masked
	typ := req.Prefix
	h.deps.Bus.Publish(models.Event{Time: time.Now(), Type: typ, Action: req.Command, Key: t.errKey,
		Principal: req.Principal, Object: &ev})
}

// ParseTimeout parses a per-request action timeout: a Go duration ("90s")
// or a number of seconds ("90").
func ParseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("timeout must be positive, got %q", s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout must be a positive duration like 30s, got %q", s)
	}
	return d, nil
}
