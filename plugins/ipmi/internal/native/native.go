// Package native is the ipmi plugin's default driver (ipmi/mode "native"):
// IPMI v2.0 RMCP+ (or v1.5 LAN on request) spoken in-process with
// github.com/bougou/go-ipmi/pkg/client. There is no process per call and the
// credentials never appear on a command line. Sessions are kept per BMC and
// credentials for a short idle period, so polling powerstatus costs one
// request/response instead of a session handshake, and are closed when idle
// or when the driver is closed.
package native

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	ipmi "github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
)

// Mode is the ipmi/mode value served by this driver.
const Mode = "native"

// DefaultPort is the IPMI LAN port used when ipmi/port-ipmitool is 0.
const DefaultPort = 623

// Options tunes the driver; zero values get sensible defaults.
type Options struct {
	// Timeout is how long one UDP exchange waits for the BMC (default 2s).
	Timeout time.Duration
	// Retries is how many times an unanswered exchange is re-sent (default 2).
	Retries int
	// IdleTTL is how long an unused session stays open (default 20s; the
	// IPMI session inactivity timeout is typically 60s).
	IdleTTL time.Duration
	// FailFastFor is how long after a session attempt got no answer from a
	// BMC further calls with the same credentials get that outcome at once
	// instead of each waiting out the timeout again (default Timeout;
	// negative disables). Calls queued behind the attempt always share it.
	FailFastFor time.Duration
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Driver is the native IPMI driver. It is safe for concurrent use.
type Driver struct {
	opts Options

	mu       sync.Mutex
	sessions map[sessionKey]*session
	// failures are recent session attempts that got no answer, kept for
	// FailFastFor so a dead BMC costs one timeout, not one per caller.
	failures map[sessionKey]failure
	closed   bool
}

// failure is the outcome of a session attempt that got no answer.
type failure struct {
	err error
	at  time.Time
}

// New returns a driver; call Close to end its sessions.
func New(opts Options) *Driver {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = 20 * time.Second
	}
	if opts.FailFastFor == 0 {
		opts.FailFastFor = opts.Timeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{opts: opts, sessions: map[sessionKey]*session{}, failures: map[sessionKey]failure{}}
}

// Mode implements bmc.Driver.
func (d *Driver) Mode() string { return Mode }

// OpenSessions reports how many BMC sessions are currently open.
//
// Lock order is a session's lock before Driver.mu (a session's holder calls
// forget and connectFailed, which take d.mu), so the pool is copied under
// d.mu and each session is inspected after d.mu is released.
func (d *Driver) OpenSessions() int {
	d.mu.Lock()
	all := make([]*session, 0, len(d.sessions))
	for _, s := range d.sessions {
		all = append(all, s)
	}
	d.mu.Unlock()
	n := 0
	for _, s := range all {
		s.mustAcquire()
		if s.c != nil && !s.dead {
			n++
		}
		s.release()
	}
	return n
}

// Close ends every open session and makes later calls fail.
func (d *Driver) Close() {
	d.mu.Lock()
	d.closed = true
	all := make([]*session, 0, len(d.sessions))
	for k, s := range d.sessions {
		all = append(all, s)
		delete(d.sessions, k)
	}
	clear(d.failures)
	d.mu.Unlock()
	for _, s := range all {
		s.mustAcquire()
		s.dead = true
		s.closeLocked(d.opts.Timeout)
		s.release()
	}
}

// Do implements bmc.Driver.
func (d *Driver) Do(ctx context.Context, req *bmc.Request) (any, *models.Error) {
	op := operationFor(req.Command)
	if op == nil {
		return nil, bmc.NotImplemented(Mode, req.Command, "IPMI has no equivalent; use ipmi/mode redfish")
	}
	var out any
	err := d.withSession(ctx, req.Target, func(c *ipmi.Client) error {
		var err error
		out, err = op(ctx, c, req)
		return err
	})
	if err != nil {
		return nil, classify(ctx, req.Target, err)
	}
	return out, nil
}

type operation func(ctx context.Context, c *ipmi.Client, req *bmc.Request) (any, error)

// operationFor returns the operation of a machine action, nil when IPMI
// has none.
func operationFor(cmd string) operation {
	switch cmd {
	case bmc.PowerStatus:
		return powerStatus
	case bmc.PowerOn:
		return control(chassis.ChassisControlPowerUp, "Chassis Power Control: Up/On")
	case bmc.PowerOff:
		return control(chassis.ChassisControlPowerDown, "Chassis Power Control: Down/Off")
	case bmc.PowerCycle:
		return powerCycle
	case bmc.NextBootPXE:
		return bootDevice(types.BootDeviceSelectorForcePXE, "pxe", false)
	case bmc.NextBootDisk:
		return bootDevice(types.BootDeviceSelectorForceHardDrive, "disk", false)
	case bmc.NextBootCD:
		return bootDevice(types.BootDeviceSelectorForceCDROM, "cdrom", false)
	case bmc.ForceBootPXE:
		return bootDevice(types.BootDeviceSelectorForcePXE, "pxe", true)
	case bmc.ForceBootDisk:
		return bootDevice(types.BootDeviceSelectorForceHardDrive, "disk", true)
	case bmc.Identify:
		return identify
	}
	return nil
}

func powerStatus(ctx context.Context, c *ipmi.Client, _ *bmc.Request) (any, error) {
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("get chassis status: %w", err)
	}
	if st.PowerIsOn {
		return bmc.PowerState{Power: "on", Raw: "Chassis Power is on"}, nil
	}
	return bmc.PowerState{Power: "off", Raw: "Chassis Power is off"}, nil
}

func control(ctl chassis.ChassisControl, text string) operation {
	return func(ctx context.Context, c *ipmi.Client, _ *bmc.Request) (any, error) {
		if _, err := c.ChassisControl(ctx, ctl); err != nil {
			return nil, fmt.Errorf("chassis control %d: %w", ctl, err)
		}
		return text, nil
	}
}

// powerCycle cycles a running system and powers on a stopped one (a power
// cycle of a powered-off chassis is refused by most BMCs, and "cycle the
// rack" means "make every machine boot").
func powerCycle(ctx context.Context, c *ipmi.Client, req *bmc.Request) (any, error) {
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("get chassis status: %w", err)
	}
	if !st.PowerIsOn {
		return control(chassis.ChassisControlPowerUp, "Chassis Power Control: Up/On (was off)")(ctx, c, req)
	}
	return control(chassis.ChassisControlPowerCycle, "Chassis Power Control: Cycle")(ctx, c, req)
}

// bootDevice writes what DRP's ipmitool sequence intended: keep the boot
// flags valid across power-up, reset, watchdog and the 60 s timeout (boot
// option parameter #3), then set the boot flags (#5) with the device, the
// persistence (force* actions) and EFI when detected-bios-mode is uefi.
func bootDevice(dev types.BootDeviceSelector, name string, persistent bool) operation {
	return func(ctx context.Context, c *ipmi.Client, req *bmc.Request) (any, error) {
		keep := &types.BootOptionParam_BMCBootFlagValidBitClear{
			DontClearOnCommandReceivedTimeout:       true,
			DontClearOnWatchdogTimeout:              true,
			DontClearOnResetPushButtonOrSoftReset:   true,
			DontClearOnPowerUpPushButtonOrWakeEvent: true,
		}
		if err := c.SetSystemBootOptionsParamFor(ctx, keep); err != nil {
			return nil, fmt.Errorf("set boot flag valid bit clearing: %w", err)
		}
		flags := &types.BootOptionParam_BootFlags{
			BootFlagsValid:     true,
			Persist:            persistent,
			BIOSBootType:       types.BIOSBootType(req.UEFI()),
			BootDeviceSelector: dev,
		}
		if err := c.SetSystemBootOptionsParamFor(ctx, flags); err != nil {
			return nil, fmt.Errorf("set boot flags: %w", err)
		}
		return "Set Boot Device to " + name, nil
	}
}

// identify blinks for IdentifySeconds (capped at the protocol's 255) or,
// when it is <= 0, turns identify on until told otherwise.
func identify(ctx context.Context, c *ipmi.Client, req *bmc.Request) (any, error) {
	secs := req.IdentifySeconds
	if secs <= 0 {
		if _, err := c.ChassisIdentify(ctx, 0, true); err != nil {
			return nil, fmt.Errorf("chassis identify force: %w", err)
		}
		return "Chassis identify interval: indefinite", nil
	}
	if secs > 255 {
		secs = 255
	}
	if _, err := c.ChassisIdentify(ctx, uint8(secs), false); err != nil {
		return nil, fmt.Errorf("chassis identify: %w", err)
	}
	return fmt.Sprintf("Chassis identify interval: %d seconds", secs), nil
}

// classify maps a go-ipmi error to the plugin's error codes. go-ipmi joins
// the per-cipher-suite handshake errors with %v, so authentication failures
// are recognised by their text as well as by type.
func classify(ctx context.Context, t bmc.Target, err error) *models.Error {
	msg := err.Error()
	var rs *types.RmcpStatusError
	if errors.As(err, &rs) {
		switch rs.StatusCode() {
		case types.RmcpStatusCodeUnauthorizedName, types.RmcpStatusCodeInvalidIntegrityCheckValue,
			types.RmcpStatusCodeInvalidRole, types.RmcpStatusCodeUnauthorizedRoleOfPriLevel:
			return bmc.Unauthorized(t, msg)
		}
		return bmc.BMCFailed(t, msg)
	}
	if errors.Is(err, ipmi.ErrRAKPAuthentication) || mentionsAuthFailure(msg) {
		return bmc.Unauthorized(t, msg)
	}
	if re, ok := types.IsResponseError(err); ok {
		if errors.As(err, new(*loginError)) && mentionsLoginStep(msg) {
			// The BMC answered the login itself with an error: it refused
			// the user, the password or the privilege level.
			return bmc.Unauthorized(t, msg)
		}
		return bmc.BMCFailed(t, fmt.Sprintf("completion code %#02x: %s", uint8(re.CompletionCode()), msg))
	}
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused") {
		return bmc.NoAnswer(t, "nothing answers IPMI on that port (connection refused)")
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) ||
		mentionsTimeout(msg) {
		return bmc.NoAnswer(t, msg)
	}
	return bmc.BMCFailed(t, msg)
}

// mentionsAuthFailure reports whether go-ipmi's message says the BMC
// refused the credentials.
func mentionsAuthFailure(msg string) bool {
	return containsAny(msg, "RAKP authentication failed", "unauthorized name", "invalid integrity check value",
		"Unauthorized name", "Invalid integrity check value")
}

// mentionsLoginStep reports whether msg names a session-establishment
// command: an error completion code from one of them means the BMC refused
// the login.
func mentionsLoginStep(msg string) bool {
	return containsAny(msg, "GetSessionChallenge failed", "ActivateSession failed", "SetSessionPrivilegeLevel")
}

// loginError marks an error that happened while opening the session.
type loginError struct{ err error }

// Error implements error, naming the session step that failed.
func (e *loginError) Error() string { return "open IPMI session: " + e.err.Error() }

// Unwrap returns go-ipmi's error so callers can inspect it.
func (e *loginError) Unwrap() error { return e.err }

// mentionsTimeout reports whether go-ipmi's message says the BMC did not
// answer in time.
func mentionsTimeout(msg string) bool {
	return containsAny(msg, "timed out", "deadline exceeded", "no matching IPMI response", "no UDP datagram matched", "i/o timeout")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// sessionKey identifies a reusable session: one BMC, one set of credentials.
// The password is kept only as a digest.
type sessionKey struct {
	hostPort string
	user     string
	pass     [sha256.Size]byte
	lan15    bool
}

// session is one pooled go-ipmi client; its lock serialises its use.
type session struct {
	// lock is a one-slot semaphore rather than a sync.Mutex so that a
	// caller queued behind a slow call to the same BMC gives up when its
	// own context ends instead of waiting past its deadline.
	lock     chan struct{}
	c        *ipmi.Client
	lastUsed time.Time
	timer    *time.Timer
	dead     bool
	// failed is why the session attempt that ended this entry failed, when
	// the BMC (not the connecting caller's context) caused it: the calls
	// that queued on the entry during the attempt return it instead of
	// each trying (and timing out) again.
	failed error
}

func newSession() *session { return &session{lock: make(chan struct{}, 1)} }

// acquire takes the session's lock, or returns ctx's error when ctx ends
// first.
func (s *session) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mustAcquire takes the session's lock for the driver's own housekeeping
// (idle closing, Close, OpenSessions), which waits for the call in progress.
func (s *session) mustAcquire() { s.lock <- struct{}{} }

// release gives the session's lock back.
func (s *session) release() { <-s.lock }

// closeLocked closes the client (bounded by timeout) and stops the timer.
func (s *session) closeLocked(timeout time.Duration) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = s.c.Close(ctx)
	s.c = nil
}

// withSession runs fn on a session to t, reusing an open one. When fn fails
// on a reused session without an answer from the BMC (it may have expired
// the session) it reconnects and tries once more. Calls to one BMC are
// serialised, but a failed session attempt answers every call queued
// behind it, and one that got no answer also the calls of the next
// FailFastFor: N callers of a dead BMC wait one timeout, not N.
func (d *Driver) withSession(ctx context.Context, t bmc.Target, fn func(*ipmi.Client) error) error {
	key := sessionKey{hostPort: t.HostPort(DefaultPort), user: t.Username, pass: sha256.Sum256([]byte(t.Password)), lan15: t.LAN15}
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return errors.New("native IPMI driver is closed")
		}
		if err := d.recentFailureLocked(key); err != nil {
			d.mu.Unlock()
			return err
		}
		s := d.sessions[key]
		if s == nil {
			s = newSession()
			d.sessions[key] = s
		}
		d.mu.Unlock()

		if err := s.acquire(ctx); err != nil {
			return fmt.Errorf("gave up waiting for earlier calls to the same BMC: %w", err)
		}
		if s.dead {
			shared := s.failed
			s.release()
			if shared != nil {
				return fmt.Errorf("%w (outcome of a concurrent call's session attempt)", shared)
			}
			continue // removed by the idle closer; take a fresh entry
		}
		if callerEnded(ctx) {
			// Running now would fail without an answer and tear down a
			// healthy pooled session.
			s.release()
			cause := ctx.Err()
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return fmt.Errorf("gave up waiting for earlier calls to the same BMC: %w", cause)
		}
		err := d.runLocked(ctx, s, key, t, fn)
		s.release()
		return err
	}
}

// recentFailureLocked returns the outcome of a session attempt for key that
// got no answer less than FailFastFor ago, nil when there is none.
func (d *Driver) recentFailureLocked(key sessionKey) error {
	f, ok := d.failures[key]
	if !ok {
		return nil
	}
	age := time.Since(f.at)
	if age >= d.opts.FailFastFor {
		delete(d.failures, key)
		return nil
	}
	return fmt.Errorf("%w (a session attempt %s ago got no answer; not retried for another %s)",
		f.err, age.Round(time.Millisecond), (d.opts.FailFastFor - age).Round(time.Millisecond))
}

// connectFailed ends s after a failed session attempt. Unless the
// connecting caller's own context ended it, the calls queued on s share the
// error, and when the BMC did not answer at all so do the next calls for
// FailFastFor.
func (d *Driver) connectFailed(ctx context.Context, s *session, key sessionKey, t bmc.Target, err error) {
	ended := callerEnded(ctx)
	if !ended {
		s.failed = err
	}
	d.forget(s, t)
	if ended || d.opts.FailFastFor <= 0 || classify(context.Background(), t, err).Code != 504 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for k, f := range d.failures {
		if now.Sub(f.at) >= d.opts.FailFastFor {
			delete(d.failures, k)
		}
	}
	if !d.closed {
		d.failures[key] = failure{err: err, at: now}
	}
}

// callerEnded reports whether ctx is done or its deadline has passed: go-ipmi
// turns the deadline into a UDP read deadline, whose error can come before
// ctx.Err() is set.
func callerEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func (d *Driver) runLocked(ctx context.Context, s *session, key sessionKey, t bmc.Target, fn func(*ipmi.Client) error) error {
	reused := s.c != nil
	if s.c == nil {
		if err := d.connectLocked(ctx, s, t); err != nil {
			d.connectFailed(ctx, s, key, t, err)
			return err
		}
	}
	err := fn(s.c)
	if err != nil && reused && ctx.Err() == nil {
		if _, answered := types.IsResponseError(err); !answered {
			d.opts.Logger.Debug("reconnecting IPMI session after a failure on a reused session", "bmc", t, "error", err)
			s.closeLocked(d.opts.Timeout)
			if cerr := d.connectLocked(ctx, s, t); cerr != nil {
				d.connectFailed(ctx, s, key, t, cerr)
				return cerr
			}
			err = fn(s.c)
		}
	}
	if err != nil {
		if _, answered := types.IsResponseError(err); !answered {
			// The session state is unknown: do not reuse it.
			s.closeLocked(d.opts.Timeout)
			d.forget(s, t)
			return err
		}
	}
	s.lastUsed = time.Now()
	d.armIdleTimer(s, t)
	return err
}

func (d *Driver) connectLocked(ctx context.Context, s *session, t bmc.Target) error {
	port := t.Port
	if port == 0 {
		port = DefaultPort
	}
	c, err := ipmi.NewClient(t.Address, port, t.Username, t.Password)
	if err != nil {
		return fmt.Errorf("new IPMI client: %w", err)
	}
	c.WithTimeout(d.opts.Timeout).WithRetry(d.opts.Retries)
	if t.LAN15 {
		c.WithInterface(ipmi.InterfaceLan)
	}
	if err := c.Connect(ctx); err != nil {
		// Release the UDP socket without waiting for a BMC that failed us.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.Close(cctx)
		return &loginError{err: err}
	}
	s.c = c
	return nil
}

// forget removes s from the pool (it has no open client).
func (d *Driver) forget(s *session, t bmc.Target) {
	s.dead = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.sessions {
		if v == s {
			delete(d.sessions, k)
		}
	}
}

// armIdleTimer (re)starts the timer that closes s after IdleTTL unused.
func (d *Driver) armIdleTimer(s *session, t bmc.Target) {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(d.opts.IdleTTL, func() {
		s.mustAcquire()
		defer s.release()
		if s.dead || s.c == nil || time.Since(s.lastUsed) < d.opts.IdleTTL {
			return
		}
		d.opts.Logger.Debug("closing idle IPMI session", "bmc", t)
		s.closeLocked(d.opts.Timeout)
		d.forget(s, t)
	})
}
