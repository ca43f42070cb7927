package pluginhost

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/netlimit"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
)

// maxSocketPath is the usable length of a unix socket path on Linux
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// pluginTokenTTL is the JWT expiry of an instance's RS_TOKEN.
//
// Lifetime: the token lives as long as the process it was minted for. It
// is revoked when the process stops, crashes or is replaced (the host
// mints a new one per start), and revocations live in the server's
// memory, so it also dies with provisiond. DRP plugins read RS_TOKEN once
// and cannot renew it, so the JWT expiry is only a backstop and is as
// long as DRP's (≈114 years).
//
// Scope: claims *:*:* (as DRP), because plugins legitimately manage
// machines, profiles, params, plugins and their own StoreObjects types
// (CRUD and params), post events, watch the websocket, read info and run
// actions, and object types appear at run time. What no process token
// may do, whatever its claims, is enforced by server/auth: mint tokens
// (GET /users/<name>/token) or create, update, delete or set the
// password of users, so a plugin cannot turn its token into a user token
// that survives its revocation.
const pluginTokenTTL = 1000000 * time.Hour

// maxReplyBody bounds what the host reads from one plugin reply.
const maxReplyBody = 64 << 20

// maxPluginConns bounds the connections one plugin process may hold open
// to its host socket; more are answered 503 and closed. DRP's plugin
// library keeps two.
const maxPluginConns = 64

// pluginRequestTimeout bounds reading one request a plugin sends to its
// host socket (a log line, an event, /leaving) and writing the answer.
const pluginRequestTimeout = 30 * time.Second

// maxLogLine bounds one stdout/stderr line kept for the log; longer lines
// are truncated but still drained so the child never blocks on a full pipe.
const maxLogLine = 16 << 10

// process is one running child `listen` process of a plugin instance.
type process struct {
	h      *Host
	inst   *instance
	name   string
	prov   *provider
	cmd    *exec.Cmd
	dir    string
	toPath string
	client *http.Client
	tr     *http.Transport
	srv    *http.Server
	revoke func()
	log    *slog.Logger
	// sandbox says what is enforced on the process (sandbox.Describe).
	sandbox string

	// life is cancelled when the process exits, which aborts every call
	// into it at once.
	life     context.Context
	lifeDone context.CancelFunc
	exited   chan struct{}
	exitErr  error

	started   time.Time
	stopping  atomic.Bool
	unhealthy atomic.Bool
	gate      sync.RWMutex // orders enter against stop's drain
	inflight  sync.WaitGroup
	cleaned   sync.Once

	proxyOnce sync.Once
	proxy     *httputil.ReverseProxy
}

// permanentError marks start failures that retrying will not fix (the plugin
// answered "Failed" or rejected its configuration): the instance waits for
// a change instead of restarting.
type permanentError struct{ err error }

// Error implements error.
func (e *permanentError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *permanentError) Unwrap() error { return e.err }

// startProcess launches `<provider> listen <to> <from>`, waits for the
// READY! handshake and sends /config. On error nothing is left running.
func (h *Host) startProcess(ctx context.Context, in *instance, prov *provider, params map[string]any) (*process, error) {
	p := &process{h: h, inst: in, name: in.name, prov: prov, exited: make(chan struct{}),
		log: h.log.With("plugin", in.name)}
	p.life, p.lifeDone = context.WithCancel(context.Background())
	if err := p.launch(ctx); err != nil {
		p.cleanup()
		return nil, err
	}
	if err := p.configure(ctx, params); err != nil {
		p.stop(0)
		return nil, err
	}
	return p, nil
}

func shortName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 16 {
			break
		}
		if r < 128 && (r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// scratchName is the name of a plugin's scratch directory: the plugin
// name when it is short and plain, else its shortName plus a hash of the
// full name, so that two plugins never share one (the sandbox gives each
// process its scratch directory alone).
func scratchName(name string) string {
	if short := shortName(name); short == name {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return shortName(name) + "-" + hex.EncodeToString(sum[:6])
}

func (p *process) launch(ctx context.Context) error {
	h := p.h
	// Sockets live in a private 0700 directory per process start (with a
	// random name, owned by the plugin user when plugins run as one):
	// only the server's user and this process can connect to the plugin
	// or impersonate it (other plugins of the same user are kept out by
	// Landlock and by not knowing the name), and short fixed names keep
	// the paths under the unix limit whatever the plugin's name (DRP puts
	// the name into the path and needs a short comm root instead).
	dir, err := makeSocketDir(h.cfg.CommRoot, shortName(p.name))
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	p.dir = dir
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if err := h.sb.own(dir); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	p.toPath = filepath.Join(dir, "to")
	fromPath := filepath.Join(dir, "from")
	if len(fromPath) > maxSocketPath {
		return &permanentError{fmt.Errorf("socket path %s is longer than %d bytes; use a shorter comm root", fromPath, maxSocketPath)}
	}
	ln, err := net.Listen("unix", fromPath)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", fromPath, err)
	}
	if err := h.sb.own(fromPath); err != nil {
		ln.Close()
		return fmt.Errorf("listen on %s: %w", fromPath, err)
	}
	// The plugin is untrusted: bound its connections to the host and the
	// time each request may take, so it cannot hold descriptors or
	// goroutines without end.
	p.srv = &http.Server{Handler: p.serverAPI(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: pluginRequestTimeout,
		WriteTimeout: pluginRequestTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	limited := netlimit.Wrap(ln, netlimit.Options{Name: "plugin", Max: maxPluginConns, PerIP: maxPluginConns, RefuseHTTP: true})
	go func() { _ = p.srv.Serve(limited) }()

	p.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return h.sb.dialPluginSocket(ctx, p.toPath)
		},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	p.client = &http.Client{Transport: p.tr}

	// A fresh token per process start, principal = the plugin name as in
	// DRP; see pluginTokenTTL for its scope and lifetime.
	token, revoke, err := h.deps.Tokens.MintToken(ctx, p.name,
		[]models.Claim{{Scope: "*", Action: "*", Specific: "*"}}, pluginTokenTTL)
	if err != nil {
		return fmt.Errorf("mint plugin token: %w", err)
	}
	p.revoke = revoke

	scratch := filepath.Join(h.cfg.ScratchRoot, scratchName(p.name))
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	if err := h.sb.own(scratch); err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("stderr pipe: %w", err)
	}
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(p.prov.path, "listen", p.toPath, fromPath)
		cmd.Env = h.providerEnv(token)
		cmd.Dir = scratch
		cmd.Stdin = nil // /dev/null: DRP opens and closes stdin at once
		cmd.Stdout, cmd.Stderr = outW, errW
		setProcAttrs(cmd)
		if p.sandbox, err = h.sb.confine(cmd, []string{scratch}, []string{dir}); err != nil {
			break
		}
		err = cmd.Start()
		if err != nil && isTextBusy(err) && attempt < 20 {
			time.Sleep(25 * time.Millisecond) // see runTool
			continue
		}
		break
	}
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fmt.Errorf("start %s: %w", p.prov.path, err)
	}
	p.cmd = cmd
	p.started = time.Now()
	p.log.Info("plugin sandbox", "pid", cmd.Process.Pid, "enforced", p.sandbox)
	go func() {
		err := cmd.Wait()
		p.exitErr = err
		p.lifeDone()
		close(p.exited)
	}()
	startup := &startupLog{log: p.log}
	var helperErr atomic.Value // the sandbox helper's reason, if it failed
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		readLines(errR, func(line string) {
			if strings.HasPrefix(line, sandbox.ErrorPrefix) {
				helperErr.Store(line)
			}
			if startup.allow(line) && (!startup.done() || p.h.logs.allow(p.name, p.log)) {
				p.log.Info("plugin stderr", "line", line)
			}
		})
	}()

	ready := make(chan error, 1)
	go func() {
		decided := false
		readLines(outR, func(line string) {
			if !decided {
				switch strings.TrimRight(line, "\r") {
				case "READY!":
					decided = true
					startup.end()
					ready <- nil
					return
				case "Failed":
					decided = true
					startup.end()
					ready <- &permanentError{errors.New("plugin reported Failed during start-up")}
					return
				}
				if startup.allow(line) {
					p.log.Info("plugin start-up", "line", line)
				}
				return
			}
			if p.h.logs.allow(p.name, p.log) {
				p.log.Info("plugin stdout", "line", line)
			}
		})
		if !decided {
			startup.end()
			ready <- errors.New("plugin closed stdout without printing READY!")
		}
	}()

	// DRP waits for READY! forever; a plugin that never prints it would
	// block its start for good, so the host bounds the wait.
	timer := time.NewTimer(h.cfg.ReadyTimeout)
	defer timer.Stop()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("Failed to start plugin - didn't respond cleanly: %w", err)
		}
	case <-p.exited:
		// The sandbox helper's reason (e.g. the provider is not
		// executable by the plugin user) may still be in the pipe.
		waitExit(errDone, 200*time.Millisecond)
		if why, ok := helperErr.Load().(string); ok {
			return fmt.Errorf("Failed to start plugin - exited before READY!: %v: %s", p.exitErr, why)
		}
		return fmt.Errorf("Failed to start plugin - exited before READY!: %v", p.exitErr)
	case <-timer.C:
		return fmt.Errorf("Failed to start plugin - no READY! within %s", h.cfg.ReadyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// maxStartupLines and maxStartupBytes bound what one start of a plugin
// writes to the log before READY! (stdout and stderr together). A plugin
// that floods its output while starting, and is restarted with backoff
// again and again, would otherwise fill the log without limit; the rest
// is drained and counted.
const (
	maxStartupLines = 100
	maxStartupBytes = maxLogLine
)

// startupLog is the log budget of one process start until READY!.
type startupLog struct {
	log *slog.Logger

	mu           sync.Mutex
	ended        bool
	lines, bytes int
	droppedLines int
	droppedBytes int
}

// allow reports whether line may be logged: always after end, within the
// budget before.
func (s *startupLog) allow(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return true
	}
	if s.lines < maxStartupLines && s.bytes+len(line) <= maxStartupBytes {
		s.lines++
		s.bytes += len(line)
		return true
	}
	if s.droppedLines == 0 {
		s.log.Warn("plugin start-up output exceeds the log budget; the rest until READY! is dropped",
			"max_lines", maxStartupLines, "max_bytes", maxStartupBytes)
	}
	s.droppedLines++
	s.droppedBytes += len(line)
	return false
}

// done reports whether the start-up phase is over (the steady-state log
// budget applies from then on).
func (s *startupLog) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// end closes the start-up phase and logs what was dropped.
func (s *startupLog) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	if s.droppedLines > 0 {
		s.log.Warn("plugin start-up output dropped", "lines", s.droppedLines, "bytes", s.droppedBytes)
	}
}

// readLines calls fn for every line of r until EOF, truncating very long
// lines but always draining r.
func readLines(r io.ReadCloser, fn func(string)) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 4096)
	var cur []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(cur) < maxLogLine {
			room := maxLogLine - len(cur)
			if len(chunk) > room {
				cur = append(cur, chunk[:room]...)
			} else {
				cur = append(cur, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(cur) > 0 {
			fn(strings.TrimRight(string(cur), "\r\n"))
			cur = cur[:0]
		}
		if err != nil {
			return
		}
	}
}

// enter registers an in-flight call unless the process is stopping.
func (p *process) enter() bool {
	p.gate.RLock()
	defer p.gate.RUnlock()
	if p.stopping.Load() {
		return false
	}
	p.inflight.Add(1)
	return true
}

// callCtx derives a context that also ends when the process exits.
func (p *process) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.life, cancel)
	return cctx, func() { stop(); cancel() }
}

// post sends one JSON POST to the plugin's socket and returns status and
// body.
func (p *process) post(ctx context.Context, path string, body any) (int, []byte, error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	return p.postBound(ctx, path, body)
}

// postBound is post for a ctx that already ends when the process exits
// (see callCtx).
func (p *process) postBound(ctx context.Context, path string, body any) (int, []byte, error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return 0, nil, fmt.Errorf("encode %s body: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://unix/api-plugin/v4"+path, bytes.NewReader(buf))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read %s reply: %w", path, err)
	}
	if len(rb) > maxReplyBody {
		return resp.StatusCode, nil, fmt.Errorf("%s reply exceeds %d bytes", path, maxReplyBody)
	}
	return resp.StatusCode, rb, nil
}

// decodeError turns a failed reply into a models.Error. DRP's plugin
// library double-encodes config and publish errors (the real error JSON is
// the only string in Messages, with empty Model/Type); that form is
// unwrapped so PluginErrors reads like any other error.
func decodeError(status int, body []byte, typ, model, key string) *models.Error {
	e := &models.Error{}
	if err := json.Unmarshal(body, e); err != nil || (e.Code == 0 && len(e.Messages) == 0) {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &models.Error{Model: model, Key: key, Type: typ, Code: status, Messages: []string{msg}}
	}
	if e.Model == "" && e.Type == "" && len(e.Messages) == 1 {
		inner := &models.Error{}
		if json.Unmarshal([]byte(e.Messages[0]), inner) == nil && (inner.Type != "" || len(inner.Messages) > 0) {
			e = inner
		}
	}
	if e.Code < 400 || e.Code > 599 {
		e.Code = status
	}
	return e
}

// configBody is the /config body: the Plugin's Params plus "Name", the
// instance name. DRP's host adds Name and DRP plugins rely on it
// (packet-ipmi and virtualbox-ipmi read config["Name"] to learn which
// Plugin object they are). It goes on a copy only: Name is not a param and
// is never stored in the Plugin's Params.
func configBody(name string, params map[string]any) map[string]any {
	body := make(map[string]any, len(params)+1)
	for k, v := range params {
		body[k] = v
	}
	body["Name"] = name
	return body
}

func (p *process) configure(ctx context.Context, params map[string]any) error {
	params = configBody(p.name, params)
	cctx, cancel := context.WithTimeout(ctx, p.h.cfg.ConfigTimeout)
	defer cancel()
	status, body, err := p.post(cctx, "/config", params)
	if err != nil {
		if p.life.Err() != nil {
			return fmt.Errorf("plugin exited during /config: %v", p.exitErr)
		}
		if cctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("/config did not answer within %s", p.h.cfg.ConfigTimeout)
		}
		return fmt.Errorf("/config failed: %w", err)
	}
	if status >= 400 {
		return &permanentError{decodeError(status, body, "plugin", "plugins", p.name)}
	}
	return nil
}

// probe checks that the plugin's HTTP server answers at all; any HTTP
// reply (DRP's mux answers 404 to GET /) proves it is alive, even while
// its actions are busy.
func (p *process) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.h.cfg.HealthTimeout)
	defer cancel()
	ctx, cancel2 := p.callCtx(ctx)
	defer cancel2()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://unix/api-plugin/v4/health", nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

// stop ends the process deliberately: wait up to drain for in-flight
// actions, POST /stop, then SIGTERM and SIGKILL after StopGrace each. Once
// the host is told to hurry (its shutdown budget is spent) the drain and
// the polite steps are cut short and the process group is killed.
func (p *process) stop(drain time.Duration) {
	p.gate.Lock()
	p.stopping.Store(true)
	p.gate.Unlock()
	hurry := p.h.hurry.Done()
	if drain > 0 {
		done := make(chan struct{})
		go func() { p.inflight.Wait(); close(done) }()
		t := time.NewTimer(drain)
		select {
		case <-done:
		case <-t.C:
			p.log.Warn("stopping with actions still running", "waited", drain)
		case <-hurry:
			p.log.Warn("shutdown budget spent: killing the plugin with actions still running")
		case <-p.exited:
		}
		t.Stop()
	}
	grace := p.h.cfg.StopGrace
	if p.cmd != nil && !p.stopPolitely(grace) {
		_ = killGroup(p.cmd, true)
		waitExit(p.exited, grace)
	}
	p.cleanup()
}

// stopPolitely asks the process to go (POST /stop, then SIGTERM), waiting
// up to grace after each step unless the host is hurrying, and reports
// whether it has exited.
func (p *process) stopPolitely(grace time.Duration) bool {
	hurry := p.h.hurry.Done()
	select {
	case <-p.exited:
		return true
	case <-hurry:
		return false
	default:
	}
	// The DRP library exits inside the /stop handler, so the reply is
	// usually lost: any error here is expected.
	ctx, cancel := context.WithTimeout(p.h.hurry, grace)
	_, _, _ = p.post(ctx, "/stop", nil)
	cancel()
	if waitExitUnless(p.exited, grace, hurry) {
		return true
	}
	if p.h.hurry.Err() != nil {
		return false
	}
	_ = killGroup(p.cmd, false)
	return waitExitUnless(p.exited, grace, hurry)
}

func waitExit(ch <-chan struct{}, d time.Duration) bool {
	return waitExitUnless(ch, d, nil)
}

// waitExitUnless waits up to d for ch to close, giving up early when
// unless closes; it reports whether ch closed.
func waitExitUnless(ch <-chan struct{}, d time.Duration, unless <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-unless:
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// cleanup releases everything the process held; safe to call repeatedly.
func (p *process) cleanup() {
	p.cleaned.Do(func() {
		if p.cmd != nil {
			// Kill leftovers in the process group (children of a
			// crashed plugin).
			_ = killGroup(p.cmd, true)
			select {
			case <-p.exited:
			default:
				waitExit(p.exited, p.h.cfg.StopGrace)
			}
		}
		p.lifeDone()
		if p.srv != nil {
			_ = p.srv.Close()
		}
		if p.tr != nil {
			p.tr.CloseIdleConnections()
		}
		if p.revoke != nil {
			p.revoke()
		}
		if p.dir != "" {
			_ = os.RemoveAll(p.dir)
		}
	})
}

func (p *process) exitString() string {
	if p.exitErr == nil {
		return "exit status 0"
	}
	return p.exitErr.Error()
}
