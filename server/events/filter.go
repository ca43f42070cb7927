package events

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/provisionhq/provision/models"
)

// filterUnescaper undoes the §5.8 escapes inside one list entry:
// \1 is ".", \2 is "," and \3 is "*". Any other backslash stays literal.
var filterUnescaper = strings.NewReplacer(`\1`, ".", `\2`, ",", `\3`, "*")

// Filter is one parsed websocket event filter "<type>.<action>.<key>"
// (drp-protocol §5.8). The zero Filter matches nothing; build one with
// ParseFilter.
type Filter struct {
	text                 string
	types, actions, keys []string // nil means "*" (any value)
	valid                bool
}

// ParseFilter parses a DRP event filter. The text is split on its first two
// dots, so the key may itself contain dots ("params.*.a.b" has key "a.b").
// Each part is "*" (any value) or a comma-separated list of exact values in
// which \1 stands for ".", \2 for "," and \3 for "*" (so a literal "*" value
// is written \3). Empty parts and empty list entries are rejected because
// they can never be what the caller meant.
func ParseFilter(s string) (Filter, error) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return Filter{}, fmt.Errorf("event filter %q: want <type>.<action>.<key>, e.g. machines.create,update.*", s)
	}
	f := Filter{text: s, valid: true}
	dst := [3]*[]string{&f.types, &f.actions, &f.keys}
	names := [3]string{"type", "action", "key"}
	for i, p := range parts {
		if p == "*" {
			continue
		}
		if p == "" {
			return Filter{}, fmt.Errorf("event filter %q: empty %s (use * for any)", s, names[i])
		}
		entries := strings.Split(p, ",")
		list := make([]string, 0, len(entries))
		for _, entry := range entries {
			if entry == "" {
				return Filter{}, fmt.Errorf("event filter %q: empty entry in the %s list", s, names[i])
			}
			list = append(list, filterUnescaper.Replace(entry))
		}
		*dst[i] = list
	}
	return f, nil
}

// MustParseFilter is ParseFilter for filters fixed in code; it panics on a
// bad filter.
func MustParseFilter(s string) Filter {
	f, err := ParseFilter(s)
	if err != nil {
		panic(err)
	}
	return f
}

// String returns the filter text as it was given to ParseFilter.
func (f Filter) String() string { return f.text }

// Match reports whether e's Type, Action and Key are each accepted by the
// corresponding part of the filter.
func (f Filter) Match(e *models.Event) bool {
	return f.valid && e != nil && inList(f.types, e.Type) && inList(f.actions, e.Action) && inList(f.keys, e.Key)
}

func inList(list []string, v string) bool {
	return list == nil || slices.Contains(list, v)
}

// FilterSet is a connection's set of registered filters. Registration is
// reference-free, as on DRP's server: registering a filter twice keeps one
// copy and a single Deregister removes it. Filters are identified by their
// text. Match is lock-free (copy-on-write), so it is cheap on the publish
// path while another goroutine registers. The zero FilterSet is empty and
// ready to use; it must not be copied after first use.
type FilterSet struct {
	mu      sync.Mutex // serialises writers
	filters atomic.Pointer[[]Filter]
}

// Register adds f and reports whether it was new (false for a duplicate).
func (s *FilterSet) Register(f Filter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.load()
	if slices.ContainsFunc(cur, func(x Filter) bool { return x.text == f.text }) {
		return false
	}
	next := append(slices.Clip(cur), f)
	s.filters.Store(&next)
	return true
}

// Deregister removes the filter with f's text and reports whether it was
// registered.
func (s *FilterSet) Deregister(f Filter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.load()
	i := slices.IndexFunc(cur, func(x Filter) bool { return x.text == f.text })
	if i < 0 {
		return false
	}
	next := slices.Delete(slices.Clone(cur), i, i+1)
	s.filters.Store(&next)
	return true
}

// Match reports whether any registered filter matches e.
func (s *FilterSet) Match(e *models.Event) bool {
	for _, f := range s.load() {
		if f.Match(e) {
			return true
		}
	}
	return false
}

// Len is the number of registered filters.
func (s *FilterSet) Len() int { return len(s.load()) }

// Filters returns the registered filter texts in registration order.
func (s *FilterSet) Filters() []string {
	cur := s.load()
	out := make([]string, len(cur))
	for i, f := range cur {
		out[i] = f.text
	}
	return out
}

func (s *FilterSet) load() []Filter {
	if p := s.filters.Load(); p != nil {
		return *p
	}
	return nil
}
