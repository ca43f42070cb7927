package pluginhost

import (
	"context"
	"sync"
	"time"
)

// metaRecorder writes what the host records in Plugin objects' Meta (the
// enforced sandbox, MetaSandbox) off the supervisors' path: one goroutine
// writes one plugin at a time, and a plugin whose value changes again
// before it is written is written once, with its latest value.
//
// Every write is a durable, serialised store transaction. When many
// instances start at once (provisiond's start, or many Plugin objects
// created together) each writing its Meta before going on would queue as
// many writes as instances in front of the API's own writes (the creates
// of the next instances) and delay each instance's "configed" event by the
// queue. A single writer keeps at most one such write in that queue, and
// instances answer actions as soon as they are configured.
type metaRecorder struct {
	h *Host

	mu      sync.Mutex
	pending map[string]string // plugin name → value to record
	order   []string          // plugin names in the order first queued
	started bool
	kick    chan struct{}
}

func newMetaRecorder(h *Host) *metaRecorder {
	return &metaRecorder{h: h, pending: map[string]string{}, kick: make(chan struct{}, 1)}
}

// record queues Meta[MetaSandbox] = value for the plugin name.
func (r *metaRecorder) record(name, value string) {
	r.mu.Lock()
	if _, queued := r.pending[name]; !queued {
		r.order = append(r.order, name)
	}
	r.pending[name] = value
	start := !r.started
	r.started = true
	r.mu.Unlock()
	if start {
		// Started on first use: a Host that never runs an instance
		// has no goroutine to stop.
		r.h.wg.Add(1)
		go func() {
			defer r.h.wg.Done()
			r.run()
		}()
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// next takes the oldest queued write.
func (r *metaRecorder) next() (name, value string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) == 0 {
		return "", "", false
	}
	name = r.order[0]
	r.order = r.order[1:]
	value = r.pending[name]
	delete(r.pending, name)
	return name, value, true
}

// run writes queued values until the host's context ends.
func (r *metaRecorder) run() {
	for {
		select {
		case <-r.h.ctx.Done():
			return
		case <-r.kick:
		}
		for {
			name, value, ok := r.next()
			if !ok {
				break
			}
			r.write(name, value)
			if r.h.ctx.Err() != nil {
				return
			}
		}
	}
}

// write records value on the plugin name unless the instance is gone or
// its object already holds it.
func (r *metaRecorder) write(name, value string) {
	pm, ok := r.h.deps.Plugins.(PluginMeta)
	if !ok {
		return
	}
	in := r.h.instance(name)
	if in == nil {
		return // deleted meanwhile
	}
	if cur := in.snapshot(); cur != nil && cur.Meta[MetaSandbox] == value {
		return
	}
	ctx, cancel := context.WithTimeout(r.h.ctx, 10*time.Second)
	defer cancel()
	if err := pm.SetPluginMeta(ctx, name, MetaSandbox, value); err != nil {
		in.log.Error("record plugin sandbox in Meta", "err", err)
	}
}
