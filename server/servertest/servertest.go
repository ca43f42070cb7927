// Package servertest runs a real provisiond for tests: in-process (Start)
// or as a separate process built from server/cmd/provisiond (StartProcess),
// always on 127.0.0.1 with free ports and a temporary base directory, and
// hands back its URL and admin credentials.
//
// In-process, for most tests (fast; modules can be injected):
//
//	ts := servertest.Start(t, servertest.Options{})
//	c := ts.Client(t)                 // *client.Client as rocketskates
//	resp, body := ts.Do(t, "GET", "/api/v3/machines", nil) // raw HTTPS, Basic auth
//
// As a subprocess, to test crashes, restarts and what reaches disk and logs:
//
//	p := servertest.StartProcess(t, servertest.ProcessOptions{})
//	p.Kill(t)       // SIGKILL
//	p.Restart(t)    // same base dir and credentials, new ports
//	p.Logs()        // everything the process wrote to stdout/stderr
//
// Set PROVISIOND_BIN to use a prebuilt binary instead of building one (the
// build happens once per test binary otherwise).
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/config"
)

// AdminUser is the bootstrap superuser of every test server.
const AdminUser = server.AdminUser

// Options configure an in-process server.
type Options struct {
	// Modules are passed to server.New (e.g. the plugin host).
	Modules []server.Module
	// Config, when set, may change the configuration before start (base
	// root, ports and admin password are already filled in).
	Config func(*config.Config)
	// BaseRoot reuses a directory instead of a fresh t.TempDir().
	BaseRoot string
	// AdminPassword reuses a password (default: random).
	AdminPassword string
	// Now is the failed-login throttle's clock (default time.Now).
	Now func() time.Time
}

// Server is a running in-process provisiond.
type Server struct {
	// URL is the API base URL (https://127.0.0.1:<port>, no /api/v3).
	URL string
	// StaticURL is the static file server URL.
	StaticURL string
	// BaseRoot is the state directory.
	BaseRoot string
	// AdminPassword is rocketskates' password.
	AdminPassword string
	// Server is the running server, for direct access to its services.
	Server *server.Server

	logs *Buffer
	stop sync.Once
}

// Buffer is a goroutine-safe log sink.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomPassword() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Start runs provisiond in this process until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	cfg := config.Defaults()
	cfg.BaseRoot = opts.BaseRoot
	if cfg.BaseRoot == "" {
		cfg.BaseRoot = t.TempDir()
	}
	cfg.APIPort, cfg.StaticPort = 0, 0
	cfg.APIAddr, cfg.StaticAddr = "127.0.0.1", "127.0.0.1"
	cfg.AdminPassword = opts.AdminPassword
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = randomPassword()
	}
	cfg.LogLevel = "debug"
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	logs := &Buffer{}
	ctx := context.Background()
	s, err := server.New(ctx, cfg, server.Options{Modules: opts.Modules, LogOutput: logs, Stdout: logs, Now: opts.Now})
	if err != nil {
		t.Fatalf("servertest: new server: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		_ = s.Close()
		t.Fatalf("servertest: start server: %v", err)
	}
	ts := &Server{URL: s.APIURL(), StaticURL: s.StaticURL(), BaseRoot: cfg.BaseRoot, AdminPassword: cfg.AdminPassword, Server: s, logs: logs}
	t.Cleanup(func() { ts.Stop(t) })
	return ts
}

// Stop shuts the server down (also done automatically at test end).
func (s *Server) Stop(t testing.TB) {
	s.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Server.Shutdown(ctx); err != nil {
			t.Errorf("servertest: shutdown: %v", err)
		}
	})
}

// Logs returns the server's log output so far.
func (s *Server) Logs() string { return s.logs.String() }

// Client returns an API client logged in as rocketskates.
func (s *Server) Client(t testing.TB) *client.Client {
	return newClient(t, s.URL, s.AdminPassword)
}

// Do sends one HTTPS request as rocketskates (Basic auth); see DoAs.
func (s *Server) Do(t testing.TB, method, path string, body any) (*http.Response, []byte) {
	return DoAs(t, s.URL, BasicAuth(AdminUser, s.AdminPassword), method, path, body)
}

func newClient(t testing.TB, url, pw string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.Options{Username: AdminUser, Password: pw})
	if err != nil {
		t.Fatalf("servertest: client: %v", err)
	}
	return c
}

// HTTPClient is an HTTPS client that accepts the test server's
// self-signed certificate, with a timeout.
func HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, // test servers use a self-signed certificate
			MaxIdleConnsPerHost: 64,
			ForceAttemptHTTP2:   true,
		},
	}
}

var sharedHTTP = HTTPClient()

// BasicAuth returns an Authorization header value for user/password.
func BasicAuth(user, password string) string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// Bearer returns an Authorization header value for a token.
func Bearer(token string) string { return "Bearer " + token }

// DoAs sends one request to base+path with the Authorization header authz
// ("" sends none). body may be nil, []byte/string (sent as is) or any value
// (sent as JSON). It returns the response (body already read) and its body.
func DoAs(t testing.TB, base, authz, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("servertest: encode body: %v", err)
		}
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatalf("servertest: request: %v", err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := sharedHTTP.Do(req)
	if err != nil {
		t.Fatalf("servertest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("servertest: read %s %s: %v", method, path, err)
	}
	return resp, out
}

// --- subprocess ---

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Binary returns the path of a provisiond binary: $PROVISIOND_BIN, or one
// built once per test process from server/cmd/provisiond.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("PROVISIOND_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "provisiond-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "provisiond")
		cmd := exec.Command("go", "build", "-o", builtBin, "github.com/provisionhq/provision/server/cmd/provisiond")
		cmd.Dir = filepath.Dir(file)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build provisiond: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("servertest: %v", buildErr)
	}
	return builtBin
}

// ProcessOptions configure a provisiond subprocess.
type ProcessOptions struct {
	// Args are extra command-line flags.
	Args []string
	// Env are extra environment variables (NAME=value).
	Env []string
	// BaseRoot reuses a directory instead of a fresh t.TempDir().
	BaseRoot string
	// AdminPassword reuses a password (default: random); it is passed in
	// RS_ADMIN_PASSWORD, never on the command line.
	AdminPassword string
}

// Process is a provisiond subprocess.
type Process struct {
	// URL is the API base URL of the current run.
	URL string
	// StaticURL is the static file server URL of the current run.
	StaticURL string
	// BaseRoot is the state directory (kept across restarts).
	BaseRoot string
	// AdminPassword is rocketskates' password.
	AdminPassword string

	opts ProcessOptions
	bin  string
	logs *Buffer
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess builds (once) and starts provisiond; it is stopped with
// SIGTERM at test end if still running.
func StartProcess(t testing.TB, opts ProcessOptions) *Process {
	t.Helper()
	if opts.BaseRoot == "" {
		opts.BaseRoot = t.TempDir()
	}
	if opts.AdminPassword == "" {
		opts.AdminPassword = randomPassword()
	}
	p := &Process{BaseRoot: opts.BaseRoot, AdminPassword: opts.AdminPassword, opts: opts, bin: Binary(t), logs: &Buffer{}}
	p.start(t)
	t.Cleanup(func() { p.Stop(t) })
	return p
}

func (p *Process) start(t testing.TB) {
	t.Helper()
	epFile := filepath.Join(p.BaseRoot, server.EndpointsFile)
	_ = os.Remove(epFile)
	args := append([]string{"--base-root", p.BaseRoot, "--api-port", "0", "--static-port", "0",
		"--api-addr", "127.0.0.1", "--static-addr", "127.0.0.1", "--log-level", "debug"}, p.opts.Args...)
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(append(os.Environ(), "RS_ADMIN_PASSWORD="+p.AdminPassword), p.opts.Env...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	// A plugin that inherited the output pipes could keep Wait from
	// returning after provisiond itself has exited.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("servertest: start provisiond: %v", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { p.err = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if buf, err := os.ReadFile(epFile); err == nil {
			var ep map[string]string
			if json.Unmarshal(buf, &ep) == nil && ep["api"] != "" {
				p.URL, p.StaticURL = ep["api"], ep["static"]
				break
			}
		}
		select {
		case <-p.done:
			t.Fatalf("servertest: provisiond exited during start (%v); output:\n%s", p.err, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("servertest: provisiond did not start in time; output:\n%s", p.logs.String())
		}
	}
}

// Logs returns everything the process (all runs) wrote to stdout and stderr.
func (p *Process) Logs() string { return p.logs.String() }

// StopTimeout is how long Stop and Wait allow provisiond to exit. A
// SIGTERM may legitimately take the plugin host's action drain (30 s), the
// plugins' stop grace periods and the HTTP shutdown (15 s), so this is well
// above their sum: reaching it means a hang, not a slow machine.
const StopTimeout = 2 * time.Minute

// Kill sends SIGKILL and waits for the process to die.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Pid is the process id of the current run.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (e.g. SIGHUP to reload plugin
// providers, SIGTERM to stop it and then Wait).
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("servertest: signal %v: %v", sig, err)
	}
}

// Exited is closed when the current run has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Wait waits for the process to exit (at most StopTimeout, then SIGKILL
// and a test failure) and returns its exit status (-1 when a signal
// ended it).
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("servertest: provisiond did not exit within %s", StopTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and waits (up to StopTimeout, then SIGKILL); it
// returns the process exit error (nil after a clean shutdown).
func (p *Process) Stop(t testing.TB) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("servertest: provisiond ignored SIGTERM for %s", StopTimeout)
	}
	return p.err
}

// Restart starts the process again on the same base directory (after Kill
// or Stop) with new ports.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	default:
		t.Fatalf("servertest: Restart while provisiond is still running")
	}
	p.start(t)
}

// Client returns an API client logged in as rocketskates.
func (p *Process) Client(t testing.TB) *client.Client { return newClient(t, p.URL, p.AdminPassword) }

// Do sends one HTTPS request as rocketskates; see DoAs.
func (p *Process) Do(t testing.TB, method, path string, body any) (*http.Response, []byte) {
	return DoAs(t, p.URL, BasicAuth(AdminUser, p.AdminPassword), method, path, body)
}
