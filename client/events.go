package client

import (
	"context"

	"github.com/provisionhq/provision/models"
)

// EventStream is a websocket subscription to /api/v3/ws that reconnects
// with backoff and re-registers its filters after a reconnect.
type EventStream struct{}

// Events opens an event stream. It stays open until ctx ends or Close.
func (c *Client) Events(ctx context.Context) (*EventStream, error) { return nil, errUnimplemented }

// Register adds filters (type.action.key, §5.8 syntax) and waits for the
// server's acknowledgements.
func (s *EventStream) Register(ctx context.Context, filters ...string) error { return errUnimplemented }

// Deregister removes filters.
func (s *EventStream) Deregister(ctx context.Context, filters ...string) error {
	return errUnimplemented
}

// C delivers received events. It is closed when the stream is closed.
func (s *EventStream) C() <-chan models.Event { return nil }

// Close ends the stream.
func (s *EventStream) Close() error { return nil }
