package events

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/provisionhq/provision/models"
)

func ev(typ, action, key string) *models.Event {
	return &models.Event{Type: typ, Action: action, Key: key}
}

func TestFilterSetReferenceFree(t *testing.T) {
	var s FilterSet
	m := ev("machines", "create", "m1")
	if s.Match(m) || s.Len() != 0 {
		t.Fatal("empty set matched")
	}
	a := models.MustParseEventFilter("machines.*.*")
	b := models.MustParseEventFilter("profiles.*.*")
	if !s.Register(a) || s.Register(a) {
		t.Fatal("first register should be new, duplicate should not")
	}
	if !s.Register(b) {
		t.Fatal("register b")
	}
	if s.Len() != 2 || !slices.Equal(s.Filters(), []string{"machines.*.*", "profiles.*.*"}) {
		t.Fatalf("filters = %v", s.Filters())
	}
	if !s.Match(m) || !s.Match(ev("profiles", "x", "y")) || s.Match(ev("users", "x", "y")) {
		t.Fatal("match after register")
	}
	// Registered twice, deregistered once: gone (no reference counting).
	if !s.Deregister(a) {
		t.Fatal("deregister a")
	}
	if s.Match(m) {
		t.Fatal("still matching after a single deregister")
	}
	if s.Deregister(a) {
		t.Fatal("second deregister reported removal")
	}
	if !s.Match(ev("profiles", "x", "y")) || s.Len() != 1 {
		t.Fatal("b lost")
	}
}

func TestFilterSetConcurrent(t *testing.T) {
	var s FilterSet
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				f := models.MustParseEventFilter(fmt.Sprintf("t%d.*.*", j%10))
				s.Register(f)
				s.Deregister(f)
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				s.Match(ev(fmt.Sprintf("t%d", j%10), "a", "k"))
			}
		}()
	}
	wg.Wait()
	if s.Len() != 0 {
		t.Fatalf("left %v", s.Filters())
	}
}
