// Package metalfake is an in-process fake of the Equinix Metal API endpoints
// the packet-ipmi plugin uses, for tests. Equinix Metal ended in June 2026,
// so there is no real service to test against; the fake keeps device state
// and rejects what the real API rejects: a missing or wrong X-Auth-Token
// (401), an unknown project or device (404), a body that is not JSON (400),
// and an invalid action type or incomplete device (422).
//
// It speaks plain JSON on the wire, independently of the SDK's Go types, so
// tests also check that the plugin's requests are what the API expects.
package metalfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// BasePath is where the fake mounts the API, as the public endpoint does
// (https://api.equinix.com/metal/v1).
const BasePath = "/metal/v1"

// Device is the fake's state of one device.
type Device struct {
	// ID is the device UUID.
	ID string
	// Hostname is the device's host name.
	Hostname string
	// State is Metal's provisioning state (queued, provisioning, active...).
	State string
	// Plan is the hardware plan slug.
	Plan string
	// Facility is the facility code.
	Facility string
	// ProjectID is the owning project.
	ProjectID string
	// OperatingSystem is the OS slug.
	OperatingSystem string
	// BillingCycle is e.g. hourly.
	BillingCycle string
	// IPXEScriptURL is the custom iPXE script; PATCH can change it.
	IPXEScriptURL string
	// AlwaysPXE makes the device PXE boot every time; PATCH can change it.
	AlwaysPXE bool
	// Powered is the power state; power_on/power_off/reboot change it.
	Powered bool
	// Reboots counts reboot actions.
	Reboots int
	// Actions lists every action type performed, in order.
	Actions []string
	// Deleted is true once DELETE succeeded (the device then answers 404).
	Deleted bool
	// PublicIPv4 is the public address, shown once the device is active.
	PublicIPv4 string
	// MACs are the port addresses, shown once the device is active.
	MACs []string
	// gets counts GETs of this device while it provisions.
	gets int
}

// Request is one request the fake received.
type Request struct {
	// Method, Path and Query are the request line, the query string raw.
	Method, Path, Query string
	// ConsumerToken is the X-Consumer-Token header.
	ConsumerToken string
	// Status is what the fake answered.
	Status int
}

// Server is the fake API. Create it with New; it is safe for concurrent use.
type Server struct {
	*httptest.Server
	token string

	mu       sync.Mutex
	projects []string
	devices  map[string]*Device
	order    []string
	reqs     []Request
	// activateAfter is how many GETs a new device needs to become active;
	// negative means never.
	activateAfter int
	maxPerPage    int
	failNext      []int
	stallNext     int
	done          chan struct{}
	closeOnce     sync.Once
}

// New starts a TLS fake that accepts the API key token.
func New(token string) *Server {
	s := newServer(token)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// NewPlain starts the fake on plain http (127.0.0.1), for a plugin binary
// that cannot be given the fake's certificate.
func NewPlain(token string) *Server {
	s := newServer(token)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func newServer(token string) *Server {
	return &Server{token: token, devices: map[string]*Device{}, activateAfter: 1, maxPerPage: 1000, done: make(chan struct{})}
}

// Close releases stalled requests and shuts the server down.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.Server.Close()
}

// URL returns the API base URL to give the plugin (packet/api-url).
func (s *Server) URL() string { return s.Server.URL + BasePath }

// AddProject adds a project; projects are listed in the order added.
func (s *Server) AddProject(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.projects = append(s.projects, id)
}

// AddDevice adds an existing device (normally active and powered).
func (s *Server) AddDevice(d Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := d
	cp.MACs = append([]string(nil), d.MACs...)
	s.devices[d.ID] = &cp
	s.order = append(s.order, d.ID)
}

// SetActivateAfter sets how many GETs a new device needs to become active
// (0: active at once; negative: never).
func (s *Server) SetActivateAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activateAfter = n
}

// SetMaxPerPage caps per_page so tests exercise pagination.
func (s *Server) SetMaxPerPage(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxPerPage = n
}

// FailNext makes the next len(statuses) requests fail with these statuses.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, statuses...)
}

// StallNext makes the next n requests hang until the client gives up (or
// the server closes); the connection is then dropped with no response.
func (s *Server) StallNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stallNext += n
}

// Device returns a copy of a device's state (deleted ones included).
func (s *Server) Device(id string) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return Device{}, false
	}
	cp := *d
	cp.MACs = append([]string(nil), d.MACs...)
	cp.Actions = append([]string(nil), d.Actions...)
	return cp, true
}

// Devices returns copies of all devices in creation order.
func (s *Server) Devices() []Device {
	s.mu.Lock()
	ids := append([]string(nil), s.order...)
	s.mu.Unlock()
	out := make([]Device, 0, len(ids))
	for _, id := range ids {
		d, _ := s.Device(id)
		out = append(out, d)
	}
	return out
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// apiError is the Metal error body.
type apiError struct {
	Errors []string `json:"errors"`
}

// fail answers with Metal's error body {"errors": [...]} and returns
// status for the request log.
func fail(w http.ResponseWriter, status int, errs ...string) int {
	writeJSON(w, status, apiError{Errors: errs})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, ConsumerToken: r.Header.Get("X-Consumer-Token")}
	// Deferred so a stalled request, which ends by aborting the
	// connection (a panic), is still listed with Status 0.
	defer func() {
		s.mu.Lock()
		s.reqs = append(s.reqs, rec)
		s.mu.Unlock()
	}()
	rec.Status = s.handle(w, r)
}

// handle answers one request and returns the status it wrote.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) int {
	s.mu.Lock()
	stall := s.stallNext > 0
	if stall {
		s.stallNext--
	}
	injected := 0
	if !stall && len(s.failNext) > 0 {
		injected, s.failNext = s.failNext[0], s.failNext[1:]
	}
	s.mu.Unlock()
	if stall {
		// Read the body first: the server notices a client that gave up
		// only once the request body is consumed.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		// Abort the connection without a response, as an API that never
		// answers looks. Returning normally would make net/http send an
		// implicit empty 200 OK, which can still reach a client whose
		// timeout is just firing and read as success.
		panic(http.ErrAbortHandler)
	}
	if injected != 0 {
		return fail(w, injected, "injected failure")
	}
	switch tok := r.Header.Get("X-Auth-Token"); {
	case tok == "":
		return fail(w, http.StatusUnauthorized, "Invalid authentication token")
	case tok != s.token:
		return fail(w, http.StatusUnauthorized, "Invalid authentication token")
	}
	path, ok := strings.CutPrefix(r.URL.Path, BasePath+"/")
	if !ok {
		return fail(w, http.StatusNotFound, "Not found")
	}
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 1 && parts[0] == "projects" && r.Method == http.MethodGet:
		return s.listProjects(w, r)
	case len(parts) == 3 && parts[0] == "projects" && parts[2] == "devices":
		switch r.Method {
		case http.MethodGet:
			return s.listDevices(w, r, parts[1])
		case http.MethodPost:
			return s.createDevice(w, r, parts[1])
		}
	case len(parts) == 2 && parts[0] == "devices":
		switch r.Method {
		case http.MethodGet:
			return s.getDevice(w, r, parts[1])
		case http.MethodPut:
			return s.updateDevice(w, r, parts[1])
		case http.MethodDelete:
			return s.deleteDevice(w, parts[1])
		}
	case len(parts) == 3 && parts[0] == "devices" && parts[2] == "actions" && r.Method == http.MethodPost:
		return s.action(w, r, parts[1])
	}
	return fail(w, http.StatusNotFound, fmt.Sprintf("Not found: %s %s", r.Method, r.URL.Path))
}

// page cuts a list per the page/per_page query and returns the meta block.
func (s *Server) page(r *http.Request, n int) (lo, hi int, meta map[string]any) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	s.mu.Lock()
	maxPer := s.maxPerPage
	s.mu.Unlock()
	if per <= 0 || per > maxPer {
		per = min(20, maxPer)
		if r.URL.Query().Get("per_page") != "" {
			per = maxPer
		}
	}
	pg, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if pg <= 0 {
		pg = 1
	}
	last := max(1, (n+per-1)/per)
	lo = min(n, (pg-1)*per)
	hi = min(n, lo+per)
	return lo, hi, map[string]any{"current_page": pg, "last_page": last, "total": n}
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) int {
	s.mu.Lock()
	ids := append([]string(nil), s.projects...)
	s.mu.Unlock()
	lo, hi, meta := s.page(r, len(ids))
	out := []map[string]any{}
	for _, id := range ids[lo:hi] {
		out = append(out, map[string]any{"id": id, "name": "project " + id, "href": BasePath + "/projects/" + id})
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out, "meta": meta})
	return http.StatusOK
}

func (s *Server) hasProject(id string) bool {
	for _, p := range s.projects {
		if p == id {
			return true
		}
	}
	return false
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, project string) int {
	s.mu.Lock()
	if !s.hasProject(project) {
		s.mu.Unlock()
		return fail(w, http.StatusNotFound, "Not found")
	}
	var list []map[string]any
	for _, id := range s.order {
		d := s.devices[id]
		if d.ProjectID == project && !d.Deleted {
			list = append(list, d.json(includes(r)))
		}
	}
	s.mu.Unlock()
	lo, hi, meta := s.page(r, len(list))
	out := append([]map[string]any{}, list[lo:hi]...)
	writeJSON(w, http.StatusOK, map[string]any{"devices": out, "meta": meta})
	return http.StatusOK
}

func includes(r *http.Request) map[string]bool {
	inc := map[string]bool{}
	for _, v := range strings.Split(r.URL.Query().Get("include"), ",") {
		inc[v] = true
	}
	return inc
}

// json renders a device as the API does; related objects are expanded only
// when included, otherwise they are bare hrefs.
func (d *Device) json(inc map[string]bool) map[string]any {
	out := map[string]any{
		"id": d.ID, "hostname": d.Hostname, "state": d.State, "always_pxe": d.AlwaysPXE,
		"billing_cycle": d.BillingCycle, "href": BasePath + "/devices/" + d.ID,
		"operating_system": map[string]any{"slug": d.OperatingSystem},
		"sos":              "sos." + d.Facility + ".platformequinix.com",
	}
	if d.IPXEScriptURL != "" {
		out["ipxe_script_url"] = d.IPXEScriptURL
	}
	if inc["plan"] {
		out["plan"] = map[string]any{"slug": d.Plan, "name": d.Plan}
	} else {
		out["plan"] = map[string]any{"href": "/metal/v1/plans/" + d.Plan}
	}
	if inc["facility"] {
		out["facility"] = map[string]any{"code": d.Facility, "name": d.Facility}
	} else {
		out["facility"] = map[string]any{"href": "/metal/v1/facilities/" + d.Facility}
	}
	if inc["project"] {
		out["project"] = map[string]any{"id": d.ProjectID, "href": BasePath + "/projects/" + d.ProjectID}
	} else {
		out["project"] = map[string]any{"href": BasePath + "/projects/" + d.ProjectID}
	}
	ips := []map[string]any{{"address": "10.1.2.3", "address_family": 4, "public": false}}
	if d.PublicIPv4 != "" {
		ips = append(ips, map[string]any{"address": d.PublicIPv4, "address_family": 4, "public": true})
	}
	out["ip_addresses"] = ips
	ports := []map[string]any{{"type": "NetworkBondPort", "name": "bond0", "data": map[string]any{"bonded": true}}}
	for i, mac := range d.MACs {
		ports = append(ports, map[string]any{"type": "NetworkPort", "name": fmt.Sprintf("eth%d", i), "data": map[string]any{"mac": mac}})
	}
	out["network_ports"] = ports
	return out
}

// decode reads a JSON object body. On failure it answers 415 or 400 itself
// and returns that status; it returns 0 on success.
func decode(w http.ResponseWriter, r *http.Request, v any) int {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json, got "+ct)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return fail(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
	}
	return 0
}

// createBody is the device-create request (facility form).
type createBody struct {
	Hostname        string          `json:"hostname"`
	Facility        json.RawMessage `json:"facility"`
	Metro           string          `json:"metro"`
	Plan            string          `json:"plan"`
	OperatingSystem string          `json:"operating_system"`
	BillingCycle    string          `json:"billing_cycle"`
	IPXEScriptURL   string          `json:"ipxe_script_url"`
	AlwaysPXE       bool            `json:"always_pxe"`
	Userdata        string          `json:"userdata"`
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request, project string) int {
	var b createBody
	if st := decode(w, r, &b); st != 0 {
		return st
	}
	var facilities []string
	if len(b.Facility) > 0 {
		if err := json.Unmarshal(b.Facility, &facilities); err != nil {
			var one string
			if json.Unmarshal(b.Facility, &one) == nil {
				facilities = []string{one}
			}
		}
	}
	var errs []string
	if b.Plan == "" {
		errs = append(errs, "plan is required")
	}
	if b.OperatingSystem == "" {
		errs = append(errs, "operating_system is required")
	}
	if len(facilities) == 0 && b.Metro == "" {
		errs = append(errs, "facility or metro is required")
	}
	switch b.BillingCycle {
	case "", "hourly", "daily", "monthly", "yearly":
	default:
		errs = append(errs, "billing_cycle is invalid")
	}
	if b.OperatingSystem == "custom_ipxe" && b.IPXEScriptURL == "" && b.Userdata == "" {
		errs = append(errs, "custom_ipxe requires ipxe_script_url or userdata")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasProject(project) {
		return fail(w, http.StatusNotFound, "Project not found")
	}
	if len(errs) > 0 {
		return fail(w, http.StatusUnprocessableEntity, errs...)
	}
	d := &Device{
		ID: newID(), Hostname: b.Hostname, State: "queued", Plan: b.Plan, ProjectID: project,
		OperatingSystem: b.OperatingSystem, BillingCycle: b.BillingCycle, IPXEScriptURL: b.IPXEScriptURL,
		AlwaysPXE: b.AlwaysPXE,
	}
	if b.BillingCycle == "" {
		d.BillingCycle = "hourly"
	}
	if len(facilities) > 0 {
		d.Facility = facilities[0]
	}
	if s.activateAfter == 0 {
		d.activate()
	}
	s.devices[d.ID] = d
	s.order = append(s.order, d.ID)
	writeJSON(w, http.StatusCreated, d.json(nil))
	return http.StatusCreated
}

// activate finishes provisioning: the device is active, powered, with a
// public address and MACs.
func (d *Device) activate() {
	d.State = "active"
	d.Powered = true
	n := len(d.ID)
	d.PublicIPv4 = "147.75.0." + strconv.Itoa(int(d.ID[n-1])%200+1)
	d.MACs = []string{"b8:ce:f6:00:00:" + d.ID[n-2:], "b8:ce:f6:00:01:" + d.ID[n-2:]}
}

// live returns a device that exists and is not deleted (lock held).
func (s *Server) live(id string) *Device {
	d, ok := s.devices[id]
	if !ok || d.Deleted {
		return nil
	}
	return d
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.live(id)
	if d == nil {
		return fail(w, http.StatusNotFound, "Not found")
	}
	if d.State != "active" && d.State != "inactive" && s.activateAfter > 0 {
		d.gets++
		if d.gets >= s.activateAfter {
			d.activate()
		} else {
			d.State = "provisioning"
		}
	}
	writeJSON(w, http.StatusOK, d.json(includes(r)))
	return http.StatusOK
}

func (s *Server) updateDevice(w http.ResponseWriter, r *http.Request, id string) int {
	var b map[string]json.RawMessage
	if st := decode(w, r, &b); st != 0 {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.live(id)
	if d == nil {
		return fail(w, http.StatusNotFound, "Not found")
	}
	if raw, ok := b["ipxe_script_url"]; ok {
		var u string
		if err := json.Unmarshal(raw, &u); err != nil {
			return fail(w, http.StatusUnprocessableEntity, "ipxe_script_url must be a string")
		}
		d.IPXEScriptURL = u
	}
	if raw, ok := b["always_pxe"]; ok {
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return fail(w, http.StatusUnprocessableEntity, "always_pxe must be a boolean")
		}
		d.AlwaysPXE = v
	}
	if raw, ok := b["hostname"]; ok {
		_ = json.Unmarshal(raw, &d.Hostname)
	}
	writeJSON(w, http.StatusOK, d.json(includes(r)))
	return http.StatusOK
}

func (s *Server) deleteDevice(w http.ResponseWriter, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.live(id)
	if d == nil {
		return fail(w, http.StatusNotFound, "Not found")
	}
	d.Deleted = true
	d.State = "deleted"
	d.Powered = false
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

func (s *Server) action(w http.ResponseWriter, r *http.Request, id string) int {
	var b struct {
		Type string `json:"type"`
	}
	if st := decode(w, r, &b); st != 0 {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.live(id)
	if d == nil {
		return fail(w, http.StatusNotFound, "Not found")
	}
	switch b.Type {
	case "power_on":
		d.Powered, d.State = true, "active"
	case "power_off":
		d.Powered, d.State = false, "inactive"
	case "reboot":
		d.Powered, d.State = true, "active"
		d.Reboots++
	case "rescue", "reinstall":
	default:
		return fail(w, http.StatusUnprocessableEntity, fmt.Sprintf("%q is not a valid action type", b.Type))
	}
	d.Actions = append(d.Actions, b.Type)
	w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted
}
