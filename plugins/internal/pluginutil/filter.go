package pluginutil

import "github.com/provisionhq/provision/models"

// The §5.8 event filter lives in models (models.EventFilter), shared with
// the server's websocket so plugins and server agree on what a filter
// means. These names stay for the plugins that use them.

// EventFilter is models.EventFilter.
type EventFilter = models.EventFilter

// ParseEventFilter is models.ParseEventFilter.
func ParseEventFilter(s string) (EventFilter, error) { return models.ParseEventFilter(s) }

// ParseEventFilters is models.ParseEventFilters.
func ParseEventFilters(ss []string) ([]EventFilter, error) { return models.ParseEventFilters(ss) }

// MatchAny reports whether any of fs matches e (models.MatchAnyEventFilter).
func MatchAny(fs []EventFilter, e *models.Event) bool { return models.MatchAnyEventFilter(fs, e) }
