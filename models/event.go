package models

import (
	"encoding/json"
	"time"
)

// Event is one change or notification on the event bus and websocket.
type Event struct {
	// Time is when it happened.
	Time time.Time
	// Type is the object prefix or a free-form type ("websocket", ...).
	Type string
	// Action is "create", "save", "update", "delete" or custom.
	Action string
	// Key is the object key.
	Key string
	// Principal is the user or subsystem that caused it.
	Principal string
	// Object is the object after the operation.
	Object any
	// Original is the object before the operation (update and save).
	Original any `json:",omitempty"`
}

// Text formats an event for humans, as DRP's Event.Text does.
func (e *Event) Text() string {
	buf, _ := json.MarshalIndent(e.Object, "", "  ")
	return e.Time.Format(time.RFC3339) + ": " + e.Type + " " + e.Action + " " + e.Key + " " + e.Principal + "\n" + string(buf) + "\n"
}

// ObjectAs decodes the event's Object into dst.
func (e *Event) ObjectAs(dst any) error { return Remarshal(e.Object, dst) }
