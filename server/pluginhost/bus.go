package pluginhost

import (
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/events"
)

// BusFrom adapts the server's event bus to the host's Bus interface.
func BusFrom(b *events.Bus) Bus { return eventsBus{b} }

type eventsBus struct{ b *events.Bus }

// Publish implements Bus.
func (e eventsBus) Publish(ev models.Event) { e.b.Publish(ev) }

// Subscribe implements Bus.
func (e eventsBus) Subscribe(name string, queueLen int, match func(*models.Event) bool) Subscription {
	return e.b.Subscribe(name, queueLen, match)
}
