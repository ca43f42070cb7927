package logbuf

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/provisionhq/provision/models"
)

func messages(lines []models.LogLine) []string {
	out := []string{}
	for _, l := range lines {
		out = append(out, l.Message)
	}
	return out
}

func TestRingKeepsTheLastLinesOldestFirst(t *testing.T) {
	r := NewRing(3)
	if got := r.Lines(); got == nil || len(got) != 0 {
		t.Fatalf("empty ring: %#v", got)
	}
	for i := 1; i <= 2; i++ {
		r.Add(models.LogLine{Message: fmt.Sprint(i)})
	}
	if got := strings.Join(messages(r.Lines()), ","); got != "1,2" {
		t.Fatalf("before wrapping: %s", got)
	}
	for i := 3; i <= 7; i++ {
		r.Add(models.LogLine{Message: fmt.Sprint(i)})
	}
	lines := r.Lines()
	if got := strings.Join(messages(lines), ","); got != "5,6,7" {
		t.Fatalf("after wrapping: %s", got)
	}
	if lines[0].Seq != 5 || lines[2].Seq != 7 {
		t.Fatalf("Seq numbers: %d..%d, want 5..7", lines[0].Seq, lines[2].Seq)
	}
	// The copy is the caller's.
	lines[0].Message = "changed"
	if r.Lines()[0].Message != "5" {
		t.Fatal("Lines shares memory with the ring")
	}
	off := NewRing(0)
	off.Add(models.LogLine{Message: "x"})
	if got := off.Lines(); got == nil || len(got) != 0 || off.Cap() != 0 {
		t.Fatalf("disabled ring: %#v", got)
	}
}

func TestRingConcurrentUse(t *testing.T) {
	r := NewRing(50)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r.Add(models.LogLine{Message: "m"})
				_ = r.Lines()
			}
		}()
	}
	wg.Wait()
	lines := r.Lines()
	if len(lines) != 50 || lines[49].Seq != 1600 {
		t.Fatalf("%d lines, last Seq %d; want 50 and 1600", len(lines), lines[len(lines)-1].Seq)
	}
}

func newLogger(level slog.Level) (*slog.Logger, *Ring, *bytes.Buffer) {
	var out bytes.Buffer
	ring := NewRing(100)
	return slog.New(NewHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}), ring)), ring, &out
}

func TestHandlerConvertsRecordsToDRPLines(t *testing.T) {
	log, ring, out := newLogger(slog.LevelInfo)
	log.Debug("not shown")
	log.Info("provisiond serving", "api", "https://127.0.0.1:8092")
	api := log.With("component", "api")
	api.Warn("request", "method", "GET", "path", "/api/v3/x", "status", 404, "principal", "rocketskates")
	host := log.With("component", "pluginhost", "plugin", "incr")
	host.Error("configured", "service", "incrementer", "source", "/src/incr/main.go:42", "note", "two words")
	host.Info("plugin configured", "pid", 7)
	log.WithGroup("g").With("a", 1).Info("grouped", slog.Group("h", "b", 2))

	lines := ring.Lines()
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5 (the debug record is below the log level): %+v", len(lines), lines)
	}
	want := []struct{ service, level, principal, message string }{
		{"provisiond", "info", "", "provisiond serving api=https://127.0.0.1:8092"},
		{"api", "warn", "rocketskates", "request method=GET path=/api/v3/x status=404"},
		{"incrementer", "error", "", `configured component=pluginhost plugin=incr note="two words"`},
		{"incr", "info", "", "plugin configured component=pluginhost pid=7"},
		{"provisiond", "info", "", "grouped g.a=1 g.h.b=2"},
	}
	for i, w := range want {
		l := lines[i]
		if l.Service != w.service || l.Level != w.level || l.Principal != w.principal || l.Message != w.message || l.Data == nil || l.Time.IsZero() {
			t.Errorf("line %d = %+v\nwant Service %q Level %q Principal %q Message %q", i, l, w.service, w.level, w.principal, w.message)
		}
	}
	if lines[2].File != "/src/incr/main.go" || lines[2].Line != 42 {
		t.Errorf("source attr: %s:%d", lines[2].File, lines[2].Line)
	}
	if !strings.HasSuffix(lines[0].File, "logbuf_test.go") || lines[0].Line == 0 {
		t.Errorf("caller location: %s:%d", lines[0].File, lines[0].Line)
	}
	// The real log got every record too, with its attributes intact.
	for _, s := range []string{"provisiond serving", "component=api", `service=incrementer`, "g.h.b=2"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("inner log lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out.String(), "not shown") {
		t.Error("inner log shows a record below its level")
	}
}
