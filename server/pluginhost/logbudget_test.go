package pluginhost

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/servertest"
)

// A plugin that logs faster than its budget loses the excess, counted and
// reported once, and gets its lines back as the bucket refills; another
// plugin's budget is its own.
func TestLogBudget(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	drops := map[string]int{}
	b := newLogBudget(clock, func(p string) { drops[p]++ })
	var out servertest.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))

	allowed := 0
	for i := 0; i < 3*logBurst; i++ {
		if b.allow("noisy", log) {
			allowed++
		}
	}
	if allowed != logBurst || drops["noisy"] != 2*logBurst {
		t.Fatalf("allowed %d, dropped %d of %d lines at one instant; want %d and %d", allowed, drops["noisy"], 3*logBurst, logBurst, 2*logBurst)
	}
	if n := strings.Count(out.String(), "exceeds its budget"); n != 1 {
		t.Fatalf("%d budget warnings, want 1:\n%s", n, out.String())
	}
	if !b.allow("quiet", log) {
		t.Fatal("another plugin's line was dropped")
	}
	// One window later the bucket is full again and the streak is reported.
	now = now.Add(logWindow)
	if !b.allow("noisy", log) {
		t.Fatal("no line allowed after the window")
	}
	if !strings.Contains(out.String(), "plugin log lines dropped") || !strings.Contains(out.String(), "lines=2000") {
		t.Fatalf("dropped lines not reported:\n%s", out.String())
	}
	// Sustained rate: logBurst/logWindow lines a second (the first second
	// only tops the nearly full bucket up to logBurst).
	got := 0
	for i := 0; i < 10; i++ {
		now = now.Add(time.Second)
		for b.allow("noisy", log) {
			got++
			if got > 10*logBurst {
				t.Fatal("budget never runs out")
			}
		}
	}
	if want := logBurst + 9*logBurst*int(time.Second)/int(logWindow); got < want-2 || got > want+2 {
		t.Fatalf("%d lines over 10 s at the sustained rate, want about %d", got, want)
	}
}
