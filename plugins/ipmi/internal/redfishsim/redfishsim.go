// Package redfishsim is a stateful Redfish service on an httptest TLS server
// for the redfish driver's tests. It keeps one system's state (power, boot
// override, indicator LED, virtual media) and checks each request as a real
// BMC would: a session must be created with valid credentials and its
// X-Auth-Token sent on every other request; ResetType must be one of the
// advertised allowable values; PATCH and action bodies may contain only the
// properties the resource accepts, with valid enum values. Rejected requests
// get Redfish error bodies and are recorded for assertions.
package redfishsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Vendors the simulator can imitate for virtual media.
const (
	VendorGeneric = ""
	VendorHPE     = "HPE"
	VendorDell    = "Dell"
)

// Options configures the service.
type Options struct {
	// Username and Password of the one account (default admin / password).
	Username, Password string
	// Vendor selects the manager/virtual media flavour.
	Vendor string
	// ResetTypes are the advertised allowable ResetType values (default:
	// On, ForceOff, GracefulShutdown, ForceRestart, PushPowerButton).
	ResetTypes []string
	// PatchReturnsBody makes PATCH answer 200 with the resource instead of 204.
	PatchReturnsBody bool
	// LocationIndicatorOnly replaces IndicatorLED with LocationIndicatorActive
	// (Redfish 2020+ style systems).
	LocationIndicatorOnly bool
	// PoweredOn is the initial power state.
	PoweredOn bool
}

// Server is a running simulated BMC.
type Server struct {
	// Host is the HTTPS listener's address.
	Host string
	// Port is the HTTPS listener's port.
	Port int

	opts Options
	ts   *httptest.Server

	mu        sync.Mutex
	power     string
	bootEn    string
	bootTgt   string
	bootMode  string
	led       string
	locActive bool
	mediaIn   bool
	mediaImg  string
	hpeBoot   bool
	dellBoot  string
	sessions  map[string]string // token -> session id
	nextSess  int
	logins    int
	logouts   int
	resets    []string
	rejected  []string
}

// Start runs the service until Close.
func Start(opts Options) *Server {
	if opts.Username == "" {
		opts.Username = "admin"
	}
	if opts.Password == "" {
		opts.Password = "password"
	}
	if opts.ResetTypes == nil {
		opts.ResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PushPowerButton"}
	}
	s := &Server{opts: opts, power: "Off", bootEn: "Disabled", bootTgt: "None", bootMode: "UEFI", led: "Off", sessions: map[string]string{}}
	if opts.PoweredOn {
		s.power = "On"
	}
	s.ts = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	u, _ := url.Parse(s.ts.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// Power is "On" or "Off".
func (s *Server) Power() string { s.mu.Lock(); defer s.mu.Unlock(); return s.power }

// SetPower sets the power state (test setup).
func (s *Server) SetPower(p string) { s.mu.Lock(); s.power = p; s.mu.Unlock() }

// Boot returns BootSourceOverrideEnabled, Target and Mode.
func (s *Server) Boot() (enabled, target, mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootEn, s.bootTgt, s.bootMode
}

// LED returns IndicatorLED (or "Lit"/"Off" from LocationIndicatorActive).
func (s *Server) LED() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.LocationIndicatorOnly {
		if s.locActive {
			return "Lit"
		}
		return "Off"
	}
	return s.led
}

// Media returns the CD's Inserted and Image.
func (s *Server) Media() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mediaIn, s.mediaImg
}

// HPEBootOnNextReset reports the HPE Oem BootOnNextServerReset flag.
func (s *Server) HPEBootOnNextReset() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.hpeBoot }

// DellFirstBootDevice is the FirstBootDevice set via ImportSystemConfiguration.
func (s *Server) DellFirstBootDevice() string { s.mu.Lock(); defer s.mu.Unlock(); return s.dellBoot }

// Resets lists the ResetType values accepted so far.
func (s *Server) Resets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.resets)
}

// Logins and Logouts count created and deleted sessions.
func (s *Server) Logins() int { s.mu.Lock(); defer s.mu.Unlock(); return s.logins }

// Logouts counts deleted sessions.
func (s *Server) Logouts() int { s.mu.Lock(); defer s.mu.Unlock(); return s.logouts }

// Rejected lists "<METHOD> <path>: <reason>" for every refused request.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejected)
}

const (
	root        = "/redfish/v1"
	sessionsURI = root + "/SessionService/Sessions"
	systemURI   = root + "/Systems/1"
)

func (s *Server) managerURI() string {
	if s.opts.Vendor == VendorDell {
		return root + "/Managers/iDRAC.Embedded.1"
	}
	return root + "/Managers/1"
}

func (s *Server) cdURI() string { return s.managerURI() + "/VirtualMedia/CD" }

// fail answers a Redfish error and records it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, id, msg string) {
	s.rejected = append(s.rejected, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, msg))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "Base.1.8." + id, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "Base.1.8." + id, "Message": msg, "Severity": "Warning"}},
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func link(p string) map[string]any { return map[string]any{"@odata.id": p} }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.TrimSuffix(r.URL.Path, "/")
	if r.Method == http.MethodGet && (p == root || p == "/redfish") {
		writeJSON(w, 200, s.serviceRoot())
		return
	}
	if r.Method == http.MethodPost && p == sessionsURI {
		s.login(w, r)
		return
	}
	tok := r.Header.Get("X-Auth-Token")
	sid, ok := s.sessions[tok]
	if tok == "" || !ok {
		s.fail(w, r, 401, "NoValidSession", "no valid session: X-Auth-Token missing or unknown")
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			s.fail(w, r, 415, "UnsupportedMediaType", "Content-Type must be application/json, got "+ct)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body == nil {
			s.fail(w, r, 400, "MalformedJSON", "body is not a JSON object")
			return
		}
	}
	switch {
	case r.Method == http.MethodDelete && p == sessionsURI+"/"+sid:
		delete(s.sessions, tok)
		s.logouts++
		w.WriteHeader(204)
	case r.Method == http.MethodGet:
		s.get(w, r, p)
	case r.Method == http.MethodPost && p == systemURI+"/Actions/ComputerSystem.Reset":
		s.reset(w, r, body)
	case r.Method == http.MethodPatch && p == systemURI:
		s.patchSystem(w, r, body)
	case r.Method == http.MethodPost && p == s.cdURI()+"/Actions/VirtualMedia.InsertMedia":
		s.insert(w, r, body)
	case r.Method == http.MethodPost && p == s.cdURI()+"/Actions/VirtualMedia.EjectMedia":
		if len(body) != 0 {
			s.fail(w, r, 400, "ActionParameterNotSupported", "EjectMedia takes no parameters")
			return
		}
		s.mediaIn, s.mediaImg = false, ""
		w.WriteHeader(204)
	case r.Method == http.MethodPatch && p == s.cdURI() && s.opts.Vendor == VendorHPE:
		s.patchHPEMedia(w, r, body)
	case r.Method == http.MethodPost && p == s.managerURI()+"/Actions/Oem/EID_674_Manager.ImportSystemConfiguration" && s.opts.Vendor == VendorDell:
		s.dellImport(w, r, body)
	default:
		s.fail(w, r, 405, "ActionNotSupported", "method not allowed on this resource")
	}
}

func (s *Server) serviceRoot() map[string]any {
	vendor := s.opts.Vendor
	if vendor == "" {
		vendor = "Generic"
	}
	return map[string]any{
		"@odata.id": root, "Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.11.0", "Vendor": vendor,
		"Systems": link(root + "/Systems"), "Managers": link(root + "/Managers"), "SessionService": link(root + "/SessionService"),
		"Links": map[string]any{"Sessions": link(sessionsURI)},
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, r, 400, "MalformedJSON", "session body is not JSON")
		return
	}
	for k := range req {
		if k != "UserName" && k != "Password" {
			s.fail(w, r, 400, "PropertyUnknown", "unknown session property "+k)
			return
		}
	}
	if req["UserName"] != s.opts.Username || req["Password"] != s.opts.Password {
		s.fail(w, r, 401, "InsufficientPrivilege", "invalid username or password")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.nextSess++
	id := strconv.Itoa(s.nextSess)
	s.sessions[tok] = id
	s.logins++
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", sessionsURI+"/"+id)
	writeJSON(w, 201, map[string]any{"@odata.id": sessionsURI + "/" + id, "Id": id, "UserName": s.opts.Username})
}

func collection(p string, members ...string) map[string]any {
	ms := make([]any, len(members))
	for i, m := range members {
		ms[i] = link(m)
	}
	return map[string]any{"@odata.id": p, "Name": "Collection", "Members": ms, "Members@odata.count": len(ms)}
}

func health(h string) map[string]any { return map[string]any{"State": "Enabled", "Health": h} }

func (s *Server) get(w http.ResponseWriter, r *http.Request, p string) {
	sys := systemURI
	res := map[string]map[string]any{
		root + "/Systems":  collection(root+"/Systems", sys),
		root + "/Managers": collection(root+"/Managers", s.managerURI()),
		s.managerURI(): {"@odata.id": s.managerURI(), "Id": "1", "Name": "Manager", "ManagerType": "BMC",
			"VirtualMedia": link(s.managerURI() + "/VirtualMedia")},
		s.managerURI() + "/VirtualMedia": collection(s.managerURI()+"/VirtualMedia", s.managerURI()+"/VirtualMedia/Floppy", s.cdURI()),
		s.managerURI() + "/VirtualMedia/Floppy": {"@odata.id": s.managerURI() + "/VirtualMedia/Floppy", "Id": "Floppy", "Name": "Virtual Removable Media",
			"MediaTypes": []any{"Floppy", "USBStick"}, "Inserted": false, "Image": ""},
		s.cdURI(): s.cd(),
		sys:       s.system(),
		sys + "/Bios": {"@odata.id": sys + "/Bios", "Id": "Bios", "Name": "BIOS", "AttributeRegistry": "BiosAttributeRegistry.v1_0_0",
			"Attributes": map[string]any{"BootMode": "Uefi", "ProcTurboMode": "Enabled"}},
		sys + "/SecureBoot": {"@odata.id": sys + "/SecureBoot", "Id": "SecureBoot", "Name": "UEFI Secure Boot", "SecureBootEnable": true,
			"SecureBootCurrentBoot": "Enabled", "SecureBootMode": "UserMode"},
		sys + "/Memory":                {},
		sys + "/Memory/DIMM0":          {"@odata.id": sys + "/Memory/DIMM0", "Id": "DIMM0", "Name": "DIMM0", "CapacityMiB": 16384, "Status": health("OK")},
		sys + "/Memory/DIMM1":          {"@odata.id": sys + "/Memory/DIMM1", "Id": "DIMM1", "Name": "DIMM1", "CapacityMiB": 16384, "Status": health("OK")},
		sys + "/Processors":            {},
		sys + "/Processors/CPU0":       {"@odata.id": sys + "/Processors/CPU0", "Id": "CPU0", "Name": "CPU0", "TotalCores": 16, "Status": health("OK")},
		sys + "/Storage":               {},
		sys + "/Storage/RAID":          {"@odata.id": sys + "/Storage/RAID", "Id": "RAID", "Name": "RAID Controller", "Status": health("OK")},
		sys + "/SimpleStorage":         {},
		sys + "/SimpleStorage/SATA":    {"@odata.id": sys + "/SimpleStorage/SATA", "Id": "SATA", "Name": "SATA", "Status": health("OK")},
		sys + "/EthernetInterfaces":    {},
		sys + "/EthernetInterfaces/1":  {"@odata.id": sys + "/EthernetInterfaces/1", "Id": "1", "Name": "NIC 1", "MACAddress": "52:54:00:12:34:56", "Status": health("Warning")},
		sys + "/NetworkInterfaces":     {},
		sys + "/NetworkInterfaces/NIC": {"@odata.id": sys + "/NetworkInterfaces/NIC", "Id": "NIC", "Name": "Network Interface", "Status": health("OK")},
	}
	res[sys+"/Memory"] = collection(sys+"/Memory", sys+"/Memory/DIMM0", sys+"/Memory/DIMM1")
	res[sys+"/Processors"] = collection(sys+"/Processors", sys+"/Processors/CPU0")
	res[sys+"/Storage"] = collection(sys+"/Storage", sys+"/Storage/RAID")
	res[sys+"/SimpleStorage"] = collection(sys+"/SimpleStorage", sys+"/SimpleStorage/SATA")
	res[sys+"/EthernetInterfaces"] = collection(sys+"/EthernetInterfaces", sys+"/EthernetInterfaces/1")
	res[sys+"/NetworkInterfaces"] = collection(sys+"/NetworkInterfaces", sys+"/NetworkInterfaces/NIC")
	v, ok := res[p]
	if !ok {
		s.fail(w, r, 404, "ResourceMissingAtURI", "no resource at "+p)
		return
	}
	writeJSON(w, 200, v)
}

func (s *Server) system() map[string]any {
	sys := systemURI
	m := map[string]any{
		"@odata.id": sys, "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem", "Id": "1", "Name": "System",
		"PowerState": s.power, "Status": health("OK"),
		"ProcessorSummary": map[string]any{"Count": 1, "Status": health("OK")},
		"MemorySummary":    map[string]any{"TotalSystemMemoryGiB": 32, "Status": health("Critical")},
		"Boot": map[string]any{
			"BootSourceOverrideEnabled": s.bootEn, "BootSourceOverrideTarget": s.bootTgt, "BootSourceOverrideMode": s.bootMode,
			"BootSourceOverrideTarget@Redfish.AllowableValues": []any{"None", "Pxe", "Hdd", "Cd", "BiosSetup"},
		},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            sys + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": s.opts.ResetTypes,
		}},
		"Bios": link(sys + "/Bios"), "SecureBoot": link(sys + "/SecureBoot"), "Memory": link(sys + "/Memory"),
		"Processors": link(sys + "/Processors"), "Storage": link(sys + "/Storage"), "SimpleStorage": link(sys + "/SimpleStorage"),
		"EthernetInterfaces": link(sys + "/EthernetInterfaces"), "NetworkInterfaces": link(sys + "/NetworkInterfaces"),
		"Links": map[string]any{"ManagedBy": []any{link(s.managerURI())}},
	}
	if s.opts.LocationIndicatorOnly {
		m["LocationIndicatorActive"] = s.locActive
	} else {
		m["IndicatorLED"] = s.led
	}
	return m
}

func (s *Server) cd() map[string]any {
	return map[string]any{"@odata.id": s.cdURI(), "Id": "CD", "Name": "Virtual CD", "MediaTypes": []any{"CD", "DVD"},
		"Inserted": s.mediaIn, "Image": s.mediaImg, "WriteProtected": true, "ConnectedVia": "URI",
		"Actions": map[string]any{
			"#VirtualMedia.InsertMedia": map[string]any{"target": s.cdURI() + "/Actions/VirtualMedia.InsertMedia"},
			"#VirtualMedia.EjectMedia":  map[string]any{"target": s.cdURI() + "/Actions/VirtualMedia.EjectMedia"},
		}}
}

func (s *Server) reset(w http.ResponseWriter, r *http.Request, body map[string]any) {
	if len(body) != 1 {
		s.fail(w, r, 400, "ActionParameterUnknown", "Reset takes exactly one parameter, ResetType")
		return
	}
	rt, ok := body["ResetType"].(string)
	if !ok {
		s.fail(w, r, 400, "ActionParameterMissing", "ResetType is required")
		return
	}
	if !slices.Contains(s.opts.ResetTypes, rt) {
		s.fail(w, r, 400, "ActionParameterValueNotInList", "ResetType "+rt+" is not one of "+strings.Join(s.opts.ResetTypes, ", "))
		return
	}
	switch rt {
	case "On", "ForceOn":
		s.power = "On"
	case "ForceOff", "GracefulShutdown", "Off":
		s.power = "Off"
	case "PushPowerButton":
		if s.power == "On" {
			s.power = "Off"
		} else {
			s.power = "On"
		}
	case "ForceRestart", "PowerCycle", "GracefulRestart":
		if s.power != "On" && rt != "PowerCycle" {
			s.fail(w, r, 409, "ResourceInStandby", "cannot restart a system that is off")
			return
		}
		s.power = "On"
	}
	s.resets = append(s.resets, rt)
	w.WriteHeader(204)
}

func (s *Server) patchSystem(w http.ResponseWriter, r *http.Request, body map[string]any) {
	en, tgt, mode, led, loc := s.bootEn, s.bootTgt, s.bootMode, s.led, s.locActive
	for k, v := range body {
		switch k {
		case "Boot":
			b, ok := v.(map[string]any)
			if !ok {
				s.fail(w, r, 400, "PropertyValueTypeError", "Boot must be an object")
				return
			}
			for bk, bv := range b {
				str, _ := bv.(string)
				var allowed []string
				switch bk {
				case "BootSourceOverrideEnabled":
					allowed, en = []string{"Once", "Continuous", "Disabled"}, str
				case "BootSourceOverrideTarget":
					allowed, tgt = []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup"}, str
				case "BootSourceOverrideMode":
					allowed, mode = []string{"UEFI", "Legacy"}, str
				default:
					s.fail(w, r, 400, "PropertyNotWritable", "Boot."+bk+" is not writable")
					return
				}
				if !slices.Contains(allowed, str) {
					s.fail(w, r, 400, "PropertyValueNotInList", fmt.Sprintf("Boot.%s value %v is not one of %v", bk, bv, allowed))
					return
				}
			}
		case "IndicatorLED":
			str, _ := v.(string)
			if s.opts.LocationIndicatorOnly || !slices.Contains([]string{"Lit", "Blinking", "Off"}, str) {
				s.fail(w, r, 400, "PropertyValueNotInList", fmt.Sprintf("IndicatorLED value %v not accepted", v))
				return
			}
			led = str
		case "LocationIndicatorActive":
			b, ok := v.(bool)
			if !ok || !s.opts.LocationIndicatorOnly {
				s.fail(w, r, 400, "PropertyUnknown", "LocationIndicatorActive not accepted")
				return
			}
			loc = b
		default:
			s.fail(w, r, 400, "PropertyUnknown", "property "+k+" is unknown or read-only")
			return
		}
	}
	s.bootEn, s.bootTgt, s.bootMode, s.led, s.locActive = en, tgt, mode, led, loc
	if s.opts.PatchReturnsBody {
		writeJSON(w, 200, s.system())
		return
	}
	w.WriteHeader(204)
}

func (s *Server) insert(w http.ResponseWriter, r *http.Request, body map[string]any) {
	for k := range body {
		if !slices.Contains([]string{"Image", "Inserted", "WriteProtected", "TransferMethod", "TransferProtocolType", "UserName", "Password", "MediaType"}, k) {
			s.fail(w, r, 400, "ActionParameterUnknown", "InsertMedia parameter "+k+" is unknown")
			return
		}
	}
	img, _ := body["Image"].(string)
	u, err := url.Parse(img)
	if img == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "nfs" && u.Scheme != "smb") {
		s.fail(w, r, 400, "ActionParameterValueFormatError", "Image must be an http(s), nfs or smb URL")
		return
	}
	if s.mediaIn {
		s.fail(w, r, 409, "ResourceInUse", "media is already inserted; eject it first")
		return
	}
	s.mediaIn, s.mediaImg = true, img
	w.WriteHeader(204)
}

func (s *Server) patchHPEMedia(w http.ResponseWriter, r *http.Request, body map[string]any) {
	for k, v := range body {
		switch k {
		case "Image":
			img, _ := v.(string)
			s.mediaImg, s.mediaIn = img, img != ""
		case "Oem":
			hpe, _ := v.(map[string]any)["Hpe"].(map[string]any)
			b, ok := hpe["BootOnNextServerReset"].(bool)
			if !ok || len(hpe) != 1 {
				s.fail(w, r, 400, "PropertyUnknown", "Oem must be {\"Hpe\":{\"BootOnNextServerReset\":bool}}")
				return
			}
			s.hpeBoot = b
		default:
			s.fail(w, r, 400, "PropertyUnknown", "property "+k+" is not writable")
			return
		}
	}
	w.WriteHeader(200)
	_, _ = w.Write([]byte(`{}`))
}

func (s *Server) dellImport(w http.ResponseWriter, r *http.Request, body map[string]any) {
	sp, _ := body["ShareParameters"].(map[string]any)
	buf, _ := body["ImportBuffer"].(string)
	if sp["Target"] != "ALL" || !strings.Contains(buf, `<Component FQDD="iDRAC.Embedded.1">`) ||
		!strings.Contains(buf, `<Attribute Name="ServerBoot.1#BootOnce">Enabled</Attribute>`) {
		s.fail(w, r, 400, "ActionParameterValueFormatError", "ImportSystemConfiguration body not understood")
		return
	}
	const key = `<Attribute Name="ServerBoot.1#FirstBootDevice">`
	if i := strings.Index(buf, key); i >= 0 {
		rest := buf[i+len(key):]
		if j := strings.Index(rest, "<"); j >= 0 {
			s.dellBoot = rest[:j]
		}
	}
	w.Header().Set("Location", root+"/TaskService/Tasks/JID_000000000001")
	w.WriteHeader(202)
}
