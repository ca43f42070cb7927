package lpar

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
)

// fakeHMC keeps partition states and checks requests like an HMC: logon
// body and media types, a session cookie plus X-API-Session on every later
// request, JobRequest bodies with the expected operation and parameters.
type fakeHMC struct {
	mu       sync.Mutex
	states   map[string]string
	restarts int
	jobs     []string
	logoffs  int
	rejected []string
	token    string
}

type jobRequest struct {
	Op     string `xml:"RequestedOperation>OperationName"`
	Group  string `xml:"RequestedOperation>GroupName"`
	Params []struct {
		Name  string `xml:"ParameterName"`
		Value string `xml:"ParameterValue"`
	} `xml:"JobParameters>JobParameter"`
}

func (h *fakeHMC) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.rejected = append(h.rejected, r.Method+" "+r.URL.Path+": "+msg)
	http.Error(w, "<HttpErrorResponse><Message>"+msg+"</Message></HttpErrorResponse>", code)
}

func (h *fakeHMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.URL.Path == logonPath && r.Method == http.MethodPut {
		if r.Header.Get("Content-Type") != logonType || r.Header.Get("Accept") != logonAccept {
			h.reject(w, r, 415, "wrong logon media types")
			return
		}
		var lr struct {
			User string `xml:"UserID"`
			Pass string `xml:"Password"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&lr); err != nil {
			h.reject(w, r, 400, "bad logon body")
			return
		}
		if lr.User != "hscroot" || lr.Pass != "abc<123>" {
			h.reject(w, r, 401, "invalid credentials")
			return
		}
		h.token = "tok" + strconv.Itoa(len(h.jobs)+1)
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "c-" + h.token, Path: "/"})
		w.Header().Set("Content-Type", logonAccept)
		fmt.Fprintf(w, `<LogonResponse xmlns="%s" schemaVersion="V1_0"><X-API-Session kb="ROR" kxe="false">%s</X-API-Session></LogonResponse>`, ns, h.token)
		return
	}
	c, err := r.Cookie("JSESSIONID")
	if err != nil || h.token == "" || c.Value != "c-"+h.token || r.Header.Get("X-API-Session") != h.token {
		h.reject(w, r, 401, "no session")
		return
	}
	if r.URL.Path == logonPath && r.Method == http.MethodDelete {
		h.logoffs++
		h.token = ""
		w.WriteHeader(204)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, partitionPath)
	if !ok {
		h.reject(w, r, 404, "unknown path")
		return
	}
	id, op, _ := strings.Cut(rest, "/do/")
	state, known := h.states[id]
	if !known {
		h.reject(w, r, 404, "no partition "+id)
		return
	}
	if op == "" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/atom+xml")
		fmt.Fprintf(w, `<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/vnd.ibm.powervm.uom+xml; type=LogicalPartition"><LogicalPartition:LogicalPartition xmlns:LogicalPartition="%s" xmlns="%s"><PartitionState kb="ROO" kxe="false">%s</PartitionState></LogicalPartition:LogicalPartition></content></entry>`, ns, ns, state)
		return
	}
	if r.Method != http.MethodPut || r.Header.Get("Content-Type") != jobType {
		h.reject(w, r, 405, "jobs are PUT with a JobRequest")
		return
	}
	var jr jobRequest
	if err := xml.NewDecoder(r.Body).Decode(&jr); err != nil || jr.Op != op || jr.Group != "LogicalPartition" {
		h.reject(w, r, 400, "bad JobRequest")
		return
	}
	params := map[string]string{}
	for _, p := range jr.Params {
		params[p.Name] = p.Value
	}
	switch op {
	case "PowerOn":
		if params["novsi"] != "true" || params["force"] != "false" || params["bootmode"] != "norm" {
			h.reject(w, r, 400, fmt.Sprintf("PowerOn params %v", params))
			return
		}
		h.states[id] = "running"
	case "PowerOff":
		if params["immediate"] != "true" || params["operation"] != "shutdown" {
			h.reject(w, r, 400, fmt.Sprintf("PowerOff params %v", params))
			return
		}
		if params["restart"] == "true" {
			h.restarts++
		} else {
			h.states[id] = "not activated"
		}
	default:
		h.reject(w, r, 400, "unknown job "+op)
		return
	}
	h.jobs = append(h.jobs, op)
	fmt.Fprintf(w, `<entry xmlns="http://www.w3.org/2005/Atom"><content><JobResponse:JobResponse xmlns:JobResponse="%s" xmlns="%s"><JobID>%d</JobID><Status>RUNNING</Status></JobResponse:JobResponse></content></entry>`, ns, ns, len(h.jobs))
}

// snapshot reads the state under the lock.
func (h *fakeHMC) snapshot() (state string, restarts, logoffs int, rejected []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.states["4B1A-LPAR"], h.restarts, h.logoffs, append([]string(nil), h.rejected...)
}

func (h *fakeHMC) state() string { s, _, _, _ := h.snapshot(); return s }

func startHMC(t *testing.T) (*fakeHMC, bmc.Target) {
	h := &fakeHMC{states: map[string]string{"4B1A-LPAR": "not activated"}}
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL)
	port, _ := strconv.Atoi(u.Port())
	return h, bmc.Target{Address: u.Hostname(), Port: port, Username: "hscroot", Password: "abc<123>"}
}

func TestLPAR(t *testing.T) {
	h, tg := startHMC(t)
	d := New(Options{})
	ctx := context.Background()
	req := func(cmd string) *bmc.Request { return &bmc.Request{Command: cmd, Target: tg, LparID: "4B1A-LPAR"} }

	out, err := d.Do(ctx, req(bmc.PowerStatus))
	if err != nil || out != (bmc.PowerState{Power: "off", Raw: "not activated"}) {
		t.Fatalf("powerstatus = %v %v", out, err)
	}
	if _, err := d.Do(ctx, req(bmc.PowerOn)); err != nil {
		t.Fatal(err)
	}
	if h.state() != "running" {
		t.Fatalf("state after poweron = %s", h.state())
	}
	if out, err = d.Do(ctx, req(bmc.PowerStatus)); err != nil || out.(bmc.PowerState).Power != "on" {
		t.Fatalf("powerstatus = %v %v", out, err)
	}
	if _, err := d.Do(ctx, req(bmc.PowerCycle)); err != nil {
		t.Fatal(err)
	}
	if _, restarts, _, _ := h.snapshot(); restarts != 1 {
		t.Fatalf("powercycle: restarts=%d", restarts)
	}
	if _, err := d.Do(ctx, req(bmc.PowerOff)); err != nil || h.state() != "not activated" {
		t.Fatalf("poweroff: %v state=%s", err, h.state())
	}
	if _, _, logoffs, rejected := h.snapshot(); len(rejected) != 0 || logoffs != 5 {
		t.Fatalf("rejected=%q logoffs=%d", rejected, logoffs)
	}
}

func TestLPARErrors(t *testing.T) {
	h, tg := startHMC(t)
	d := New(Options{})
	ctx := context.Background()
	if _, err := d.Do(ctx, &bmc.Request{Command: bmc.PowerOn, Target: tg}); err == nil || err.Code != 400 || !strings.Contains(err.Error(), "ipmi/lpar-id") {
		t.Fatalf("missing id: %v", err)
	}
	bad := tg
	bad.Password = "wrong"
	if _, err := d.Do(ctx, &bmc.Request{Command: bmc.PowerOn, Target: bad, LparID: "4B1A-LPAR"}); err == nil || err.Code != 401 {
		t.Fatalf("bad password: %v", err)
	}
	if _, err := d.Do(ctx, &bmc.Request{Command: bmc.PowerOn, Target: tg, LparID: "nope"}); err == nil || err.Code != 404 {
		t.Fatalf("unknown partition: %v", err)
	}
	for _, cmd := range []string{bmc.NextBootPXE, bmc.ForceBootDisk, bmc.Identify, bmc.GetBios} {
		if _, err := d.Do(ctx, &bmc.Request{Command: cmd, Target: tg, LparID: "4B1A-LPAR"}); err == nil || err.Code != 501 || !strings.Contains(err.Error(), "lpar") || !strings.Contains(err.Error(), cmd) {
			t.Fatalf("%s: want 501, got %v", cmd, err)
		}
	}
	if h.state() != "not activated" {
		t.Fatal("a failed request changed the partition")
	}
}
