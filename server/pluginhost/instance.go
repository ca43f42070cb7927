package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provisionhq/provision/models"
)

// instance supervises one Plugin object: it owns at most one process at a
// time and restarts it when it crashes, stops answering, or its
// configuration changes. One goroutine (run) drives it, so lifecycle steps
// never race each other.
type instance struct {
	h    *Host
	name string
	log  *slog.Logger

	mu        sync.Mutex
	spec      *models.Plugin
	proc      *process      // configured process, nil when not running
	enabled   bool          // actions registered: running, or restarting after a crash
	state     string        // for error messages: why it is not running
	stateErrs []string      // errors of the current condition
	history   []string      // crash records, kept across restarts
	lastErrs  []string      // what PluginErrors was last set to
	settled   chan struct{} // non-nil during a deliberate restart; closed when it ends
	gone      bool          // the Plugin object no longer exists
	quitWhy   string        // why it is being removed, once it is

	errMu sync.Mutex // serialises PluginErrors writes

	wake  chan struct{}
	leave chan leaveReq
	quit  chan struct{}
	done  chan struct{}
	qOnce sync.Once

	pubDropped atomic.Uint64
}

type leaveReq struct {
	p      *process
	reason *models.Error
}

func newInstance(h *Host, spec *models.Plugin) *instance {
	return &instance{
		h: h, name: spec.Name, spec: spec, log: h.log.With("plugin", spec.Name),
		state: "starting",
		wake:  make(chan struct{}, 1), leave: make(chan leaveReq, 1),
		quit: make(chan struct{}), done: make(chan struct{}),
	}
}

func (in *instance) providerName() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.spec.Provider
}

func (in *instance) snapshot() *models.Plugin {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.spec
}

// material reports whether a and b differ in what requires a restart
// (DRP: Description, Provider or Params).
func material(a, b *models.Plugin) bool {
	if a.Description != b.Description || a.Provider != b.Provider {
		return true
	}
	ja, _ := json.Marshal(a.Params)
	jb, _ := json.Marshal(b.Params)
	return string(ja) != string(jb)
}

func (in *instance) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// update wakes the supervisor after a change of the Plugin object. The
// object itself is read again by the supervisor (refresh): change hooks may
// run in any order, so the copy a hook carries can be older than the
// stored object.
func (in *instance) update(p *models.Plugin) { in.poke() }

// refresh reads the current Plugin object (keeping the last known one
// when it cannot be read) and returns it.
func (in *instance) refresh() *models.Plugin {
	ctx, cancel := context.WithTimeout(in.h.ctx, 10*time.Second)
	defer cancel()
	p, err := in.h.deps.Plugins.GetPlugin(ctx, in.name)
	in.mu.Lock()
	defer in.mu.Unlock()
	if err == nil && p == nil {
		// The object is gone (a save hook that ran after the delete
		// hook re-created this instance): stop it.
		in.gone = true
	}
	if err == nil && p != nil {
		in.spec = p
	}
	return in.spec
}

// isGone reports whether refresh found the Plugin object deleted.
func (in *instance) isGone() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.gone
}

func (in *instance) providerChanged() { in.poke() }

// remove stops the instance for good and waits for it.
func (in *instance) remove() { in.removeBecause("deleted") }

// removeBecause is remove, with why as the state reported (to callers of
// its actions) while it stops.
func (in *instance) removeBecause(why string) {
	in.mu.Lock()
	if in.quitWhy == "" {
		in.quitWhy = why
	}
	in.mu.Unlock()
	in.qOnce.Do(func() { close(in.quit) })
	<-in.done
}

// quitState is the state of an instance that is being removed.
func (in *instance) quitState() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.quitWhy == "" {
		return "deleted"
	}
	return in.quitWhy
}

// leaving handles POST /leaving from process p.
func (in *instance) leaving(p *process, reason *models.Error) {
	select {
	case in.leave <- leaveReq{p: p, reason: reason}:
	default:
	}
}

// current returns the running process, or an error saying why there is
// none: 503 while restarting, so callers are answered at once.
func (in *instance) current() (*process, *models.Error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc != nil && !in.proc.stopping.Load() && in.proc.life.Err() == nil {
		return in.proc, nil
	}
	return nil, &models.Error{Model: "plugins", Key: in.name, Type: "plugin", Code: 503,
		Messages: []string{fmt.Sprintf("Plugin %s is not running: %s", in.name, in.stateLocked())}}
}

// stateLocked is in.state, unless that still says "running" although the
// process has exited or is stopping (the supervisor has not noticed yet):
// then it says so. Caller holds in.mu.
func (in *instance) stateLocked() string {
	p := in.proc
	if p == nil || in.state != "running" {
		return in.state
	}
	switch {
	case p.life.Err() != nil && p.unhealthy.Load():
		return "it stopped answering and was killed; restarting"
	case p.life.Err() != nil:
		// exitErr is written before life is cancelled.
		return "it exited unexpectedly (" + p.exitString() + "); restarting"
	case p.stopping.Load():
		return "it is stopping"
	}
	return in.state
}

// whyNotRunning says why the instance is down: its PluginErrors when
// they describe its state, else its state followed by them.
func (in *instance) whyNotRunning() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	state := in.stateLocked()
	switch {
	case len(in.lastErrs) == 0:
		return state
	case slices.Contains(in.lastErrs, state):
		return strings.Join(in.lastErrs, "; ")
	default:
		return state + " (" + strings.Join(in.lastErrs, "; ") + ")"
	}
}

// restartWait returns a channel closed when a deliberate restart (after a
// change of the object or provider) has finished, or nil when none is
// under way. Callers may wait on it instead of failing with 503.
func (in *instance) restartWait() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.settled
}

// settleLocked ends a deliberate restart; caller holds in.mu.
func (in *instance) settleLocked() {
	if in.settled != nil {
		close(in.settled)
		in.settled = nil
	}
}

func (in *instance) actionsEnabled() (bool, *provider) {
	in.mu.Lock()
	enabled, spec := in.enabled, in.spec
	in.mu.Unlock()
	if !enabled {
		return false, nil
	}
	prov := in.h.provider(spec.Provider)
	return prov != nil, prov
}

// setErrors writes PluginErrors = history + stateErrs when they changed.
func (in *instance) flushErrors() {
	in.errMu.Lock()
	defer in.errMu.Unlock()
	in.mu.Lock()
	errs := append(append([]string{}, in.history...), in.stateErrs...)
	if max := in.h.cfg.MaxPluginErrors; len(errs) > max {
		errs = errs[len(errs)-max:]
	}
	same := len(errs) == len(in.lastErrs)
	for i := 0; same && i < len(errs); i++ {
		same = errs[i] == in.lastErrs[i]
	}
	in.lastErrs = errs
	in.mu.Unlock()
	if same {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.h.deps.Plugins.SetPluginErrors(ctx, in.name, errs); err != nil {
		in.log.Error("update PluginErrors", "err", err)
	}
}

// PluginErrors returns what the host last reported for the plugin.
func (in *instance) pluginErrors() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string{}, in.lastErrs...)
}

// stopped records a condition that keeps the instance down until its
// object or provider changes.
func (in *instance) stopped(msg string, more ...string) {
	in.mu.Lock()
	in.proc, in.enabled, in.state = nil, false, msg
	in.stateErrs = append([]string{msg}, more...)
	in.settleLocked()
	in.mu.Unlock()
	in.h.metrics.up(in.name, false)
	in.flushErrors()
}

func (in *instance) addHistory(msg string) {
	in.mu.Lock()
	in.history = append(in.history, msg)
	if max := in.h.cfg.MaxPluginErrors; len(in.history) > max {
		in.history = in.history[len(in.history)-max:]
	}
	in.mu.Unlock()
	in.flushErrors()
}

// changedSince reports whether the Plugin object (re-read) or its
// provider differ materially from what was last acted on. Wakes also come
// from changes that do not matter, such as the host's own PluginErrors
// updates.
func (in *instance) changedSince(spec *models.Plugin, prov *provider) bool {
	cur := in.refresh()
	return in.isGone() || material(cur, spec) || in.h.provider(cur.Provider) != prov
}

// waitChange blocks until the object or provider changes materially
// compared with spec/prov (true) or the instance is removed (false).
func (in *instance) waitChange(spec *models.Plugin, prov *provider) bool {
	for {
		select {
		case <-in.wake:
			if in.changedSince(spec, prov) {
				return true
			}
		case <-in.quit:
			return false
		}
	}
}

// waitBackoff waits d, cut short by a material change (changed) or
// removal (not alive).
func (in *instance) waitBackoff(d time.Duration, spec *models.Plugin, prov *provider) (alive, changed bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true, false
		case <-in.wake:
			if in.changedSince(spec, prov) {
				return true, true
			}
		case <-in.quit:
			return false, false
		}
	}
}

func (in *instance) nextBackoff(cur time.Duration) time.Duration {
	if cur <= 0 {
		return in.h.cfg.BackoffMin
	}
	cur *= 2
	if cur > in.h.cfg.BackoffMax {
		cur = in.h.cfg.BackoffMax
	}
	return cur
}

// run is the supervisor loop.
func (in *instance) run() {
	defer close(in.done)
	defer func() {
		in.mu.Lock()
		in.settleLocked()
		in.mu.Unlock()
	}()
	defer in.h.metrics.forget(in.name)
	h := in.h
	var backoff time.Duration
	for {
		select {
		case <-in.quit:
			in.mu.Lock()
			in.enabled, in.proc = false, nil
			in.mu.Unlock()
			return
		default:
		}
		// Drain a pending wake: whatever changed is picked up now.
		select {
		case <-in.wake:
		default:
		}
		spec := in.refresh()
		if in.isGone() {
			h.dropInstance(in)
			return
		}
		prov := h.provider(spec.Provider)
		if prov == nil && !h.isDiscovered() {
			// The first discovery is still defining providers: wait for
			// ours (install wakes us) or for discovery to end.
			in.mu.Lock()
			in.state = "waiting for plugin provider discovery"
			in.mu.Unlock()
			select {
			case <-in.wake:
			case <-h.discovered:
			case <-in.quit:
			}
			continue
		}
		if prov == nil {
			in.clearForRestart()
			var why []string
			if w := h.removedWhy(spec.Provider); w != "" {
				why = append(why, w)
			}
			// A provider file of that name that failed define or
			// install (e.g. unpack output refused): say why.
			for _, e := range h.brokenErrors(spec.Provider) {
				if !slices.Contains(why, e) {
					why = append(why, e)
				}
			}
			in.stopped("Missing Plugin Provider: "+spec.Provider, why...)
			if !in.waitChange(spec, prov) {
				return
			}
			backoff = 0
			continue
		}
		params, errs := h.checkPluginParams(h.ctx, prov, spec)
		if len(errs) > 0 {
			in.clearForRestart()
			in.mu.Lock()
			in.proc, in.enabled, in.state = nil, false, errs[0]
			in.stateErrs = errs
			in.settleLocked()
			in.mu.Unlock()
			in.flushErrors()
			if !in.waitChange(spec, prov) {
				return
			}
			backoff = 0
			continue
		}
		in.mu.Lock()
		in.state = "starting"
		in.mu.Unlock()
		p, err := h.startProcess(h.ctx, in, prov, params)
		if err != nil {
			var perm *permanentError
			if errors.As(err, &perm) {
				in.log.Error("plugin failed to start", "err", err)
				in.stopped(err.Error())
				h.publish("plugins", "stopped", in.name, in.snapshot())
				var me *models.Error
				if errors.As(err, &me) && me.Code == http.StatusForbidden {
					// DRP (newer): /config refused with 403 (a licence
					// denial) removes the provider, exactly like
					// /leaving with 403.
					h.removeProviderFor(prov, fmt.Sprintf("plugin %s refused /config with 403: %s", in.name, me.Error()))
				}
				if !in.waitChange(spec, prov) {
					return
				}
				backoff = 0
				continue
			}
			backoff = in.nextBackoff(backoff)
			msg := fmt.Sprintf("%s: %v (retry in %s)", time.Now().UTC().Format(time.RFC3339), err, backoff)
			in.log.Error("plugin failed to start", "err", err, "retry_in", backoff)
			in.mu.Lock()
			in.proc, in.state = nil, "start failed, retrying in "+backoff.String()
			in.settleLocked()
			in.mu.Unlock()
			in.addHistory(msg)
			h.metrics.restart(in.name)
			h.publish("plugins", "crashed", in.name, map[string]any{"Name": in.name, "Error": err.Error()})
			alive, changed := in.waitBackoff(backoff, spec, prov)
			if !alive {
				return
			}
			if changed {
				backoff = 0
			}
			continue
		}
		in.mu.Lock()
		in.proc, in.enabled, in.state = p, true, "running"
		in.stateErrs = nil
		in.settleLocked()
		in.mu.Unlock()
		in.flushErrors()
		h.metrics.up(in.name, true)
		in.log.Info("plugin configured", "provider", prov.def.Name, "pid", p.cmd.Process.Pid, "sandbox", p.sandbox)
		in.recordSandbox(p.sandbox)
		h.publish("plugins", "configed", in.name, spec)

		stopPump := in.startPublishPump(p)
		stopHealth := in.startHealth(p)
		reason, leave := in.watch(p, prov, spec)
		stopHealth()
		stopPump()

		switch reason {
		case "crashed":
			in.mu.Lock()
			in.proc = nil
			in.mu.Unlock()
			h.metrics.up(in.name, false)
			p.cleanup()
			if time.Since(p.started) >= h.cfg.HealthyAfter {
				backoff = 0
			}
			backoff = in.nextBackoff(backoff)
			why := "exited unexpectedly (" + p.exitString() + ")"
			if p.unhealthy.Load() {
				why = "stopped answering and was killed"
			}
			msg := fmt.Sprintf("%s: plugin %s; restarting in %s", time.Now().UTC().Format(time.RFC3339), why, backoff)
			in.log.Error("plugin crashed", "why", why, "restart_in", backoff)
			in.mu.Lock()
			in.state = "crashed, restarting in " + backoff.String()
			in.mu.Unlock()
			in.addHistory(msg)
			h.metrics.restart(in.name)
			h.publish("plugins", "crashed", in.name, map[string]any{"Name": in.name, "Error": msg})
			alive, changed := in.waitBackoff(backoff, spec, prov)
			if !alive {
				return
			}
			if changed {
				backoff = 0
			}
		case "changed":
			// Actions stay registered: callers wait for the new process
			// (restartWait) instead of seeing "Not Found" or 503.
			in.mu.Lock()
			in.proc, in.state = nil, "restarting after a change"
			if in.settled == nil {
				in.settled = make(chan struct{})
			}
			in.mu.Unlock()
			h.metrics.up(in.name, false)
			p.stop(h.cfg.DrainTimeout)
			h.publish("plugins", "stopped", in.name, in.snapshot())
			in.clearForRestart()
			backoff = 0
		case "left":
			in.detach("left")
			p.stop(h.cfg.DrainTimeout)
			in.stopped("Plugin left: " + leave.Error())
			h.publish("plugins", "stopped", in.name, in.snapshot())
			if leave.Code == http.StatusForbidden {
				// DRP: a plugin leaving with 403 (typically a licence
				// denial) takes its whole provider down; every
				// instance then reports the missing provider and why.
				h.removeProviderFor(prov, fmt.Sprintf("plugin %s left with 403: %s", in.name, leave.Error()))
			}
			if !in.waitChange(spec, prov) {
				return
			}
			backoff = 0
		case "quit":
			in.detach(in.quitState())
			p.stop(h.cfg.DrainTimeout)
			h.publish("plugins", "stopped", in.name, in.snapshot())
			return
		}
	}
}

// recordSandbox puts what is enforced on the running process into the
// Plugin's Meta (MetaSandbox), when the server can record it and it
// changed. The write is queued (see metaRecorder): the instance serves
// its actions without waiting for it.
func (in *instance) recordSandbox(enforced string) {
	if _, ok := in.h.deps.Plugins.(PluginMeta); !ok {
		return
	}
	if cur := in.snapshot(); cur != nil && cur.Meta[MetaSandbox] == enforced {
		return
	}
	in.h.meta.record(in.name, enforced)
}

// detach takes the running process out of service before it is stopped.
func (in *instance) detach(state string) {
	in.mu.Lock()
	in.proc, in.enabled, in.state = nil, false, state
	in.mu.Unlock()
	in.h.metrics.up(in.name, false)
}

// clearForRestart forgets old errors when the user changed something.
func (in *instance) clearForRestart() {
	in.mu.Lock()
	in.history, in.stateErrs = nil, nil
	in.mu.Unlock()
}

// watch waits while p runs and says why it must stop.
func (in *instance) watch(p *process, prov *provider, running *models.Plugin) (string, *models.Error) {
	for {
		select {
		case <-p.exited:
			return "crashed", nil
		case <-in.quit:
			return "quit", nil
		case lr := <-in.leave:
			if lr.p == p {
				return "left", lr.reason
			}
		case <-in.wake:
			cur := in.refresh()
			if in.isGone() {
				in.h.dropInstance(in)
				return "quit", nil
			}
			if in.h.provider(running.Provider) != prov || material(cur, running) {
				return "changed", nil
			}
		}
	}
}

// startHealth probes p periodically and kills it after HealthFailures
// consecutive failures; the supervisor then sees the exit and restarts it.
func (in *instance) startHealth(p *process) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(in.h.cfg.HealthInterval)
		defer t.Stop()
		fails := 0
		for {
			select {
			case <-stop:
				return
			case <-p.exited:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := p.probe(ctx)
			cancel()
			if err == nil {
				fails = 0
				continue
			}
			select {
			case <-stop:
				return
			default:
			}
			fails++
			in.log.Warn("plugin health probe failed", "err", err, "failures", fails)
			if fails >= in.h.cfg.HealthFailures {
				p.unhealthy.Store(true)
				_ = killGroup(p.cmd, true)
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}
