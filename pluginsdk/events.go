package pluginsdk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
)

// eventFeed is the websocket subscription of an EventSelector plugin and
// the goroutine that hands its events to Publish one at a time.
type eventFeed struct {
	stream *client.EventStream
	cancel context.CancelFunc
	done   chan struct{}
}

// startEvents replaces any previous stream with a new one registered for
// the plugin's SelectEvents filters. The client's stream reconnects and
// re-registers on its own, so unlike DRP's library a dropped websocket
// does not end event delivery until the next /config.
func (s *server) startEvents(c *client.Client, sel EventSelector, pub Publisher, l *slog.Logger) *models.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopEventsLocked()

	ctx, cancel := context.WithCancel(s.base)
	stream, err := c.Events(ctx)
	if err != nil {
		cancel()
		return models.NewError("plugins", http.StatusInternalServerError, "Unable to create event stream: %v", err)
	}
	filters := sel.SelectEvents(ctx, l)
	if len(filters) > 0 {
		rctx, rcancel := context.WithTimeout(ctx, registerTimeout)
		err = stream.Register(rctx, filters...)
		rcancel()
		if err != nil {
			_ = stream.Close()
			cancel()
			return models.NewError("plugins", http.StatusInternalServerError, "Unable to register for machine events: %v", err)
		}
	} else {
		l.Warn("SelectEvents returned no filters; no events will be delivered")
	}
	f := &eventFeed{stream: stream, cancel: cancel, done: make(chan struct{})}
	el := NoRepublish(s.app.sink.logger(&s.app.logLevel, s.app.sink.nextGroup()))
	go f.run(ctx, pub, el)
	s.stream = f
	l.Info("event stream registered", "filters", filters)
	return nil
}

func (f *eventFeed) run(ctx context.Context, pub Publisher, l *slog.Logger) {
	defer close(f.done)
	for ev := range f.stream.C() {
		if ctx.Err() != nil {
			return
		}
		publishOne(ctx, pub, l, ev)
	}
}

// publishOne delivers one event; errors and panics are logged, never fatal.
func publishOne(ctx context.Context, pub Publisher, l *slog.Logger, ev models.Event) {
	defer func() {
		if p := recover(); p != nil {
			l.Error("Publish panicked", "type", ev.Type, "action", ev.Action, "key", ev.Key, "panic", fmt.Sprint(p))
		}
	}()
	if merr := pub.Publish(ctx, l, &ev); merr != nil {
		l.Error("Error processing event", "type", ev.Type, "action", ev.Action, "key", ev.Key, "error", merr.Error())
	}
}

func (s *server) stopEvents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopEventsLocked()
}

func (s *server) stopEventsLocked() {
	f := s.stream
	if f == nil {
		return
	}
	s.stream = nil
	_ = f.stream.Close()
	f.cancel()
	// Wait for an in-flight Publish, but never forever.
	select {
	case <-f.done:
	case <-time.After(streamStopWait):
	}
}
