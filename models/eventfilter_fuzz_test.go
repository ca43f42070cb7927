package models

import (
	"strings"
	"testing"
)

// FuzzParseEventFilter feeds arbitrary text to the websocket filter
// parser (what any logged-in client, or a plugin's SelectEvents, can
// send). It must never panic, must round-trip the text it accepted, and an
// accepted filter must match the event made of its own first entries:
// otherwise a subscriber would be acknowledged for a filter that can never
// deliver anything.
func FuzzParseEventFilter(f *testing.F) {
	for _, s := range []string{
		"*.*.*", "machines.create,update.*", "params.*.a.b", `machines.save.\1\2\3`,
		"", ".", "..", "a..", "*.,.*", "a.b.c,", `\`, "machines.*.x,,y",
		strings.Repeat("a,", 1000) + "a.b.c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ef, err := ParseEventFilter(s)
		if err != nil {
			if ef.Match(&Event{Type: "x", Action: "x", Key: "x"}) {
				t.Fatalf("a rejected filter %q matches", s)
			}
			return
		}
		if ef.String() != s {
			t.Fatalf("String() = %q, want %q", ef.String(), s)
		}
		again, err := ParseEventFilter(ef.String())
		if err != nil || again.String() != s {
			t.Fatalf("re-parse of %q: %v", s, err)
		}
		pick := func(list []string) string {
			if list == nil {
				return "anything"
			}
			return list[0]
		}
		e := &Event{Type: pick(ef.types), Action: pick(ef.actions), Key: pick(ef.keys)}
		if !ef.Match(e) {
			t.Fatalf("filter %q does not match its own entries %+v", s, e)
		}
		if ef.Match(nil) {
			t.Fatalf("filter %q matches a nil event", s)
		}
	})
}
