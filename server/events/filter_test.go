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

func TestParseFilterErrors(t *testing.T) {
	for _, s := range []string{
		"", "machines", "machines.create", "*.*", ".create.x", "machines..x", "machines.create.",
		"machines,.create.x", "machines.create,,update.x", "machines.create.a,",
	} {
		if f, err := ParseFilter(s); err == nil {
			t.Errorf("ParseFilter(%q) = %v, want error", s, f)
		} else if f.Match(ev("machines", "create", "x")) {
			t.Errorf("failed ParseFilter(%q) returned a matching filter", s)
		}
	}
	var zero Filter
	if zero.Match(ev("a", "b", "c")) {
		t.Error("zero Filter matched")
	}
}

func TestFilterMatch(t *testing.T) {
	cases := []struct {
		filter string
		event  *models.Event
		want   bool
	}{
		{"*.*.*", ev("machines", "create", "m1"), true},
		{"*.*.*", ev("", "", ""), true},
		{"machines.*.*", ev("machines", "save", "x"), true},
		{"machines.*.*", ev("profiles", "save", "x"), false},
		{"machines.*.*", ev("machine", "save", "x"), false},
		{"machines.create.*", ev("machines", "update", "x"), false},
		// comma lists in every part
		{"machines.create,update.*", ev("machines", "create", "m"), true},
		{"machines.create,update.*", ev("machines", "update", "m"), true},
		{"machines.create,update.*", ev("machines", "delete", "m"), false},
		{"machines,profiles.save.*", ev("profiles", "save", "p"), true},
		{"*.*.a,b", ev("x", "y", "b"), true},
		{"*.*.a,b", ev("x", "y", "a,b"), false},
		// key split on the first two dots only: key may contain dots
		{"params.*.incrementer.step", ev("params", "create", "incrementer.step"), true},
		{"params.*.incrementer.step", ev("params", "create", "incrementer"), false},
		{"a.b.c.d.e", ev("a", "b", "c.d.e"), true},
		// escapes
		{`params.*.incrementer\1step`, ev("params", "save", "incrementer.step"), true},
		{`params.*.incrementer\1step`, ev("params", "save", `incrementer\1step`), false},
		{`my\1type.*.*`, ev("my.type", "x", "k"), true},
		{`*.*.a\2b`, ev("t", "a", "a,b"), true},
		{`*.*.a\2b`, ev("t", "a", "a"), false},
		{`*.*.a\2b,c`, ev("t", "a", "c"), true},
		{`*.*.\3`, ev("t", "a", "*"), true},
		{`*.*.\3`, ev("t", "a", "anything"), false},
		{`\3.*.*`, ev("*", "a", "k"), true},
		{`\3.*.*`, ev("machines", "a", "k"), false},
		// "*" is a wildcard only as a whole part; inside a list it is literal
		{"*.create,*.*", ev("t", "update", "k"), false},
		{"*.create,*.*", ev("t", "*", "k"), true},
		// unknown escapes stay literal
		{`*.*.a\4b`, ev("t", "x", `a\4b`), true},
		// exact matching: no prefixes, case-sensitive
		{"machines.create.m", ev("machines", "create", "m1"), false},
		{"Machines.*.*", ev("machines", "create", "m"), false},
		{"websocket.*.*", ev("websocket", "register", "machines.*.*"), true},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", c.filter, err)
			continue
		}
		if got := f.Match(c.event); got != c.want {
			t.Errorf("%q.Match(%s.%s.%s) = %v, want %v", c.filter, c.event.Type, c.event.Action, c.event.Key, got, c.want)
		}
		if f.String() != c.filter {
			t.Errorf("String() = %q, want %q", f.String(), c.filter)
		}
	}
	if MustParseFilter("*.*.*").Match(nil) {
		t.Error("matched a nil event")
	}
}

func TestMustParseFilterPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParseFilter accepted a bad filter")
		}
	}()
	MustParseFilter("bad")
}

func TestFilterSetReferenceFree(t *testing.T) {
	var s FilterSet
	m := ev("machines", "create", "m1")
	if s.Match(m) || s.Len() != 0 {
		t.Fatal("empty set matched")
	}
	a := MustParseFilter("machines.*.*")
	b := MustParseFilter("profiles.*.*")
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
				f := MustParseFilter(fmt.Sprintf("t%d.*.*", j%10))
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
