// Package bmcsim runs go-ipmi's embeddable reference BMC (pkg/bmc + pkg/server)
// on a loopback UDP port with a chassis whose state tests can read back: power,
// power cycles, boot flags, the boot-flag valid-bit-clearing parameter and
// chassis identify. It exists so the native and ipmitool drivers are tested
// (and benchmarked) against a real IPMI v2.0/v1.5 LAN implementation instead
// of a mock. It is test support code: nothing in the plugin binary uses it.
package bmcsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Options configures a simulated BMC.
type Options struct {
	// Username and Password of the one administrator account (user id 2).
	// They default to ADMIN / ADMIN.
	Username, Password string
	// PoweredOn is the initial chassis power state.
	PoweredOn bool
}

// BMC is one running reference BMC. Its chassis state is safe to read from
// tests while drivers talk to it.
type BMC struct {
	// Host is the address the BMC listens on (127.0.0.1).
	Host string
	// Port is its ephemeral UDP port.
	Port int
	// Chassis is the simulated managed system.
	Chassis *Chassis

	bmc    *bmc.BMC
	srv    *server.Server
	conn   *udp.Conn
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	failCC  map[types.CommandKey]types.CompletionCode
	stalls  map[types.CommandKey]<-chan struct{}
	counts  map[types.CommandKey]int
	closeMu sync.Once
}

// Start listens on 127.0.0.1:0 and serves IPMI until Close.
func Start(opts Options) (*BMC, error) {
	if opts.Username == "" {
		opts.Username = "ADMIN"
	}
	if opts.Password == "" {
		opts.Password = "ADMIN"
	}
	ch := &Chassis{on: opts.PoweredOn}
	h := &simHAL{HAL: mock.New(), chassis: ch}
	info := bmc.DeviceInfo{DeviceID: 32, DeviceRevision: 1, FirmwareMajor: 1, IPMIVersion: 0x20, ManufacturerID: 0x000157, ProductID: 1}
	var guid [16]byte
	copy(guid[:], "provision-bmcsim")
	b := bmc.New(info, guid, h)
	u, err := b.Users.Add(2, opts.Username)
	if err != nil {
		return nil, fmt.Errorf("bmcsim: add user: %w", err)
	}
	u.SetPassword([]byte(opts.Password))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}

	conn, err := udp.Listen("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bmcsim: listen: %w", err)
	}
	s := &BMC{
		Host:    "127.0.0.1",
		Chassis: ch,
		bmc:     b,
		conn:    conn,
		done:    make(chan struct{}),
		failCC:  map[types.CommandKey]types.CompletionCode{},
		stalls:  map[types.CommandKey]<-chan struct{}{},
		counts:  map[types.CommandKey]int{},
	}
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		s.Port = ua.Port
	}
	reg := handlers.NewRegistry()
	reg.Use(s.middleware)
	handlers.RegisterAllHandlers(reg)
	s.srv = server.NewServer(b, conn, server.WithHandlerRegistry(reg))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ctx)
	}()
	return s, nil
}

// Addr is host:port of the BMC.
func (s *BMC) Addr() string { return net.JoinHostPort(s.Host, fmt.Sprint(s.Port)) }

// Close stops the server and waits for its loop to end.
func (s *BMC) Close() {
	s.closeMu.Do(func() {
		s.cancel()
		_ = s.srv.Close()
		_ = s.conn.Close()
		<-s.done
	})
}

// Sessions reports the open RMCP+ plus IPMI v1.5 sessions (pending ones included).
func (s *BMC) Sessions() int { return s.bmc.Sessions.Count() + s.bmc.V15Sessions.Count() }

// FailWith makes every later request for cmd answer with completion code cc
// (types.CodeOK restores normal handling), to test a BMC that refuses a command.
func (s *BMC) FailWith(cmd types.Command, cc types.CompletionCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc == types.CodeOK {
		delete(s.failCC, cmd.Key())
		return
	}
	s.failCC[cmd.Key()] = cc
}

// Stall makes every later request for cmd wait until release is closed
// (nil stops stalling), to test callers queued behind a slow BMC.
func (s *BMC) Stall(cmd types.Command, release <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if release == nil {
		delete(s.stalls, cmd.Key())
		return
	}
	s.stalls[cmd.Key()] = release
}

// Count reports how many requests for cmd reached a handler.
func (s *BMC) Count(cmd types.Command) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[cmd.Key()]
}

// middleware counts requests, injects completion codes and records the
// parameters the HAL interface does not carry (valid-bit clearing, raw
// identify request).
func (s *BMC) middleware(next handlers.Handler) handlers.Handler {
	return handlers.HandlerFunc(func(ctx context.Context, hctx *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
		var key types.CommandKey
		if hctx != nil {
			key = hctx.Command.Key()
		}
		s.mu.Lock()
		s.counts[key]++
		cc, fail := s.failCC[key]
		stall := s.stalls[key]
		s.mu.Unlock()
		if stall != nil {
			select {
			case <-stall:
			case <-ctx.Done():
				return nil, types.CompletionCode(0xC3), nil // timeout while processing
			}
		}
		if fail {
			return nil, cc, nil
		}
		switch key {
		case types.CommandSetSystemBootOptions.Key():
			if len(req) >= 2 && types.BootOptionParamSelector(req[0]&0x7f) == types.BootOptionParamSelector_BMCBootFlagValidBitClear {
				s.Chassis.setValidBitClear(req[1])
			}
		case types.CommandChassisIdentify.Key():
			s.Chassis.recordIdentify(req)
		}
		return next.Handle(ctx, hctx, req)
	})
}

// simHAL is the mock HAL with our inspectable chassis.
type simHAL struct {
	*mock.HAL
	chassis *Chassis
}

// Chassis implements hal.HAL.
func (h *simHAL) Chassis() hal.ChassisHAL { return h.chassis }

// Chassis is the simulated managed system: a hal.ChassisHAL with accessors.
type Chassis struct {
	mu            sync.Mutex
	on            bool
	cycles        int
	resets        int
	bootFlags     *types.BootOptionParam_BootFlags
	bootAck       *types.BootOptionParam_BootInfoAcknowledge
	validBitClear *byte
	identify      *Identify
}

// Identify is the last Chassis Identify request.
type Identify struct {
	// Seconds is the interval; 15 when the request carried no data.
	Seconds int
	// Force is the "force identify on" flag (indefinite).
	Force bool
	// Raw is the request data as received.
	Raw []byte
}

// BootFlags is the boot flags parameter (#5) as last written.
type BootFlags struct {
	// Valid, Persistent and EFI are the flags' valid, "all future boots"
	// and EFI boot bits.
	Valid, Persistent, EFI bool
	// Device is the boot device selector.
	Device types.BootDeviceSelector
}

// On reports whether the system is powered.
func (c *Chassis) On() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.on }

// SetOn changes the power state (test setup).
func (c *Chassis) SetOn(on bool) { c.mu.Lock(); c.on = on; c.mu.Unlock() }

// PowerCycles is the number of power cycles performed.
func (c *Chassis) PowerCycles() int { c.mu.Lock(); defer c.mu.Unlock(); return c.cycles }

// BootFlags returns the last boot flags written, if any.
func (c *Chassis) BootFlags() (BootFlags, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bootFlags == nil {
		return BootFlags{}, false
	}
	f := c.bootFlags
	return BootFlags{Valid: f.BootFlagsValid, Persistent: f.Persist, EFI: bool(f.BIOSBootType), Device: f.BootDeviceSelector}, true
}

// ValidBitClear returns the last "boot flag valid bit clearing" byte (param #3).
func (c *Chassis) ValidBitClear() (byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.validBitClear == nil {
		return 0, false
	}
	return *c.validBitClear, true
}

// LastIdentify returns the last Chassis Identify request, if any.
func (c *Chassis) LastIdentify() (Identify, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.identify == nil {
		return Identify{}, false
	}
	return *c.identify, true
}

// Reset forgets boot flags and identify state (between sub-tests).
func (c *Chassis) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bootFlags, c.validBitClear, c.identify = nil, nil, nil
}

func (c *Chassis) setValidBitClear(b byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.validBitClear = &b
}

func (c *Chassis) recordIdentify(req []byte) {
	id := Identify{Seconds: 15, Raw: append([]byte(nil), req...)}
	if len(req) >= 1 {
		id.Seconds = int(req[0])
	}
	if len(req) >= 2 && req[1]&1 != 0 {
		id.Force = true
	}
	c.mu.Lock()
	c.identify = &id
	c.mu.Unlock()
}

// PowerState implements hal.ChassisHAL.
func (c *Chassis) PowerState(context.Context) (bool, error) { return c.On(), nil }

// SetPower implements hal.ChassisHAL.
func (c *Chassis) SetPower(_ context.Context, on bool) error { c.SetOn(on); return nil }

// PowerCycle implements hal.ChassisHAL: off then on.
func (c *Chassis) PowerCycle(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		// IPMI §28.3: power cycle on a powered-off system is a no-op or error
		// depending on the implementation; real BMCs commonly refuse it.
		return errors.New("chassis is powered off")
	}
	c.cycles++
	c.on = true
	return nil
}

// ColdReset implements hal.ChassisHAL.
func (c *Chassis) ColdReset(context.Context) error {
	c.mu.Lock()
	c.resets++
	c.mu.Unlock()
	return nil
}

// WarmReset implements hal.ChassisHAL.
func (c *Chassis) WarmReset(ctx context.Context) error { return c.ColdReset(ctx) }

// Identify implements hal.ChassisHAL (the raw request is recorded by the middleware).
func (c *Chassis) Identify(context.Context, uint8) error { return nil }

// IntrusionState implements hal.ChassisHAL.
func (c *Chassis) IntrusionState(context.Context) (bool, error) { return false, nil }

// SetBootFlags implements hal.ChassisHAL.
func (c *Chassis) SetBootFlags(_ context.Context, f *types.BootOptionParam_BootFlags) error {
	cp := *f
	c.mu.Lock()
	c.bootFlags = &cp
	c.mu.Unlock()
	return nil
}

// GetBootFlags implements hal.ChassisHAL.
func (c *Chassis) GetBootFlags(context.Context) (*types.BootOptionParam_BootFlags, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bootFlags == nil {
		return &types.BootOptionParam_BootFlags{}, nil
	}
	cp := *c.bootFlags
	return &cp, nil
}

// SetBootInfoAcknowledge implements hal.ChassisHAL.
func (c *Chassis) SetBootInfoAcknowledge(_ context.Context, a *types.BootOptionParam_BootInfoAcknowledge) error {
	cp := *a
	c.mu.Lock()
	c.bootAck = &cp
	c.mu.Unlock()
	return nil
}

// GetBootInfoAcknowledge implements hal.ChassisHAL.
func (c *Chassis) GetBootInfoAcknowledge(context.Context) (*types.BootOptionParam_BootInfoAcknowledge, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bootAck == nil {
		return &types.BootOptionParam_BootInfoAcknowledge{}, nil
	}
	cp := *c.bootAck
	return &cp, nil
}
