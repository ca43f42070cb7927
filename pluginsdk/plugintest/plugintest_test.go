package plugintest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStdoutCompleteAfterExit runs a provider that prints READY!, many
// lines and a last line, then exits: everything it printed must be in
// Stdout once Wait returns (the last lines are the ones a Wait racing the
// stdout reader loses).
func TestStdoutCompleteAfterExit(t *testing.T) {
	const lines = 2000
	script := filepath.Join(t.TempDir(), "provider")
	body := fmt.Sprintf("#!/bin/sh\necho READY!\ni=0\nwhile [ $i -lt %d ]; do echo line$i; i=$((i+1)); done\necho Failed\n", lines)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	pl := FromBinary(script).Start(t)
	if err := pl.Wait(DefaultWait); err != nil {
		t.Fatal(err)
	}
	out := pl.Stdout()
	if got := strings.Count(out, "\n"); got != lines+2 || !strings.HasPrefix(out, "READY!\n") || !strings.HasSuffix(out, fmt.Sprintf("line%d\nFailed\n", lines-1)) {
		t.Errorf("stdout after exit has %d lines, want %d ending in Failed; tail %q", got, lines+2, out[max(0, len(out)-40):])
	}
}

// TestStdoutLongLine checks that a line longer than any scanner buffer
// neither blocks the plugin nor drops what follows it.
func TestStdoutLongLine(t *testing.T) {
	script := filepath.Join(t.TempDir(), "provider")
	body := "#!/bin/sh\necho READY!\nhead -c 200000 /dev/zero | tr '\\0' x\necho\necho after\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	pl := FromBinary(script).Start(t)
	if err := pl.Wait(DefaultWait); err != nil {
		t.Fatal(err)
	}
	if out := pl.Stdout(); len(out) != len("READY!\n")+200001+len("after\n") || !strings.HasSuffix(out, "x\nafter\n") {
		t.Errorf("stdout: %d bytes, tail %q", len(out), out[max(0, len(out)-20):])
	}
}

// recordingTB captures Errorf so a test can check what a helper reports.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestAwaitExitReportsHang(t *testing.T) {
	pl := newPlugin(t, "unused", nil)
	pl.exitWait = 1 // the plugin never exits: give up at once
	pl.stderr.WriteString("plugin's last words")
	rec := &recordingTB{TB: t}
	pl.awaitExit(rec)
	if len(rec.errs) != 1 {
		t.Fatalf("a plugin that never exits reported %d errors, want 1", len(rec.errs))
	}
	msg := rec.errs[0]
	for _, want := range []string{"still running", "plugin's last words", "goroutine ", "TestAwaitExitReportsHang"} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}

	close(pl.exited)
	pl.exitWait = DefaultWait
	rec = &recordingTB{TB: t}
	pl.awaitExit(rec)
	if len(rec.errs) != 0 {
		t.Errorf("an exited plugin reported %v", rec.errs)
	}
}

// TestDoBoundsRequestWithoutDeadline checks that a stuck handler fails a
// request without a deadline instead of hanging the test, and that a
// caller's own deadline replaces the default bound.
func TestDoBoundsRequestWithoutDeadline(t *testing.T) {
	sock := filepath.Join(SocketDir(t), "p.toPlugin.2")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { close(release); srv.Close() })
	pl := newPlugin(t, sock, nil)
	defer pl.close()

	pl.reqWait = 100 * time.Millisecond
	if res, err := pl.Request(context.Background(), "POST", "/stuck", "", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stuck handler without a deadline: %v %v, want context.DeadlineExceeded", res, err)
	}

	pl.reqWait = 1 // a request relying on it could not even connect
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWait)
	defer cancel()
	if res, err := pl.Request(ctx, "POST", "/quick", "", nil); err != nil || res.Status != 200 {
		t.Errorf("request with its own deadline: %v %v", res, err)
	}
}
