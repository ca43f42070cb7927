// Package redfish is the ipmi plugin's "redfish" driver, built on
// github.com/stmcginnis/gofish v0.23.0. Per action it logs in with a Redfish
// session (X-Auth-Token), works on the first ComputerSystem and logs out, as
// DRP's driver did: power with DRP's ResetType preference chains, boot
// source override Once/Continuous × Pxe/Hdd/Cd (with the UEFI/Legacy mode
// when the system exposes one), IndicatorLED (or LocationIndicatorActive),
// the health summary, the ten get* inventory actions, and virtual media
// insert/eject/status with DRP's HPE and Dell boot variants. Every HTTP
// request has a timeout; idempotent requests are retried a bounded number
// of times when the BMC does not answer.
package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
)

// Mode is the ipmi/mode value served by this driver.
const Mode = "redfish"

// DefaultPort is the HTTPS port used when ipmi/port-redfish is 0.
const DefaultPort = 443

// Options tunes the driver; zero values get defaults.
type Options struct {
	// Timeout bounds each HTTP request, TLS handshake included (default 20s).
	Timeout time.Duration
	// Retries is how many times an unanswered GET is re-sent (default 2).
	Retries int
	// PollInterval is how often power state is re-read while waiting for a
	// system to power off during a fallback power cycle (default 1s).
	PollInterval time.Duration
	// Logger receives background errors (identify timers); nil discards.
	Logger *slog.Logger
}

// Driver is the Redfish driver. It is safe for concurrent use.
type Driver struct {
	opts Options

	mu     sync.Mutex
	timers map[string]*time.Timer // identify "off" timers per BMC
	closed bool
}

// New returns a driver; Close stops its pending identify timers.
func New(opts Options) *Driver {
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 2
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{opts: opts, timers: map[string]*time.Timer{}}
}

// Mode implements bmc.Driver.
func (d *Driver) Mode() string { return Mode }

// Close cancels pending identify timers.
func (d *Driver) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for k, t := range d.timers {
		t.Stop()
		delete(d.timers, k)
	}
}

// session is one logged-in connection and the target system.
type session struct {
	c   *gofish.APIClient
	sys *schemas.ComputerSystem
	raw map[string]any // the system resource as the BMC sent it
	t   bmc.Target
}

// Do implements bmc.Driver.
func (d *Driver) Do(ctx context.Context, req *bmc.Request) (any, *models.Error) {
	h := handlerFor(req.Command)
	if h == nil {
		return nil, bmc.NotImplemented(Mode, req.Command, "")
	}
	s, merr := d.open(ctx, req.Target)
	if merr != nil {
		return nil, merr
	}
	defer s.c.Logout()
	out, err := h(ctx, d, s, req)
	if err != nil {
		return nil, classify(ctx, req.Target, err)
	}
	return out, nil
}

type handler func(ctx context.Context, d *Driver, s *session, req *bmc.Request) (any, error)

// handlerFor returns the handler of a machine action, nil when Redfish
// has none.
func handlerFor(cmd string) handler {
	switch cmd {
	case bmc.PowerStatus:
		return powerStatus
	case bmc.PowerOn:
		return powerOn
	case bmc.PowerOff:
		return powerOff
	case bmc.PowerCycle:
		return powerCycle
	case bmc.NextBootCD:
		return boot("Once", "Cd")
	case bmc.NextBootPXE:
		return boot("Once", "Pxe")
	case bmc.NextBootDisk:
		return boot("Once", "Hdd")
	case bmc.ForceBootPXE:
		return boot("Continuous", "Pxe")
	case bmc.ForceBootDisk:
		return boot("Continuous", "Hdd")
	case bmc.Identify:
		return identify
	case bmc.Status:
		return status
	case bmc.GetInfo:
		return func(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) { return s.raw, nil }
	case bmc.GetBios:
		return linked("Bios", false)
	case bmc.GetMemory:
		return linked("Memory", true)
	case bmc.GetStorage:
		return linked("Storage", true)
	case bmc.GetSimpleStorage:
		return linked("SimpleStorage", true)
	case bmc.GetProcessor:
		return linked("Processors", true)
	case bmc.GetNetworkInterfaces:
		return linked("NetworkInterfaces", true)
	case bmc.GetEthernetInterfaces:
		return linked("EthernetInterfaces", true)
	case bmc.GetSecureBoot:
		return secureBoot
	case bmc.GetBoot:
		return func(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) { return s.raw["Boot"], nil }
	case bmc.MountVirtualMedia:
		return mountMedia
	case bmc.UnmountVirtualMedia:
		return unmountMedia
	case bmc.StatusVirtualMedia:
		return statusMedia
	}
	return nil
}

// open logs in and loads the first system.
func (d *Driver) open(ctx context.Context, t bmc.Target) (*session, *models.Error) {
	hc := bmc.NewHTTPClient(d.opts.Timeout, d.opts.Retries)
	c, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint: "https://" + t.HostPort(DefaultPort), Username: t.Username, Password: t.Password,
		HTTPClient: hc, NoModifyTransport: true, ReuseConnections: true,
	})
	if err != nil {
		hc.CloseIdleConnections()
		return nil, classify(ctx, t, fmt.Errorf("redfish login: %w", err))
	}
	systems, err := c.Service.Systems()
	if err == nil && len(systems) == 0 {
		err = errors.New("the service lists no ComputerSystem")
	}
	if err != nil {
		c.Logout()
		return nil, classify(ctx, t, fmt.Errorf("redfish systems: %w", err))
	}
	s := &session{c: c, sys: systems[0], t: t}
	if err := json.Unmarshal(s.sys.RawData, &s.raw); err != nil {
		c.Logout()
		return nil, bmc.BMCFailed(t, "the ComputerSystem resource is not JSON: "+err.Error())
	}
	return s, nil
}

// classify maps gofish/HTTP errors to the plugin's codes.
func classify(ctx context.Context, t bmc.Target, err error) *models.Error {
	var rf *schemas.Error
	if errors.As(err, &rf) && rf.HTTPReturnedStatusCode != 0 {
		msg := redfishMessage(rf)
		if rf.HTTPReturnedStatusCode == http.StatusUnauthorized || rf.HTTPReturnedStatusCode == http.StatusForbidden {
			return bmc.Unauthorized(t, fmt.Sprintf("HTTP %d: %s", rf.HTTPReturnedStatusCode, msg))
		}
		return bmc.BMCFailed(t, fmt.Sprintf("HTTP %d: %s", rf.HTTPReturnedStatusCode, msg))
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return bmc.NoAnswer(t, err.Error())
	}
	return bmc.BMCFailed(t, err.Error())
}

// redfishMessage extracts the human message of a Redfish error body.
func redfishMessage(e *schemas.Error) string {
	var parts []string
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	for _, m := range e.ExtendedInfos {
		if m.Message != "" && m.Message != e.Message {
			parts = append(parts, m.Message)
		}
	}
	if e.Code != "" {
		parts = append(parts, "("+e.Code+")")
	}
	if len(parts) == 0 {
		return e.Error()
	}
	return strings.Join(parts, " ")
}

func powerOf(ps schemas.PowerState) string {
	switch ps {
	case schemas.OnPowerState, schemas.PoweringOnPowerState:
		return "on"
	case schemas.OffPowerState, schemas.PoweringOffPowerState:
		return "off"
	}
	return "unknown"
}

func powerStatus(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	return bmc.PowerState{Power: powerOf(s.sys.PowerState), Raw: string(s.sys.PowerState)}, nil
}

// onChain, offChain and cycleChain are DRP's ResetType preference chains,
// best first.
func onChain() []schemas.ResetType {
	return []schemas.ResetType{schemas.ForceOnResetType, schemas.OnResetType, schemas.PushPowerButtonResetType, schemas.ForceRestartResetType}
}

func offChain() []schemas.ResetType {
	return []schemas.ResetType{schemas.ForceOffResetType, "Off", schemas.GracefulShutdownResetType, schemas.PushPowerButtonResetType, schemas.ForceRestartResetType}
}

func cycleChain() []schemas.ResetType {
	return []schemas.ResetType{schemas.PowerCycleResetType, schemas.ForceRestartResetType}
}

// pick returns the first chain entry the system supports; when the system
// advertises nothing, fallback.
func pick(s *session, chain []schemas.ResetType, fallback schemas.ResetType) (schemas.ResetType, bool, error) {
	supported, err := s.sys.GetSupportedResetTypes()
	if err != nil {
		return "", false, fmt.Errorf("reset types: %w", err)
	}
	if len(supported) == 0 {
		return fallback, fallback != "", nil
	}
	for _, rt := range chain {
		if slices.Contains(supported, rt) {
			return rt, true, nil
		}
	}
	return "", false, nil
}

func reset(s *session, chain []schemas.ResetType, fallback schemas.ResetType, what string) (any, error) {
	rt, ok, err := pick(s, chain, fallback)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the system supports none of the ResetTypes %v needed to %s", chain, what)
	}
	if _, err := s.sys.Reset(rt); err != nil {
		return nil, fmt.Errorf("reset %s: %w", rt, err)
	}
	return map[string]any{"ResetType": string(rt)}, nil
}

func powerOn(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	if s.sys.PowerState == schemas.OnPowerState {
		return map[string]any{"PowerState": "On", "Skipped": true}, nil
	}
	return reset(s, onChain(), schemas.OnResetType, "power on")
}

func powerOff(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	if s.sys.PowerState == schemas.OffPowerState {
		return map[string]any{"PowerState": "Off", "Skipped": true}, nil
	}
	return reset(s, offChain(), schemas.ForceOffResetType, "power off")
}

// powerCycle restarts a running system (PowerCycle, else ForceRestart, else
// off + wait until off + on) and powers on a stopped one.
func powerCycle(ctx context.Context, d *Driver, s *session, req *bmc.Request) (any, error) {
	if s.sys.PowerState == schemas.OffPowerState {
		return powerOn(ctx, d, s, req)
	}
	if rt, ok, err := pick(s, cycleChain(), schemas.ForceRestartResetType); err != nil {
		return nil, err
	} else if ok {
		if _, err := s.sys.Reset(rt); err != nil {
			return nil, fmt.Errorf("reset %s: %w", rt, err)
		}
		return map[string]any{"ResetType": string(rt)}, nil
	}
	if _, err := powerOff(ctx, d, s, req); err != nil {
		return nil, err
	}
	for {
		sys, err := schemas.GetComputerSystem(s.c, s.sys.ODataID)
		if err != nil {
			return nil, fmt.Errorf("re-read power state: %w", err)
		}
		if sys.PowerState == schemas.OffPowerState {
			s.sys = sys
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the system to power off: %w", ctx.Err())
		case <-time.After(d.opts.PollInterval):
		}
	}
	return reset(s, onChain(), schemas.OnResetType, "power on")
}

// patch sends a PATCH to uri with the resource's ETag (when it has one).
func patch(s *session, uri string, headers map[string]string, body any) error {
	resp, err := s.c.PatchWithHeaders(uri, body, headers)
	if resp != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return err
}

func bootPayload(s *session, enabled, target string, uefi bool) map[string]any {
	b := map[string]any{"BootSourceOverrideEnabled": enabled, "BootSourceOverrideTarget": target}
	if s.sys.Boot.BootSourceOverrideMode != "" {
		// Only systems that expose the property accept it.
		if uefi {
			b["BootSourceOverrideMode"] = "UEFI"
		} else {
			b["BootSourceOverrideMode"] = "Legacy"
		}
	}
	return b
}

func boot(enabled, target string) handler {
	return func(_ context.Context, _ *Driver, s *session, req *bmc.Request) (any, error) {
		b := bootPayload(s, enabled, target, req.UEFI())
		if err := patch(s, s.sys.ODataID, s.sys.Headers(), map[string]any{"Boot": b}); err != nil {
			return nil, fmt.Errorf("set boot override: %w", err)
		}
		return map[string]any{"Boot": b}, nil
	}
}

// ledPayload turns identify on or off with whichever property the system has.
func ledPayload(raw map[string]any, on bool) map[string]any {
	if _, hasLED := raw["IndicatorLED"]; !hasLED {
		if _, hasLoc := raw["LocationIndicatorActive"]; hasLoc {
			return map[string]any{"LocationIndicatorActive": on}
		}
	}
	if on {
		return map[string]any{"IndicatorLED": "Blinking"}
	}
	return map[string]any{"IndicatorLED": "Off"}
}

// identify blinks the indicator; Redfish has no duration, so for N > 0 the
// driver turns it off again after N seconds (N <= 0: until told otherwise).
func identify(_ context.Context, d *Driver, s *session, req *bmc.Request) (any, error) {
	body := ledPayload(s.raw, true)
	if err := patch(s, s.sys.ODataID, s.sys.Headers(), body); err != nil {
		return nil, fmt.Errorf("set indicator: %w", err)
	}
	d.scheduleOff(s.t, s.raw, req.IdentifySeconds)
	out := map[string]any{"Seconds": max(req.IdentifySeconds, 0)}
	for k, v := range body {
		out[k] = v
	}
	return out, nil
}

// scheduleOff replaces the pending "off" timer of the BMC.
func (d *Driver) scheduleOff(t bmc.Target, raw map[string]any, secs int) {
	key := t.HostPort(DefaultPort)
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.timers[key]; old != nil {
		old.Stop()
		delete(d.timers, key)
	}
	if secs <= 0 || d.closed {
		return
	}
	off := ledPayload(raw, false)
	var tm *time.Timer
	tm = time.AfterFunc(time.Duration(secs)*time.Second, func() {
		d.mu.Lock()
		if d.timers[key] != tm {
			d.mu.Unlock()
			return
		}
		delete(d.timers, key)
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 3*d.opts.Timeout)
		defer cancel()
		s, merr := d.open(ctx, t)
		if merr != nil {
			d.opts.Logger.Warn("identify: could not turn the indicator off", "bmc", t, "error", merr)
			return
		}
		defer s.c.Logout()
		if err := patch(s, s.sys.ODataID, s.sys.Headers(), off); err != nil {
			d.opts.Logger.Warn("identify: could not turn the indicator off", "bmc", t, "error", err)
		}
	})
	d.timers[key] = tm
}

// getJSON fetches one resource as a map.
func getJSON(s *session, uri string) (map[string]any, error) {
	resp, err := s.c.Get(uri)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", uri, err)
	}
	return m, nil
}

// odataID returns m[key]["@odata.id"].
func odataID(m map[string]any, key string) string {
	l, _ := m[key].(map[string]any)
	id, _ := l["@odata.id"].(string)
	return id
}

// members fetches every member of a collection.
func members(s *session, uri string) ([]map[string]any, error) {
	coll, err := getJSON(s, uri)
	if err != nil {
		return nil, err
	}
	list, _ := coll["Members"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, m := range list {
		mm, _ := m.(map[string]any)
		id, _ := mm["@odata.id"].(string)
		if id == "" {
			continue
		}
		if len(mm) > 1 { // already expanded
			out = append(out, mm)
			continue
		}
		r, err := getJSON(s, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// linked returns the resource (or collection members) the system links as key.
func linked(key string, collection bool) handler {
	return func(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
		uri := odataID(s.raw, key)
		if uri == "" {
			if collection {
				return []map[string]any{}, nil
			}
			return nil, fmt.Errorf("the system does not link a %s resource", key)
		}
		if collection {
			return members(s, uri)
		}
		return getJSON(s, uri)
	}
}

func secureBoot(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	uri := odataID(s.raw, "SecureBoot")
	if uri == "" {
		return map[string]any{"SecureBootEnable": false}, nil
	}
	return getJSON(s, uri)
}

func healthOf(m map[string]any) string {
	st, _ := m["Status"].(map[string]any)
	h, _ := st["Health"].(string)
	return h
}

// collectionHealth is DRP's aggregate: the first non-OK member health,
// "Critical" when the collection cannot be read, otherwise "OK".
func collectionHealth(s *session, key string) string {
	uri := odataID(s.raw, key)
	if uri == "" {
		return "OK"
	}
	ms, err := members(s, uri)
	if err != nil {
		return "Critical"
	}
	for _, m := range ms {
		if h := healthOf(m); h != "" && h != "OK" {
			return h
		}
	}
	return "OK"
}

func status(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	sub := func(k string) string {
		m, _ := s.raw[k].(map[string]any)
		return healthOf(m)
	}
	return map[string]string{
		"Status":              healthOf(s.raw),
		"ProcessorStatus":     sub("ProcessorSummary"),
		"MemoryStatus":        sub("MemorySummary"),
		"EthernetStatus":      collectionHealth(s, "EthernetInterfaces"),
		"StorageStatus":       collectionHealth(s, "Storage"),
		"SimpleStorageStatus": collectionHealth(s, "SimpleStorage"),
	}, nil
}

// media finds the first manager's CD/DVD virtual media (DRP assumed it is
// member 1; we look at MediaTypes first and fall back to that guess).
func media(s *session) (*schemas.Manager, *schemas.VirtualMedia, error) {
	mgrs, err := s.c.Service.Managers()
	if err != nil {
		return nil, nil, fmt.Errorf("managers: %w", err)
	}
	if len(mgrs) == 0 {
		return nil, nil, errors.New("the service lists no Manager")
	}
	vms, err := mgrs[0].VirtualMedia()
	if err != nil {
		return nil, nil, fmt.Errorf("virtual media: %w", err)
	}
	for _, vm := range vms {
		if slices.Contains(vm.MediaTypes, schemas.CDVirtualMediaType) || slices.Contains(vm.MediaTypes, schemas.DVDVirtualMediaType) {
			return mgrs[0], vm, nil
		}
	}
	switch {
	case len(vms) > 1:
		return mgrs[0], vms[1], nil
	case len(vms) == 1:
		return mgrs[0], vms[0], nil
	}
	return nil, nil, errors.New("the manager offers no virtual media")
}

func statusMedia(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	_, vm, err := media(s)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Inserted": vm.Inserted != nil && *vm.Inserted, "Image": vm.Image}, nil
}

func unmountMedia(_ context.Context, _ *Driver, s *session, _ *bmc.Request) (any, error) {
	_, vm, err := media(s)
	if err != nil {
		return nil, err
	}
	if _, err := vm.EjectMedia(); err != nil {
		return nil, fmt.Errorf("eject media: %w", err)
	}
	return "Success", nil
}

// dellBootOnceCD is DRP's iDRAC system configuration: boot once from the virtual DVD.
const dellBootOnceCD = `<SystemConfiguration><Component FQDD="iDRAC.Embedded.1"><Attribute Name="ServerBoot.1#BootOnce">Enabled</Attribute><Attribute Name="ServerBoot.1#FirstBootDevice">VCD-DVD</Attribute></Component></SystemConfiguration>`

func mountMedia(_ context.Context, _ *Driver, s *session, req *bmc.Request) (any, error) {
	mgr, vm, err := media(s)
	if err != nil {
		return nil, err
	}
	vendor := strings.ToLower(s.c.Service.Vendor)
	dell := strings.Contains(vm.ODataID, "iDRAC") || vendor == "dell"
	hpe := !dell && (vendor == "hpe" || vendor == "hp")
	if vm.Inserted != nil && *vm.Inserted {
		// InsertMedia is refused while media is inserted.
		if _, err := vm.EjectMedia(); err != nil {
			return nil, fmt.Errorf("eject the previous media: %w", err)
		}
	}
	if hpe && req.VirtualMediaBoot {
		body := map[string]any{"Image": req.VirtualMediaURL, "Oem": map[string]any{"Hpe": map[string]any{"BootOnNextServerReset": true}}}
		if err := patch(s, vm.ODataID, vm.Headers(), body); err != nil {
			return nil, fmt.Errorf("HPE insert media: %w", err)
		}
		return "Success", nil
	}
	if _, err := vm.InsertMedia(&schemas.VirtualMediaInsertMediaParameters{Image: req.VirtualMediaURL}); err != nil {
		return nil, fmt.Errorf("insert media: %w", err)
	}
	if !req.VirtualMediaBoot {
		return "Success", nil
	}
	if dell {
		body := map[string]any{"ShareParameters": map[string]any{"Target": "ALL"}, "ImportBuffer": dellBootOnceCD}
		resp, err := s.c.Post(mgr.ODataID+"/Actions/Oem/EID_674_Manager.ImportSystemConfiguration", body)
		if resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("Dell boot once from virtual DVD: %w", err)
		}
		return "Success", nil
	}
	// Generic Redfish: boot once from the (virtual) CD.
	b := bootPayload(s, "Once", "Cd", req.UEFI())
	if err := patch(s, s.sys.ODataID, s.sys.Headers(), map[string]any{"Boot": b}); err != nil {
		return nil, fmt.Errorf("boot once from the virtual CD: %w", err)
	}
	return "Success", nil
}
