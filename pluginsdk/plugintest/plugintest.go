// Package plugintest drives a plugin provider exactly as provisiond does —
// define, unpack, listen on a pair of unix sockets, READY! handshake,
// /config, /action, /publish, /stop — with an in-process fake of the host's
// outbound socket that records log lines, published events and leaving
// calls. Provider tests need no server:
//
//	func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }
//
//	func TestIncrement(t *testing.T) {
//		p := plugintest.FromPackage(t, ".")
//		def := p.Define(t)
//		pl := p.Start(t)
//		res := pl.Config(t, map[string]any{"incrementer/step": 2})
//		...
//	}
package plugintest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
)

// maxSocketPath is the unix socket path limit (sun_path) minus the NUL.
const maxSocketPath = 107

// builds caches the binaries built by this test binary (one per package).
// It is the only package-level state: a test kit's build cache.
var builds = struct {
	sync.Mutex
	dir  string
	bins map[string]string
}{bins: map[string]string{}}

// Main runs the tests and then removes the binaries Build cached. Use it
// from TestMain; without it the cache directory is left in os.TempDir().
func Main(m *testing.M) int {
	code := m.Run()
	builds.Lock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.Unlock()
	return code
}

// Build compiles the main package pkg (an import path, or a path relative
// to the test's working directory such as ".") with `go build` and returns
// the binary's path. Each package is built once per test binary.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	abs := pkg
	if strings.HasPrefix(pkg, ".") {
		var err error
		if abs, err = filepath.Abs(pkg); err != nil {
			t.Fatalf("plugintest: %v", err)
		}
	}
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bins[abs]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "plugintest-bin-")
		if err != nil {
			t.Fatalf("plugintest: %v", err)
		}
		builds.dir = dir
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("provider%d", len(builds.bins)))
	goTool := "go"
	if gr := os.Getenv("GOROOT"); gr != "" {
		if _, err := os.Stat(filepath.Join(gr, "bin", "go")); err == nil {
			goTool = filepath.Join(gr, "bin", "go")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugintest: go build %s: %v\n%s", pkg, err, out)
	}
	builds.bins[abs] = bin
	return bin
}

// Provider is a provider binary and the environment the host gives it.
type Provider struct {
	// Path is the executable.
	Path string
	// Env holds the RS_* variables (RS_ENDPOINT, RS_TOKEN, RS_FILESERVER,
	// RS_WEBROOT). The process otherwise inherits the test's environment
	// without any RS_* variable.
	Env map[string]string
	// Timeout bounds define, unpack and the READY! handshake (DefaultWait
	// when 0).
	Timeout time.Duration
}

// FromPackage builds pkg (see Build) and returns it as a Provider with a
// default environment: RS_ENDPOINT https://127.0.0.1:1 (nothing listens),
// RS_TOKEN "plugintest-token".
func FromPackage(t testing.TB, pkg string) *Provider {
	t.Helper()
	return FromBinary(Build(t, pkg))
}

// FromBinary returns a Provider for an existing executable, with the same
// default environment as FromPackage.
func FromBinary(path string) *Provider {
	return &Provider{Path: path, Env: map[string]string{
		"RS_ENDPOINT": "https://127.0.0.1:1",
		"RS_TOKEN":    "plugintest-token",
	}}
}

func (p *Provider) timeout() time.Duration { return orDefault(p.Timeout) }

func (p *Provider) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RS_") {
			env = append(env, kv)
		}
	}
	for k, v := range p.Env {
		env = append(env, k+"="+v)
	}
	return env
}

func (p *Provider) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Path, args...)
	cmd.Env = p.environ()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// DefineOutput runs `define` and returns its combined stdout and stderr,
// as the host captures them, and the run error.
func (p *Provider) DefineOutput() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout())
	defer cancel()
	return p.command(ctx, "define").CombinedOutput()
}

// Define runs `define` and parses its output as the host does: the whole
// combined output must be one PluginProvider JSON document.
func (p *Provider) Define(t testing.TB) *models.PluginProvider {
	t.Helper()
	out, err := p.DefineOutput()
	if err != nil {
		t.Fatalf("plugintest: define failed: %v\n%s", err, out)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	pp := &models.PluginProvider{}
	if err := dec.Decode(pp); err != nil {
		t.Fatalf("plugintest: define output is not a PluginProvider: %v\n%s", err, out)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("plugintest: define printed more than the JSON document: %q", rest)
	}
	return pp
}

// UnpackOutput runs `unpack <dir>` and returns the combined output and the
// run error.
func (p *Provider) UnpackOutput(dir string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout())
	defer cancel()
	return p.command(ctx, "unpack", dir).CombinedOutput()
}

// Unpack runs `unpack <dir>` and fails the test if it fails.
func (p *Provider) Unpack(t testing.TB, dir string) {
	t.Helper()
	if out, err := p.UnpackOutput(dir); err != nil {
		t.Fatalf("plugintest: unpack %s failed: %v\n%s", dir, err, out)
	}
}

// SocketDir creates a short 0700 directory under os.TempDir() for the
// socket pair (unix socket paths are limited to 107 bytes) and removes it
// when the test ends.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pt")
	if err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// socketPaths returns the toPlugin/fromPlugin pair named like the host's.
func socketPaths(t testing.TB, dir string) (to, from string) {
	t.Helper()
	to, from = filepath.Join(dir, "p.toPlugin.2"), filepath.Join(dir, "p.fromPlugin.2")
	if len(from) > maxSocketPath {
		t.Fatalf("plugintest: socket path %s is longer than %d bytes; set TMPDIR to a shorter directory", from, maxSocketPath)
	}
	return to, from
}

// Start launches `listen` like the host: the fake Host on the fromPlugin
// socket first, then the process with stdin closed, then it waits for
// READY! (failing the test on "Failed", exit or timeout). When the test
// ends the process is killed if it still runs; if it has not exited within
// 30 s after that, the test fails with every goroutine's stack.
func (p *Provider) Start(t testing.TB) *Plugin {
	t.Helper()
	dir := SocketDir(t)
	to, from := socketPaths(t, dir)
	host := NewHost(t, from)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := p.command(ctx, "listen", to, from)
	pl := newPlugin(t, to, host)
	// A writer rather than StdoutPipe: Wait then returns only after all the
	// process printed has been copied (or WaitDelay after it exited, if a
	// child of it holds stdout open), so the last lines are never lost.
	outR, outW := io.Pipe()
	cmd.Stdout = outW
	cmd.Stderr = &pl.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("plugintest: starting %s listen: %v", p.Path, err)
	}
	ready := make(chan string, 1)
	read := make(chan struct{})
	go func() { pl.readStdout(outR, ready); close(read) }()
	go func() {
		err := cmd.Wait()
		outW.Close()
		<-read // reads to EOF, which the Close has just made final
		pl.exitErr.Store(&exitResult{err: err, code: cmd.ProcessState.ExitCode()})
		close(pl.exited)
	}()
	t.Cleanup(func() {
		cancel() // kills the process if it still runs
		pl.awaitExit(t)
		pl.close()
	})
	pl.waitReady(t, ready, p.timeout())
	return pl
}

// exitWait bounds how long a test's cleanup waits for the plugin to exit
// after cancelling (in-process) or killing (binary) it. Longer than an
// in-process listen's own shutdown bounds (HTTP shutdown, event stream,
// log flush) put together.
const exitWait = 30 * time.Second

// awaitExit waits up to p.exitWait for the plugin to exit. A plugin still
// running then fails the test with its output and the stack of every
// goroutine of the test process, where a hung listen, Stop or event stream
// shutdown (in-process) or a stuck Wait (binary) shows.
func (p *Plugin) awaitExit(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	case <-time.After(p.exitWait):
	}
	t.Errorf("plugintest: plugin still running %v after the test ended\nstdout: %s\nstderr: %s\ngoroutines:\n%s",
		p.exitWait, p.Stdout(), p.Stderr(), allStacks())
}

// allStacks returns the stacks of all goroutines (truncated at 64 MiB).
func allStacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// exitResult is how a plugin run ended.
type exitResult struct {
	err  error
	code int
}

// Plugin is a running plugin instance (a `listen` process or an in-process
// App) and the fake host it talks to.
type Plugin struct {
	// Host is the fake of the host's outbound socket.
	Host *Host
	// ToPath is the socket the plugin serves.
	ToPath string

	hc       *http.Client
	stdout   SyncBuffer
	stderr   SyncBuffer
	exited   chan struct{} // closed once the plugin exited and all its stdout is read
	exitErr  atomic.Pointer[exitResult]
	exitWait time.Duration // see awaitExit
	reqWait  time.Duration // bounds a request whose context has no deadline
}

func newPlugin(t testing.TB, to string, host *Host) *Plugin {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", to)
		},
	}
	return &Plugin{Host: host, ToPath: to, hc: &http.Client{Transport: tr}, exited: make(chan struct{}),
		exitWait: exitWait, reqWait: DefaultWait}
}

func (p *Plugin) close() { p.hc.CloseIdleConnections() }

// readStdout keeps every line of r, reports the first decisive handshake
// line ("READY!" or "Failed"; "" if r ends without one) on ready, which
// must have room for it, and returns at EOF. It reads r to the end however
// long its lines, so the plugin never blocks writing to it.
func (p *Plugin) readStdout(r io.Reader, ready chan<- string) {
	br := bufio.NewReader(r)
	decided := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			p.stdout.WriteString(line + "\n")
			if !decided && (line == "READY!" || line == "Failed") {
				decided = true
				ready <- line
			}
		}
		if err != nil {
			break
		}
	}
	if !decided {
		ready <- ""
	}
}

func (p *Plugin) waitReady(t testing.TB, ready <-chan string, timeout time.Duration) {
	t.Helper()
	select {
	case line := <-ready:
		if line != "READY!" {
			// Give the process a moment to finish writing stderr.
			select {
			case <-p.exited:
			case <-time.After(time.Second):
			}
			t.Fatalf("plugintest: plugin did not become ready (stdout %q):\nstderr: %s", p.stdout.String(), p.stderr.String())
		}
	case <-time.After(timeout):
		t.Fatalf("plugintest: no READY! within %v; stdout %q, stderr %q", timeout, p.stdout.String(), p.stderr.String())
	}
}

// Stdout returns what the plugin printed on stdout so far.
func (p *Plugin) Stdout() string { return p.stdout.String() }

// Stderr returns what the plugin printed on stderr so far.
func (p *Plugin) Stderr() string { return p.stderr.String() }

// Response is the plugin's answer to one request.
type Response struct {
	// Status is the HTTP status.
	Status int
	// Header holds the response headers.
	Header http.Header
	// Body is the raw body.
	Body []byte
}

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Error decodes the body as a models.Error (nil if it is not one).
func (r *Response) Error() *models.Error {
	e := &models.Error{}
	if json.Unmarshal(r.Body, e) != nil {
		return nil
	}
	return e
}

// ConfigError decodes a failed /config or /publish answer, whose only
// message is the plugin's Error JSON-encoded as a string (DRP's double
// encoding), and returns that inner Error.
func (r *Response) ConfigError() *models.Error {
	outer := r.Error()
	if outer == nil || len(outer.Messages) != 1 {
		return nil
	}
	inner := &models.Error{}
	if json.Unmarshal([]byte(outer.Messages[0]), inner) != nil {
		return nil
	}
	return inner
}

// Request sends one request to the plugin's socket (Host "unix", as the
// host sends them) and returns the answer. body may be nil. Without a
// deadline in ctx the exchange is bounded by DefaultWait (see Do).
func (p *Plugin) Request(ctx context.Context, method, path, contentType string, body io.Reader) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://unix"+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return p.Do(req)
}

// Do sends req over the plugin's socket (its URL's host is ignored; use
// http://unix/<path>) and returns the answer. If req's context has no
// deadline, the exchange (answer and body) must complete within
// DefaultWait, so a stuck handler fails the test instead of hanging it;
// give the context a deadline for a longer request.
func (p *Plugin) Do(req *http.Request) (*Response, error) {
	if _, ok := req.Context().Deadline(); !ok {
		ctx, cancel := context.WithTimeout(req.Context(), p.reqWait)
		defer cancel()
		req = req.WithContext(ctx)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: buf}, nil
}

// Post sends v as JSON to path.
func (p *Plugin) Post(ctx context.Context, path string, v any) (*Response, error) {
	buf, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return p.Request(ctx, http.MethodPost, path, "application/json", bytes.NewReader(buf))
}

func (p *Plugin) mustPost(t testing.TB, path string, v any) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWait)
	defer cancel()
	r, err := p.Post(ctx, path, v)
	if err != nil {
		t.Fatalf("plugintest: POST %s: %v\nstderr: %s", path, err, p.Stderr())
	}
	return r
}

// Config POSTs params to /api-plugin/v4/config, as the host does after
// READY! (the Params map is the top-level JSON object).
func (p *Plugin) Config(t testing.TB, params map[string]any) *Response {
	t.Helper()
	return p.mustPost(t, pluginsdk.ConfigPath, params)
}

// Action POSTs a to /api-plugin/v4/action.
func (p *Plugin) Action(t testing.TB, a *models.Action) *Response {
	t.Helper()
	return p.mustPost(t, pluginsdk.ActionPath, a)
}

// Publish POSTs e to /api-plugin/v4/publish (HasPublish providers).
func (p *Plugin) Publish(t testing.TB, e *models.Event) *Response {
	t.Helper()
	return p.mustPost(t, pluginsdk.PublishPath, e)
}

// Stop POSTs JSON null to /api-plugin/v4/stop as the host does and waits
// (DefaultWait) for the plugin to exit. It returns the answer, which the
// SDK delivers before exiting.
func (p *Plugin) Stop(t testing.TB) *Response {
	t.Helper()
	r := p.mustPost(t, pluginsdk.StopPath, nil)
	if err := p.Wait(DefaultWait); err != nil {
		t.Fatalf("plugintest: after stop: %v", err)
	}
	return r
}

// Wait waits until the plugin has exited and returns an error unless it
// exited with status 0. Once the plugin has exited, Stdout and Stderr hold
// everything it printed.
func (p *Plugin) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
	case <-time.After(orDefault(timeout)):
		return fmt.Errorf("plugintest: plugin still running after %v", orDefault(timeout))
	}
	res := p.exitErr.Load()
	if res == nil {
		return errNotStarted
	}
	if res.err != nil || res.code != 0 {
		return fmt.Errorf("plugintest: plugin exited with status %d: %v\nstderr: %s", res.code, res.err, p.Stderr())
	}
	return nil
}

// Exited reports whether the plugin has exited.
func (p *Plugin) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a sink for a
// plugin's output or a test logger that the test reads while the plugin
// still writes. The zero value is ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// WriteString appends s.
func (l *SyncBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

// String returns the contents so far.
func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
