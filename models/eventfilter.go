package models

import (
	"fmt"
	"slices"
	"strings"
)

// eventFilterUnescaper undoes the §5.8 escapes inside one list entry:
// \1 is ".", \2 is "," and \3 is "*". Any other backslash stays literal.
var eventFilterUnescaper = strings.NewReplacer(`\1`, ".", `\2`, ",", `\3`, "*")

// EventFilter is one parsed websocket event filter
// "<type>.<action>.<key>" (drp-protocol §5.8), shared by the server's
// websocket and the plugins that filter events themselves so both agree
// on what a filter means. The zero EventFilter matches nothing; build one
// with ParseEventFilter.
type EventFilter struct {
	text                 string
	types, actions, keys []string // nil means "*" (any value)
	valid                bool
}

// ParseEventFilter parses a DRP event filter. The text is split on its
// first two dots, so the key may itself contain dots ("params.*.a.b" has
// key "a.b"). Each part is "*" (any value) or a comma-separated list of
// exact values in which \1 stands for ".", \2 for "," and \3 for "*" (so a
// literal "*" value is written \3). Empty parts and empty list entries are
// rejected because they can never be what the caller meant.
func ParseEventFilter(s string) (EventFilter, error) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return EventFilter{}, fmt.Errorf("event filter %q: want <type>.<action>.<key>, e.g. machines.create,update.*", s)
	}
	f := EventFilter{text: s, valid: true}
	dst := [3]*[]string{&f.types, &f.actions, &f.keys}
	names := [3]string{"type", "action", "key"}
	for i, p := range parts {
		if p == "*" {
			continue
		}
		if p == "" {
			return EventFilter{}, fmt.Errorf("event filter %q: empty %s (use * for any)", s, names[i])
		}
		entries := strings.Split(p, ",")
		list := make([]string, 0, len(entries))
		for _, entry := range entries {
			if entry == "" {
				return EventFilter{}, fmt.Errorf("event filter %q: empty entry in the %s list", s, names[i])
			}
			list = append(list, eventFilterUnescaper.Replace(entry))
		}
		*dst[i] = list
	}
	return f, nil
}

// MustParseEventFilter is ParseEventFilter for filters fixed in code; it
// panics on a bad filter.
func MustParseEventFilter(s string) EventFilter {
	f, err := ParseEventFilter(s)
	if err != nil {
		panic(err)
	}
	return f
}

// ParseEventFilters parses every filter, failing on the first bad one.
func ParseEventFilters(ss []string) ([]EventFilter, error) {
	out := make([]EventFilter, 0, len(ss))
	for _, s := range ss {
		f, err := ParseEventFilter(s)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// String returns the filter text as it was given to ParseEventFilter.
func (f EventFilter) String() string { return f.text }

// Match reports whether e's Type, Action and Key are each accepted by the
// corresponding part of the filter.
func (f EventFilter) Match(e *Event) bool {
	return f.valid && e != nil && inFilterList(f.types, e.Type) && inFilterList(f.actions, e.Action) && inFilterList(f.keys, e.Key)
}

// MatchAnyEventFilter reports whether any of fs matches e.
func MatchAnyEventFilter(fs []EventFilter, e *Event) bool {
	for _, f := range fs {
		if f.Match(e) {
			return true
		}
	}
	return false
}

func inFilterList(list []string, v string) bool {
	return list == nil || slices.Contains(list, v)
}
