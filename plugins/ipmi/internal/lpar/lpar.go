// Package lpar is the ipmi plugin's "lpar" driver: IBM PowerVM logical
// partitions controlled through the HMC REST API (HTTPS + XML, cookie
// session), as DRP's lpar driver did: logon, read PartitionState, PowerOn
// and PowerOff jobs, logoff. Unlike DRP, the boot actions are not silent
// "Success" no-ops: the HMC REST API has no per-boot device override, so
// they answer 501.
package lpar

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
)

// Mode is the ipmi/mode value served by this driver.
const Mode = "lpar"

// DefaultPort is the HMC REST port used when ipmi/port-lpar is 0.
const DefaultPort = 12443

const (
	ns            = "http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"
	logonType     = "application/vnd.ibm.powervm.web+xml; type=LogonRequest"
	logonAccept   = "application/vnd.ibm.powervm.web+xml; type=LogonResponse"
	jobType       = "application/vnd.ibm.powervm.web+xml; type=JobRequest"
	atomAccept    = "application/atom+xml; charset=UTF-8"
	logonPath     = "/rest/api/web/Logon"
	partitionPath = "/rest/api/uom/LogicalPartition/"
)

// Options tunes the driver; zero values get defaults.
type Options struct {
	// Timeout bounds each HTTP request (default 20s).
	Timeout time.Duration
	// Retries is how many times an unanswered GET is re-sent (default 2).
	Retries int
}

// Driver is the HMC driver; it is stateless and safe for concurrent use.
type Driver struct{ opts Options }

// New returns a driver.
func New(opts Options) *Driver {
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 2
	}
	return &Driver{opts: opts}
}

// Mode implements bmc.Driver.
func (d *Driver) Mode() string { return Mode }

// Do implements bmc.Driver.
func (d *Driver) Do(ctx context.Context, req *bmc.Request) (any, *models.Error) {
	switch req.Command {
	case bmc.PowerStatus, bmc.PowerOn, bmc.PowerOff, bmc.PowerCycle:
	case bmc.NextBootPXE, bmc.NextBootDisk, bmc.ForceBootPXE, bmc.ForceBootDisk, bmc.NextBootCD:
		return nil, bmc.NotImplemented(Mode, req.Command, "the HMC REST API sets the boot device in the partition profile, not per boot (DRP answered a silent \"Success\")")
	default:
		return nil, bmc.NotImplemented(Mode, req.Command, "")
	}
	if req.LparID == "" {
		return nil, bmc.BadParam("LPAR id missing: specify ipmi/lpar-id")
	}
	s := &session{d: d, t: req.Target, hc: bmc.NewHTTPClient(d.opts.Timeout, d.opts.Retries),
		base: "https://" + req.Target.HostPort(DefaultPort)}
	defer s.hc.CloseIdleConnections()
	if err := s.logon(ctx); err != nil {
		return nil, classify(ctx, req.Target, err)
	}
	defer s.logoff()
	part := partitionPath + url.PathEscape(req.LparID)
	var (
		out any
		err error
	)
	switch req.Command {
	case bmc.PowerStatus:
		var state string
		state, err = s.partitionState(ctx, part)
		out = bmc.PowerState{Power: powerOf(state), Raw: state}
	case bmc.PowerOn:
		out, err = s.job(ctx, part, "PowerOn", "V1_1_0", [][2]string{{"novsi", "true"}, {"force", "false"}, {"bootmode", "norm"}})
	case bmc.PowerOff:
		out, err = s.job(ctx, part, "PowerOff", "V1_0", [][2]string{{"immediate", "true"}, {"restart", "false"}, {"operation", "shutdown"}})
	case bmc.PowerCycle:
		out, err = s.job(ctx, part, "PowerOff", "V1_0", [][2]string{{"immediate", "true"}, {"restart", "true"}, {"operation", "shutdown"}})
	}
	if err != nil {
		return nil, classify(ctx, req.Target, err)
	}
	return out, nil
}

func powerOf(state string) string {
	switch strings.ToLower(state) {
	case "running", "starting", "open firmware":
		return "on"
	case "not activated", "shutting down":
		return "off"
	}
	return "unknown"
}

// httpError is a non-2xx HMC answer.
type httpError struct {
	status int
	body   string
}

// Error implements error: the status and body the HMC answered.
func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func classify(ctx context.Context, t bmc.Target, err error) *models.Error {
	var he *httpError
	if errors.As(err, &he) {
		if he.status == http.StatusUnauthorized || he.status == http.StatusForbidden {
			return bmc.Unauthorized(t, he.Error())
		}
		if he.status == http.StatusNotFound {
			return bmc.Error(404, "HMC %s: no such logical partition: %s", t.HostPort(DefaultPort), he.Error())
		}
		return bmc.BMCFailed(t, he.Error())
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) {
		return bmc.NoAnswer(t, err.Error())
	}
	return bmc.BMCFailed(t, err.Error())
}

type session struct {
	d     *Driver
	t     bmc.Target
	hc    *http.Client
	base  string
	token string // X-API-Session
}

// do sends one request and returns the body of a 2xx answer.
func (s *session) do(ctx context.Context, method, path, ctype, accept string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, r)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if s.token != "" {
		req.Header.Set("X-API-Session", s.token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, &httpError{status: resp.StatusCode, body: strings.TrimSpace(string(data))}
	}
	return data, nil
}

func (s *session) logon(ctx context.Context) error {
	var b bytes.Buffer
	b.WriteString(`<LogonRequest xmlns="` + ns + `" schemaVersion="V1_0"><UserID>`)
	_ = xml.EscapeText(&b, []byte(s.t.Username))
	b.WriteString(`</UserID><Password>`)
	_ = xml.EscapeText(&b, []byte(s.t.Password))
	b.WriteString(`</Password></LogonRequest>`)
	data, err := s.do(ctx, http.MethodPut, logonPath, logonType, logonAccept, b.Bytes())
	if err != nil {
		return fmt.Errorf("HMC logon: %w", err)
	}
	s.token = firstElement(data, "X-API-Session")
	return nil
}

// logoff ends the HMC session (bounded, best effort).
func (s *session) logoff() {
	ctx, cancel := context.WithTimeout(context.Background(), s.d.opts.Timeout)
	defer cancel()
	_, _ = s.do(ctx, http.MethodDelete, logonPath, "", "", nil)
}

func (s *session) partitionState(ctx context.Context, part string) (string, error) {
	data, err := s.do(ctx, http.MethodGet, part, "", atomAccept, nil)
	if err != nil {
		return "", fmt.Errorf("LPAR get failed: %w", err)
	}
	st := firstElement(data, "PartitionState")
	if st == "" {
		return "", errors.New("LPAR get failed: the answer has no PartitionState")
	}
	return st, nil
}

// job starts an HMC job on the partition and returns its id and status.
func (s *session) job(ctx context.Context, part, op, version string, params [][2]string) (any, error) {
	var b strings.Builder
	b.WriteString(`<JobRequest:JobRequest xmlns:JobRequest="` + ns + `" xmlns="` + ns + `" schemaVersion="` + version + `">`)
	b.WriteString(`<Metadata><Atom/></Metadata><RequestedOperation kb="CUR" kxe="false" schemaVersion="V1_0"><Metadata><Atom/></Metadata>`)
	b.WriteString(`<OperationName kb="ROR" kxe="false">` + op + `</OperationName>`)
	b.WriteString(`<GroupName kb="ROR" kxe="false">LogicalPartition</GroupName>`)
	b.WriteString(`<ProgressType kb="ROR" kxe="false">DISCRETE</ProgressType></RequestedOperation>`)
	b.WriteString(`<JobParameters kb="CUR" kxe="false" schemaVersion="V1_0"><Metadata><Atom/></Metadata>`)
	for _, p := range params {
		b.WriteString(`<JobParameter schemaVersion="V1_0"><Metadata><Atom/></Metadata><ParameterName kb="ROR" kxe="false">` + p[0] +
			`</ParameterName><ParameterValue kb="CUR" kxe="false">` + p[1] + `</ParameterValue></JobParameter>`)
	}
	b.WriteString(`</JobParameters></JobRequest:JobRequest>`)
	data, err := s.do(ctx, http.MethodPut, part+"/do/"+op, jobType, atomAccept, []byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("LPAR %s failed: %w", op, err)
	}
	return map[string]any{"Job": op, "JobID": firstElement(data, "JobID"), "Status": firstElement(data, "Status")}, nil
}

// firstElement returns the text of the first element with the local name.
func firstElement(data []byte, local string) string {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == local {
			var v string
			if dec.DecodeElement(&v, &se) == nil {
				return strings.TrimSpace(v)
			}
			return ""
		}
	}
}
