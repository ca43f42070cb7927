package plugintest

import (
	"testing"
	"time"
)

func TestPollWaitsForCondition(t *testing.T) {
	calls := 0
	if !poll(DefaultWait, func() bool { calls++; return calls == 3 }) {
		t.Fatal("poll gave up on a condition that came true")
	}
	if calls != 3 {
		t.Fatalf("cond checked %d times, want 3 (stop as soon as it holds)", calls)
	}
	Eventually(t, DefaultWait, "a true condition", func() bool { return true })
}

func TestPollGivesUpAtDeadline(t *testing.T) {
	calls := 0
	if poll(time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("poll reported a condition that never held")
	}
	if calls < 1 {
		t.Fatal("cond never checked")
	}
}
