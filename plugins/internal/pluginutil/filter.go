package pluginutil

import (
	"fmt"
	"strings"

	"github.com/provisionhq/provision/models"
)

// EventFilter is one parsed websocket event filter "<type>.<action>.<key>"
// (drp-protocol §5.8). A nil part list means "*" (any value).
type EventFilter struct {
	types, actions, keys []string
}

// filterUnescaper undoes the §5.8 escapes inside one list entry.
var filterUnescaper = strings.NewReplacer(`\1`, ".", `\2`, ",", `\3`, "*")

// ParseEventFilter parses a filter string. The string is split on its first
// two dots (so the key may contain dots); each part is "*" or a
// comma-separated list whose entries may use the escapes \1 (.), \2 (,) and
// \3 (*). Empty parts and empty list entries are rejected.
func ParseEventFilter(s string) (EventFilter, error) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return EventFilter{}, fmt.Errorf("event filter %q: want <type>.<action>.<key>, e.g. machines.create.*", s)
	}
	var f EventFilter
	dst := []*[]string{&f.types, &f.actions, &f.keys}
	names := []string{"type", "action", "key"}
	for i, p := range parts {
		if p == "*" {
			continue
		}
		if p == "" {
			return EventFilter{}, fmt.Errorf("event filter %q: empty %s (use * for any)", s, names[i])
		}
		for _, entry := range strings.Split(p, ",") {
			if entry == "" {
				return EventFilter{}, fmt.Errorf("event filter %q: empty entry in %s list", s, names[i])
			}
			*dst[i] = append(*dst[i], filterUnescaper.Replace(entry))
		}
	}
	return f, nil
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

// Match reports whether e's type, action and key all match the filter.
func (f EventFilter) Match(e *models.Event) bool {
	return inList(f.types, e.Type) && inList(f.actions, e.Action) && inList(f.keys, e.Key)
}

// MatchAny reports whether any of fs matches e.
func MatchAny(fs []EventFilter, e *models.Event) bool {
	for _, f := range fs {
		if f.Match(e) {
			return true
		}
	}
	return false
}

func inList(list []string, v string) bool {
	if list == nil {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
