package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/servertest"
)

// runBinary runs the real provisiond binary with args and extra
// environment and returns its exit status and standard error.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(servertest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	default:
		t.Fatalf("run provisiond: %v", err)
		return -1, ""
	}
}

// TestExitStatuses: the documented exit statuses (0 ok, 1 usage or
// configuration error, 2 cannot start, 3 base directory locked), bad
// flags and bad RS_* values alike, each with a message naming the cause.
func TestExitStatuses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	running := servertest.StartProcess(t, servertest.ProcessOptions{})

	for _, c := range []struct {
		name   string
		env    []string
		args   []string
		status int
		says   string
	}{
		{"help", nil, []string{"--help"}, 0, ""},
		{"unknown flag", nil, []string{"--nosuchflag"}, 1, "unknown flag: --nosuchflag"},
		{"bad flag value", nil, []string{"--api-port", "abc"}, 1, `invalid argument "abc" for "--api-port"`},
		{"extra argument", nil, []string{"extra"}, 1, `unknown command "extra"`},
		{"bad RS_* value", []string{"RS_API_PORT=xyz"}, nil, 1, `RS_API_PORT="xyz"`},
		{"invalid setting", nil, []string{"--log-level", "loud"}, 1, "--log-level must be"},
		{"out of range", nil, []string{"--api-port", "70000"}, 1, "--api-port 70000 out of range"},
		{"unusable TLS files", nil, []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, 1, "load TLS certificate"},
		{"port in use", nil, []string{"--api-port", busyPort}, 2, "address already in use"},
		{"base directory locked", nil, []string{"--base-root", running.BaseRoot}, 3, "another provisiond"},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			args := append([]string{"--base-root", base, "--api-addr", "127.0.0.1", "--static-addr", "127.0.0.1",
				"--api-port", "0", "--static-port", "0"}, c.args...)
			status, stderr := runBinary(t, c.env, args...)
			if status != c.status || !strings.Contains(stderr, c.says) {
				t.Fatalf("exit status %d, want %d; stderr %q should contain %q", status, c.status, stderr, c.says)
			}
			if c.status != 0 && !strings.HasPrefix(stderr, "provisiond: ") {
				t.Errorf("stderr %q does not start with provisiond:", stderr)
			}
			if c.status != 3 {
				if _, err := os.Stat(filepath.Join(base, server.AdminPasswordFile)); !os.IsNotExist(err) {
					t.Errorf("a failed start left %s behind (%v)", server.AdminPasswordFile, err)
				}
			}
		})
	}
	// The help documents them.
	out, err := exec.Command(servertest.Binary(t), "--help").Output()
	if err != nil || !bytes.Contains(out, []byte("Exit status:")) || !bytes.Contains(out, []byte("3  another provisiond is using the base directory")) {
		t.Fatalf("--help does not document the exit statuses: %v\n%s", err, out)
	}
	// A clean stop on SIGTERM is 0.
	if err := running.Stop(t); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, running.Logs())
	}
}
