package native

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
	"github.com/provisionhq/provision/plugins/ipmi/internal/ipmitest"
)

func newDriver(t *testing.T, opts Options) *Driver {
	t.Helper()
	d := New(opts)
	t.Cleanup(d.Close)
	return d
}

// do is the shared ipmitest.Do with this driver's per-action bound.
func do(t *testing.T, d *Driver, req *bmc.Request) any {
	t.Helper()
	return ipmitest.Do(t, d, req, 20*time.Second)
}

func TestPower(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{})
	d := newDriver(t, Options{})
	tg := ipmitest.Target(s)

	if got := do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: tg}); got != (bmc.PowerState{Power: "off", Raw: "Chassis Power is off"}) {
		t.Fatalf("powerstatus = %#v", got)
	}
	do(t, d, &bmc.Request{Command: bmc.PowerOn, Target: tg})
	if !s.Chassis.On() {
		t.Fatal("poweron did not power the chassis on")
	}
	if got := do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: tg}).(bmc.PowerState); got.Power != "on" {
		t.Fatalf("powerstatus after poweron = %#v", got)
	}
	do(t, d, &bmc.Request{Command: bmc.PowerCycle, Target: tg})
	if s.Chassis.PowerCycles() != 1 || !s.Chassis.On() {
		t.Fatalf("powercycle: cycles=%d on=%v", s.Chassis.PowerCycles(), s.Chassis.On())
	}
	do(t, d, &bmc.Request{Command: bmc.PowerOff, Target: tg})
	if s.Chassis.On() {
		t.Fatal("poweroff left the chassis on")
	}
	// Cycling a stopped machine powers it on instead of failing.
	if got := do(t, d, &bmc.Request{Command: bmc.PowerCycle, Target: tg}); !strings.Contains(got.(string), "was off") {
		t.Fatalf("powercycle of an off machine = %v", got)
	}
	if !s.Chassis.On() || s.Chassis.PowerCycles() != 1 {
		t.Fatalf("powercycle of an off machine: on=%v cycles=%d", s.Chassis.On(), s.Chassis.PowerCycles())
	}
	// All of that went over one session.
	if n := s.Count(types.CommandGetChannelAuthCapabilities); n != 1 {
		t.Fatalf("expected one session handshake, saw %d", n)
	}
	if d.OpenSessions() != 1 {
		t.Fatalf("open sessions = %d", d.OpenSessions())
	}
}

func TestBootDevice(t *testing.T) {
	ipmitest.RunBootCases(t, ipmitest.StartBMC(t, bmcsim.Options{}), newDriver(t, Options{}), 20*time.Second, ipmitest.CheckStickyValidBitClear)
}

func TestIdentify(t *testing.T) {
	ipmitest.RunIdentifyCases(t, ipmitest.StartBMC(t, bmcsim.Options{}), newDriver(t, Options{}), 20*time.Second)
}

func TestLAN15(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{PoweredOn: true})
	d := newDriver(t, Options{})
	tg := ipmitest.Target(s)
	tg.LAN15 = true
	if got := do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: tg}).(bmc.PowerState); got.Power != "on" {
		t.Fatalf("powerstatus over v1.5 = %#v", got)
	}
	do(t, d, &bmc.Request{Command: bmc.PowerOff, Target: tg})
	if s.Chassis.On() {
		t.Fatal("poweroff over v1.5 left the chassis on")
	}
}

func TestWrongCredentials(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{PoweredOn: true})
	d := newDriver(t, Options{Timeout: 500 * time.Millisecond, Retries: 1})
	for _, tg := range []bmc.Target{
		{Address: s.Host, Port: s.Port, Username: "ADMIN", Password: "wrong"},
		{Address: s.Host, Port: s.Port, Username: "nobody", Password: "ADMIN"},
		{Address: s.Host, Port: s.Port, Username: "ADMIN", Password: "wrong", LAN15: true},
	} {
		_, err := d.Do(context.Background(), &bmc.Request{Command: bmc.PowerOff, Target: tg})
		if err == nil || err.Code != 401 {
			t.Fatalf("%v: want 401, got %v", tg, err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
	if !s.Chassis.On() {
		t.Fatal("a refused request changed the power state")
	}
	if d.OpenSessions() != 0 {
		t.Fatalf("failed logins left %d sessions", d.OpenSessions())
	}
}

func TestUnreachable(t *testing.T) {
	d := newDriver(t, Options{Timeout: 200 * time.Millisecond, Retries: 1})
	// A UDP socket that never answers: the driver must give up with a 504.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	port := silent.LocalAddr().(*net.UDPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, merr := d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: port, Username: "ADMIN", Password: "ADMIN"}})
	if merr == nil || merr.Code != 504 {
		t.Fatalf("silent BMC: want 504, got %v", merr)
	}
	if ctx.Err() != nil {
		t.Fatal("the driver did not give up on its own before the action deadline")
	}
	// A closed port answers with ICMP port unreachable (a fresh driver: this
	// one would answer from the failure it just had on that port).
	d = newDriver(t, Options{Timeout: 200 * time.Millisecond, Retries: 1})
	silent.Close()
	_, merr = d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: port, Username: "ADMIN", Password: "ADMIN"}})
	if merr == nil || merr.Code != 504 {
		t.Fatalf("closed port: want 504, got %v", merr)
	}
	// The caller's deadline bounds the action too.
	silent2, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent2.Close()
	slow := newDriver(t, Options{Timeout: time.Minute, Retries: 5})
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, merr = slow.Do(short, &bmc.Request{Command: bmc.PowerStatus, Target: bmc.Target{Address: "127.0.0.1", Port: silent2.LocalAddr().(*net.UDPAddr).Port, Username: "ADMIN", Password: "ADMIN"}})
	if merr == nil || merr.Code != 504 {
		t.Fatalf("deadline: want 504, got %v", merr)
	}
}

// TestConcurrentCallersToADeadBMC: calls to one BMC are serialised, but N
// concurrent callers of a BMC that never answers must all be answered
// within about one session attempt, not one attempt each (N x timeout).
func TestConcurrentCallersToADeadBMC(t *testing.T) {
	const timeout = 2 * time.Second // Retries -1: one attempt is one timeout
	d := newDriver(t, Options{Timeout: timeout, Retries: -1})
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tg := bmc.Target{Address: "127.0.0.1", Port: silent.LocalAddr().(*net.UDPAddr).Port, Username: "ADMIN", Password: "ADMIN"}
	const n = 5
	start := time.Now()
	bound := start.Add(2*timeout + timeout/2) // serialised, caller 3 answers at 3 x timeout
	answers := make(chan error, n)
	ctx, cancel := context.WithTimeout(context.Background(), (n+1)*timeout)
	defer cancel()
	for range n {
		go func() {
			_, merr := d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: tg})
			if merr == nil || merr.Code != 504 {
				answers <- fmt.Errorf("want a 504, got %v", merr)
				return
			}
			answers <- nil
		}()
	}
	for i := range n {
		if err := <-answers; err != nil {
			t.Fatal(err)
		}
		if done := time.Now(); done.After(bound) {
			t.Fatalf("caller %d of %d answered %s after the start: callers of a dead BMC each waited a timeout (%s)",
				i+1, n, done.Sub(start).Round(time.Millisecond), timeout)
		}
	}
	// A call right after the failure gets it at once, saying so.
	_, merr := d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: tg})
	if merr == nil || merr.Code != 504 || !strings.Contains(merr.Error(), "got no answer; not retried for another") {
		t.Fatalf("call after the failure: %v", merr)
	}
}

// TestCallerContextFailureIsNotShared: a session attempt that ended because
// its caller gave up says nothing about the BMC, so the next caller makes
// its own attempt instead of getting that outcome from the fail-fast cache.
func TestCallerContextFailureIsNotShared(t *testing.T) {
	d := newDriver(t, Options{Timeout: time.Second, Retries: -1})
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tg := bmc.Target{Address: "127.0.0.1", Port: silent.LocalAddr().(*net.UDPAddr).Port, Username: "ADMIN", Password: "ADMIN"}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, merr := d.Do(short, &bmc.Request{Command: bmc.PowerStatus, Target: tg}); merr == nil || merr.Code != 504 {
		t.Fatalf("call with a short deadline: %v", merr)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	_, merr := d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: tg})
	if merr == nil || merr.Code != 504 || strings.Contains(merr.Error(), "not retried") || !strings.Contains(merr.Error(), "no datagram matched") {
		t.Fatalf("the next caller did not make its own attempt: %v", merr)
	}
}

func TestCompletionCodeError(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{})
	d := newDriver(t, Options{})
	tg := ipmitest.Target(s)
	s.FailWith(types.CommandChassisControl, types.CompletionCode(0xC0)) // node busy
	_, err := d.Do(context.Background(), &bmc.Request{Command: bmc.PowerOn, Target: tg})
	if err == nil || err.Code != 502 || !strings.Contains(err.Error(), "0xc0") {
		t.Fatalf("want 502 naming cc 0xc0, got %v", err)
	}
	if s.Chassis.On() {
		t.Fatal("refused poweron changed state")
	}
	// An answered error keeps the session, and the next call works.
	s.FailWith(types.CommandChassisControl, types.CodeOK)
	do(t, d, &bmc.Request{Command: bmc.PowerOn, Target: tg})
	if !s.Chassis.On() {
		t.Fatal("poweron after the error did not work")
	}
	if n := s.Count(types.CommandGetChannelAuthCapabilities); n != 1 {
		t.Fatalf("session was not reused after an answered error: %d handshakes", n)
	}
}

func TestIdleSessionClosed(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{})
	d := newDriver(t, Options{IdleTTL: 50 * time.Millisecond})
	do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: ipmitest.Target(s)})
	deadline := time.Now().Add(10 * time.Second)
	for d.OpenSessions() != 0 || s.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle session not closed: driver=%d bmc=%d", d.OpenSessions(), s.Sessions())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A new call opens a new session.
	do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: ipmitest.Target(s)})
	if n := s.Count(types.CommandGetChannelAuthCapabilities); n != 2 {
		t.Fatalf("handshakes = %d, want 2", n)
	}
}

func TestUnsupportedCommand(t *testing.T) {
	d := newDriver(t, Options{})
	_, err := d.Do(context.Background(), &bmc.Request{Command: bmc.GetBios, Mode: Mode, Target: bmc.Target{Address: "127.0.0.1"}})
	if err == nil || err.Code != 501 || !strings.Contains(err.Error(), "native") || !strings.Contains(err.Error(), "getBios") {
		t.Fatalf("want 501 naming mode and action, got %v", err)
	}
}

// TestOpenSessionsWhileIdleCloses: OpenSessions racing the idle closer must
// not deadlock (it once took the pool lock before a session's lock, the
// reverse of the closer's order). Many short-lived sessions make the two
// meet; a deadline turns a deadlock into a failed run with every stack.
func TestOpenSessionsWhileIdleCloses(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{})
	d := newDriver(t, Options{IdleTTL: time.Millisecond})
	done := make(chan error, 1)
	go func() {
		for range 50 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, merr := d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: ipmitest.Target(s)})
			cancel()
			if merr != nil {
				done <- merr
				return
			}
			for d.OpenSessions() != 0 {
				runtime.Gosched()
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		// Not t.Fatal: the cleanup's d.Close would block on the deadlocked
		// locks. A panic ends the run at once with every goroutine's stack.
		panic("50 sessions did not open and idle-close within 60s: OpenSessions and the idle closer deadlocked")
	}
}

// TestQueuedCallerKeepsItsDeadline: calls to one BMC are serialised, but a
// caller queued behind a slow one gives up when its own deadline passes
// (504) instead of waiting it out, and leaves the pooled session alone.
func TestQueuedCallerKeepsItsDeadline(t *testing.T) {
	s := ipmitest.StartBMC(t, bmcsim.Options{PoweredOn: true})
	d := newDriver(t, Options{Timeout: 5 * time.Second})
	tg := ipmitest.Target(s)
	do(t, d, &bmc.Request{Command: bmc.PowerStatus, Target: tg}) // opens the session

	release := make(chan struct{})
	s.Stall(types.CommandGetChassisStatus, release)
	slow := make(chan *models.Error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, merr := d.Do(ctx, &bmc.Request{Command: bmc.PowerStatus, Target: tg})
		slow <- merr
	}()
	deadline := time.Now().Add(20 * time.Second)
	for s.Count(types.CommandGetChassisStatus) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow call never reached the BMC")
		}
		time.Sleep(5 * time.Millisecond)
	}

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, merr := d.Do(short, &bmc.Request{Command: bmc.PowerStatus, Target: tg})
	if merr == nil || merr.Code != 504 || !strings.Contains(merr.Error(), "gave up waiting for earlier calls") {
		t.Fatalf("queued caller: want a 504 saying it gave up waiting, got %v", merr)
	}
	select {
	case merr := <-slow:
		t.Fatalf("the slow call ended before its BMC answered: %v", merr)
	default:
	}
	close(release)
	select {
	case merr := <-slow:
		if merr != nil {
			t.Fatalf("slow call: %v", merr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the slow call was never answered")
	}
	if n := s.Count(types.CommandGetChannelAuthCapabilities); n != 1 {
		t.Fatalf("the queued caller disturbed the session: %d handshakes, want 1", n)
	}
}
