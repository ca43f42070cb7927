package pluginsdk

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// lockedBuf is a concurrency-safe writer for the fallback stream.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogLineFields(t *testing.T) {
	var fb lockedBuf
	s := newLogSink("svc", &fb)
	got := make(chan *models.LogLine, 10)
	s.start(func(ctx context.Context, l *models.LogLine) error { got <- l; return nil }, 10, time.Second)
	l := s.logger(slog.LevelDebug, 7).With("plugin", "p1").WithGroup("g")
	l.Info("hello world", "n", 3)
	l.Log(context.Background(), LevelTrace, "hidden at debug level")
	NoRepublish(l).Warn("quiet")
	s.close(context.Background())

	first := <-got
	if first.Service != "svc" || first.Group != 7 || first.Level != "info" || first.Message != "hello world plugin=p1 g.n=3" ||
		!strings.HasSuffix(first.File, "log_test.go") || first.Line == 0 || first.IgnorePublish || first.Time.IsZero() || first.Data == nil {
		t.Errorf("line: %+v", first)
	}
	second := <-got
	if second.Level != "warn" || !second.IgnorePublish || second.Seq <= first.Seq {
		t.Errorf("no-republish line: %+v", second)
	}
	select {
	case l := <-got:
		t.Errorf("line below the level shipped: %+v", l)
	default:
	}
	if fb.String() != "" {
		t.Errorf("fallback used: %q", fb.String())
	}
}

func TestLogBeforeHostGoesToStderr(t *testing.T) {
	var fb lockedBuf
	s := newLogSink("svc", &fb)
	s.logger(slog.LevelDebug, 0).Error("early", "k", "v")
	if got := fb.String(); got != "local log: error: early k=v\n" {
		t.Errorf("fallback: %q", got)
	}
}

func TestLogNeverBlocks(t *testing.T) {
	var fb lockedBuf
	s := newLogSink("svc", &fb)
	release := make(chan struct{})
	var calls sync.WaitGroup
	calls.Add(1)
	first := true
	var mu sync.Mutex
	s.start(func(ctx context.Context, l *models.LogLine) error {
		mu.Lock()
		if first {
			first = false
			calls.Done()
		}
		mu.Unlock()
		<-release // the host hangs
		return nil
	}, 2, time.Minute)
	l := s.logger(slog.LevelDebug, 0)
	l.Info("taken by the shipper")
	calls.Wait()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			l.Info("line")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("logging blocked on a stuck host")
	}
	if n := s.dropped.Load(); n != 98 {
		t.Errorf("dropped %d lines, want 98 (queue of 2)", n)
	}
	if !strings.Contains(fb.String(), "log queue full") {
		t.Errorf("drops not reported: %q", fb.String())
	}
	close(release)
	s.close(context.Background())
}

func TestLogPostTimeout(t *testing.T) {
	var fb lockedBuf
	s := newLogSink("svc", &fb)
	s.start(func(ctx context.Context, l *models.LogLine) error {
		<-ctx.Done() // a host that never answers
		return ctx.Err()
	}, 4, 10*time.Millisecond)
	s.logger(slog.LevelDebug, 0).Info("lost")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.close(ctx)
	if ctx.Err() != nil {
		t.Fatal("shipper did not give up on the POST")
	}
	if !strings.Contains(fb.String(), "failed to ship log line to host: context deadline exceeded: lost") {
		t.Errorf("fallback: %q", fb.String())
	}
}

func TestParseLevel(t *testing.T) {
	for s, want := range map[string]slog.Level{"trace": LevelTrace, "DEBUG": slog.LevelDebug, "info": slog.LevelInfo,
		"warn": slog.LevelWarn, "error": slog.LevelError, "fatal": slog.LevelError, "panic": slog.LevelError, "audit": slog.LevelError} {
		if got, err := ParseLevel(s); err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
		if s != "fatal" && s != "panic" && s != "audit" && models.LogLevelText(want) != strings.ToLower(s) {
			t.Errorf("LevelText(%v) = %s", want, models.LogLevelText(want))
		}
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("unknown level accepted")
	}
}
