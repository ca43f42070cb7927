package pluginhost

import (
	"log/slog"
	"sync"
	"time"

	"github.com/provisionhq/provision/server/throttle"
)

// Once a plugin is running, what it logs (stdout and stderr lines, and
// POST /log on its socket) is rate-limited per Plugin name: a token
// bucket of logBurst lines that refills evenly over logWindow (100 lines
// a second sustained). A plugin is untrusted code and could otherwise
// flood the server's log, and the disk behind it, at whatever rate it can
// write. The bucket is kept across restarts, so a crash loop does not
// refill it. Dropped lines are counted (provision_plugin_log_dropped_total)
// and reported in the log once per streak. Start-up output before READY!
// has its own, smaller budget (startupLog).
const (
	logBurst  = 1000
	logWindow = 10 * time.Second
)

// logBudget rate-limits plugin log lines, one bucket per Plugin name.
type logBudget struct {
	t       *throttle.Throttle
	onDrop  func(plugin string)
	mu      sync.Mutex
	dropped map[string]int // lines dropped in the current streak
}

// newLogBudget returns a budget with clock now (nil: time.Now); onDrop
// (may be nil) counts each dropped line.
func newLogBudget(now func() time.Time, onDrop func(plugin string)) *logBudget {
	return &logBudget{t: throttle.New(logBurst, logWindow, now), onDrop: onDrop, dropped: map[string]int{}}
}

// allow reports whether one more line of plugin may be logged. The first
// line dropped in a streak logs a warning; the first line allowed after a
// streak logs how many were dropped.
func (b *logBudget) allow(plugin string, log *slog.Logger) bool {
	blocked, _ := b.t.Take(plugin)
	b.mu.Lock()
	defer b.mu.Unlock()
	if blocked != "" {
		if b.dropped[plugin] == 0 {
			log.Warn("plugin log exceeds its budget; dropping lines until it slows down",
				"burst", logBurst, "window", logWindow.String())
		}
		b.dropped[plugin]++
		if b.onDrop != nil {
			b.onDrop(plugin)
		}
		return false
	}
	if n := b.dropped[plugin]; n > 0 {
		delete(b.dropped, plugin)
		log.Warn("plugin log lines dropped", "lines", n)
	}
	return true
}
