package pluginhost

import (
	"context"
	"fmt"
	"time"
)

// startPublishPump feeds every server event to a HasPublish plugin through
// its own bounded queue. DRP calls /publish synchronously from the event
// path, so one slow plugin slows the whole server; here the bus never
// waits: a full queue drops the event, counts it and notes it in
// PluginErrors (at most every 10 seconds). The returned stop function
// cancels the post in flight and discards what is still queued: draining a
// full queue into a slow plugin could hold up its stop for up to
// PublishQueueLen x PublishTimeout.
func (in *instance) startPublishPump(p *process) func() {
	if !p.prov.def.HasPublish {
		return func() {}
	}
	h := in.h
	sub := h.deps.Bus.Subscribe("plugin:"+in.name, h.cfg.PublishQueueLen, nil)
	pctx, pcancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var seenDrops uint64
		var lastNote time.Time
		failing := false
		for ev := range sub.C() {
			if pctx.Err() != nil || p.life.Err() != nil || p.stopping.Load() {
				continue // discard until Close
			}
			ctx, cancel := context.WithTimeout(pctx, h.cfg.PublishTimeout)
			status, body, err := p.post(ctx, "/publish", ev)
			cancel()
			ok := err == nil && status < 400
			h.metrics.publish(in.name, ok)
			if !ok && !failing {
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					msg = decodeError(status, body, "plugin", "plugins", in.name).Error()
				}
				in.log.Warn("publish to plugin failed", "err", msg)
			}
			failing = !ok
			if d := sub.Dropped(); d > seenDrops {
				h.metrics.drop(in.name, d-seenDrops)
				seenDrops = d
				if time.Since(lastNote) >= 10*time.Second {
					lastNote = time.Now()
					in.addHistory(fmt.Sprintf("%s: publish queue full: %d events dropped so far",
						time.Now().UTC().Format(time.RFC3339), d))
				}
			}
		}
		if d := sub.Dropped(); d > seenDrops {
			h.metrics.drop(in.name, d-seenDrops)
		}
	}()
	return func() {
		pcancel()
		sub.Close()
		<-done
	}
}
