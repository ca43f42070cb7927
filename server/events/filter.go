package events

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/provisionhq/provision/models"
)

// FilterSet is a connection's set of registered filters (parsed with
// models.ParseEventFilter, the one §5.8 filter implementation). Registration is
// reference-free, as on DRP's server: registering a filter twice keeps one
// copy and a single Deregister removes it. Filters are identified by their
// text. Match is lock-free (copy-on-write), so it is cheap on the publish
// path while another goroutine registers. The zero FilterSet is empty and
// ready to use; it must not be copied after first use.
type FilterSet struct {
	mu      sync.Mutex // serialises writers
	filters atomic.Pointer[[]models.EventFilter]
}

// Register adds f and reports whether it was new (false for a duplicate).
func (s *FilterSet) Register(f models.EventFilter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.load()
	if slices.ContainsFunc(cur, func(x models.EventFilter) bool { return x.String() == f.String() }) {
		return false
	}
	next := append(slices.Clip(cur), f)
	s.filters.Store(&next)
	return true
}

// Deregister removes the filter with f's text and reports whether it was
// registered.
func (s *FilterSet) Deregister(f models.EventFilter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.load()
	i := slices.IndexFunc(cur, func(x models.EventFilter) bool { return x.String() == f.String() })
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
		out[i] = f.String()
	}
	return out
}

func (s *FilterSet) load() []models.EventFilter {
	if p := s.filters.Load(); p != nil {
		return *p
	}
	return nil
}
