package models_test

import (
	"testing"

	"github.com/provisionhq/provision/models"
)

func ev(typ, action, key string) *models.Event {
	return &models.Event{Type: typ, Action: action, Key: key}
}

func TestParseEventFilterErrors(t *testing.T) {
	for _, s := range []string{
		"", "machines", "machines.create", "*.*", ".create.x", "machines..x", "machines.create.",
		"machines,.create.x", "machines.create,,update.x", "machines.create.a,",
	} {
		if f, err := models.ParseEventFilter(s); err == nil {
			t.Errorf("models.ParseEventFilter(%q) = %v, want error", s, f)
		} else if f.Match(ev("machines", "create", "x")) {
			t.Errorf("failed models.ParseEventFilter(%q) returned a matching filter", s)
		}
	}
	var zero models.EventFilter
	if zero.Match(ev("a", "b", "c")) {
		t.Error("zero Filter matched")
	}
}

func TestEventFilterMatch(t *testing.T) {
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
		f, err := models.ParseEventFilter(c.filter)
		if err != nil {
			t.Errorf("models.ParseEventFilter(%q): %v", c.filter, err)
			continue
		}
		if got := f.Match(c.event); got != c.want {
			t.Errorf("%q.Match(%s.%s.%s) = %v, want %v", c.filter, c.event.Type, c.event.Action, c.event.Key, got, c.want)
		}
		if f.String() != c.filter {
			t.Errorf("String() = %q, want %q", f.String(), c.filter)
		}
	}
	if models.MustParseEventFilter("*.*.*").Match(nil) {
		t.Error("matched a nil event")
	}
}

func TestMustParseEventFilterPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParseEventFilter accepted a bad filter")
		}
	}()
	models.MustParseEventFilter("bad")
}

func TestEventFilterListsAndMatchAny(t *testing.T) {
	cases := []struct {
		filter string
		e      *models.Event
		want   bool
	}{
		{"machines.create.*", ev("machines", "create", "abc"), true},
		{"machines.create.*", ev("machines", "delete", "abc"), false},
		{"machines.create,update.*", ev("machines", "update", "abc"), true},
		{"*.*.*", ev("anything", "x", "y"), true},
		{`params.*.incrementer\1step`, ev("params", "save", "incrementer.step"), true},
		{`params.*.incrementer\1step`, ev("params", "save", "incrementer/step"), false},
		{"profiles.save.a.b.c", ev("profiles", "save", "a.b.c"), true},
		{`x.a\2b.*`, ev("x", "a,b", "k"), true},
	}
	for _, c := range cases {
		f, err := models.ParseEventFilter(c.filter)
		if err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		if got := f.Match(c.e); got != c.want {
			t.Errorf("%s on %+v: got %v want %v", c.filter, *c.e, got, c.want)
		}
	}
	for _, bad := range []string{"machines", "machines.create", "machines..*", ".create.*", "machines.create,.*"} {
		if _, err := models.ParseEventFilter(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	fs, err := models.ParseEventFilters([]string{"machines.create.*", "plugins.stopped.*"})
	if err != nil {
		t.Fatal(err)
	}
	if !models.MatchAnyEventFilter(fs, ev("plugins", "stopped", "p1")) || models.MatchAnyEventFilter(fs, ev("plugins", "create", "p1")) {
		t.Fatal("MatchAny wrong")
	}
}
