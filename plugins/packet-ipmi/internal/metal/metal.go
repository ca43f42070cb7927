// Package metal is the packet-ipmi plugin's only door to the Equinix Metal
// API. It wraps github.com/equinix/equinix-sdk-go/services/metalv1 (a very
// large package that is slow to compile) behind a handful of calls and plain
// types, so that the rest of the plugin never imports the SDK.
//
// Every call has its own deadline, response bodies are size-limited, and the
// API key travels only in the X-Auth-Token header: it is never logged and
// never part of an error message.
package metal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/equinix/equinix-sdk-go/services/metalv1"
)

// DefaultURL is the public Equinix Metal API endpoint.
const DefaultURL = "https://api.equinix.com/metal/v1"

// ConsumerToken is sent as X-Consumer-Token, as DRP's plugin did.
const ConsumerToken = "packet-ipmi plugin"

// DefaultTimeout bounds one API call when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxBody caps a response body so a broken endpoint cannot exhaust memory.
const maxBody = 32 << 20

// maxPages bounds pagination so a server that always claims "more pages"
// cannot keep a listing going forever.
const maxPages = 1000

// Power actions accepted by PerformAction.
const (
	ActionPowerOn  = "power_on"
	ActionPowerOff = "power_off"
	ActionReboot   = "reboot"
)

// Options configures a Client.
type Options struct {
	// URL is the API base, e.g. DefaultURL; any Metal-compatible API works.
	URL string
	// APIKey is sent as X-Auth-Token.
	APIKey string
	// Timeout bounds each API call (DefaultTimeout when zero).
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// Transport overrides the HTTP transport (tests with TLS fakes).
	Transport http.RoundTripper
}

// Client calls the Metal API. It is safe for concurrent use.
type Client struct {
	api     *metalv1.APIClient
	key     string
	timeout time.Duration
}

// New validates opts and returns a Client. It does not contact the API.
func New(opts Options) (*Client, error) {
	if opts.URL == "" {
		opts.URL = DefaultURL
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("API URL %q must be an absolute https URL such as %s", opts.URL, DefaultURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		// The API key travels in a header: plain http only on this host.
		return nil, fmt.Errorf("API URL %q must use https (plain http is only allowed to a loopback address)", opts.URL)
	}
	if opts.APIKey == "" {
		return nil, errors.New("API key is empty")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	rt := opts.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cfg := metalv1.NewConfiguration()
	cfg.Servers = metalv1.ServerConfigurations{{URL: strings.TrimRight(opts.URL, "/")}}
	cfg.HTTPClient = &http.Client{Timeout: opts.Timeout, Transport: limitTransport{rt}}
	cfg.AddDefaultHeader("X-Consumer-Token", ConsumerToken)
	if opts.UserAgent != "" {
		cfg.UserAgent = opts.UserAgent
	}
	return &Client{api: metalv1.NewAPIClient(cfg), key: opts.APIKey, timeout: opts.Timeout}, nil
}

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// limitTransport caps response bodies at maxBody bytes.
type limitTransport struct{ rt http.RoundTripper }

// RoundTrip implements http.RoundTripper, wrapping the body in the cap.
func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxBody), resp.Body}
	return resp, nil
}

// limitedBody reads at most maxBody bytes and closes the real body.
type limitedBody struct {
	io.Reader
	c io.Closer
}

// Close implements io.Closer by closing the underlying response body.
func (b limitedBody) Close() error { return b.c.Close() }

// ctx returns a per-call context carrying the API key and the call deadline.
func (c *Client) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	ctx = context.WithValue(ctx, metalv1.ContextAPIKeys, map[string]metalv1.APIKey{
		"x_auth_token": {Key: c.key},
	})
	return ctx, cancel
}

// APIError is a failed API call. Status is the HTTP status the API answered
// (0 when no answer arrived: network error or timeout).
type APIError struct {
	// Op names the call, e.g. "get device 1234".
	Op string
	// Status is the HTTP status, 0 without a response.
	Status int
	// Msg is the API's error text or the transport error.
	Msg string
	// Timeout is true when the call ran out of time.
	Timeout bool
	err     error
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: Metal API answered %d: %s", e.Op, e.Status, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Op, e.Msg)
}

// Unwrap returns the underlying error.
func (e *APIError) Unwrap() error { return e.err }

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// wrap turns an SDK result into an *APIError (nil when the call succeeded).
func wrap(op string, resp *http.Response, err error) error {
	if err == nil {
		return nil
	}
	ae := &APIError{Op: op, err: err}
	if resp != nil {
		ae.Status = resp.StatusCode
	}
	var oe *metalv1.GenericOpenAPIError
	if errors.As(err, &oe) {
		ae.Msg = apiMessage(oe)
	} else {
		ae.Msg = err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		ae.Timeout = true
	}
	return ae
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// apiMessage extracts the API's "errors" list when the body has one.
func apiMessage(oe *metalv1.GenericOpenAPIError) string {
	if m, ok := oe.Model().(metalv1.Error); ok {
		msgs := append([]string{}, m.GetErrors()...)
		if s := m.GetError(); s != "" {
			msgs = append(msgs, s)
		}
		if len(msgs) > 0 {
			return strings.Join(msgs, "; ")
		}
	}
	body := strings.TrimSpace(string(oe.Body()))
	if len(body) > 512 {
		body = body[:512] + "..."
	}
	if body != "" {
		return body
	}
	return oe.Error()
}

// Projects lists every project the key can see, in API order (the first is
// the default project, as in DRP's plugin).
func (c *Client) Projects(ctx context.Context) ([]Project, error) {
	var out []Project
	for page := int32(1); page <= maxPages; page++ {
		cctx, cancel := c.ctx(ctx)
		list, resp, err := c.api.ProjectsApi.FindProjects(cctx).Page(page).PerPage(100).Execute()
		cancel()
		if err := wrap("list projects", resp, err); err != nil {
			return nil, err
		}
		for _, p := range list.Projects {
			out = append(out, Project{ID: p.GetId(), Name: p.GetName()})
		}
		if !morePages(list.Meta, page) {
			return out, nil
		}
	}
	return nil, fmt.Errorf("list projects: more than %d pages", maxPages)
}

// morePages reports whether a page after page exists.
func morePages(m *metalv1.Meta, page int32) bool {
	if m == nil || m.LastPage == nil {
		return false
	}
	return m.GetLastPage() > page
}

// deviceIncludes are the related objects the device mapping needs (a new
// slice per request: the SDK's request builders keep what they are given).
func deviceIncludes() []string { return []string{"facility", "project", "plan"} }

// ProjectDevices lists every device in a project.
func (c *Client) ProjectDevices(ctx context.Context, projectID string) ([]Device, error) {
	var out []Device
	op := "list devices of project " + projectID
	for page := int32(1); page <= maxPages; page++ {
		cctx, cancel := c.ctx(ctx)
		list, resp, err := c.api.DevicesApi.FindProjectDevices(cctx, projectID).
			Include(deviceIncludes()).Page(page).PerPage(100).Execute()
		cancel()
		if err := wrap(op, resp, err); err != nil {
			return nil, err
		}
		for i := range list.Devices {
			out = append(out, fromSDK(&list.Devices[i]))
		}
		if !morePages(list.Meta, page) {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s: more than %d pages", op, maxPages)
}

// Device fetches one device with its facility, project and plan.
func (c *Client) Device(ctx context.Context, id string) (*Device, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	d, resp, err := c.api.DevicesApi.FindDeviceById(cctx, id).Include(deviceIncludes()).Execute()
	if err := wrap("get device "+id, resp, err); err != nil {
		return nil, err
	}
	out := fromSDK(d)
	return &out, nil
}

// CreateRequest describes a new device, with the fields DRP's plugin sent.
type CreateRequest struct {
	// ProjectID is the project to create the device in.
	ProjectID string
	// Hostname is the device hostname.
	Hostname string
	// Facility is the datacenter code, e.g. "ewr1".
	Facility string
	// Plan is the plan slug, e.g. "baremetal_0".
	Plan string
	// OperatingSystem is the OS slug; "custom_ipxe" for DRP.
	OperatingSystem string
	// IPXEScriptURL is chain-loaded at boot with custom_ipxe.
	IPXEScriptURL string
	// AlwaysPXE makes every boot use iPXE, not only the first.
	AlwaysPXE bool
}

// CreateDevice creates an hourly-billed device and returns it as the API
// answered (usually still provisioning).
func (c *Client) CreateDevice(ctx context.Context, r CreateRequest) (*Device, error) {
	billing := metalv1.DEVICECREATEINPUTBILLINGCYCLE_HOURLY
	in := &metalv1.DeviceCreateInFacilityInput{
		Facility:        []string{r.Facility},
		Plan:            r.Plan,
		OperatingSystem: r.OperatingSystem,
		BillingCycle:    &billing,
		AlwaysPxe:       &r.AlwaysPXE,
	}
	if r.Hostname != "" {
		in.Hostname = &r.Hostname
	}
	if r.IPXEScriptURL != "" {
		in.IpxeScriptUrl = &r.IPXEScriptURL
	}
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	d, resp, err := c.api.DevicesApi.CreateDevice(cctx, r.ProjectID).
		CreateDeviceRequest(metalv1.DeviceCreateInFacilityInputAsCreateDeviceRequest(in)).Execute()
	if err := wrap("create device "+r.Hostname+" in project "+r.ProjectID, resp, err); err != nil {
		return nil, err
	}
	out := fromSDK(d)
	return &out, nil
}

// UpdateRequest changes the boot settings of a device; nil fields are left alone.
type UpdateRequest struct {
	// IPXEScriptURL replaces the iPXE script URL.
	IPXEScriptURL *string
	// AlwaysPXE replaces the always-PXE flag.
	AlwaysPXE *bool
}

// UpdateDevice applies r and returns the updated device.
func (c *Client) UpdateDevice(ctx context.Context, id string, r UpdateRequest) (*Device, error) {
	in := metalv1.DeviceUpdateInput{IpxeScriptUrl: r.IPXEScriptURL, AlwaysPxe: r.AlwaysPXE}
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	d, resp, err := c.api.DevicesApi.UpdateDevice(cctx, id).DeviceUpdateInput(in).Include(deviceIncludes()).Execute()
	if err := wrap("update device "+id, resp, err); err != nil {
		return nil, err
	}
	out := fromSDK(d)
	return &out, nil
}

// PerformAction runs a power action (ActionPowerOn, ActionPowerOff,
// ActionReboot) on a device.
func (c *Client) PerformAction(ctx context.Context, id, action string) error {
	typ, err := metalv1.NewDeviceActionInputTypeFromValue(action)
	if err != nil {
		return fmt.Errorf("%s device %s: %w", action, id, err)
	}
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.DevicesApi.PerformAction(cctx, id).DeviceActionInput(*metalv1.NewDeviceActionInput(*typ)).Execute()
	return wrap(action+" device "+id, resp, err)
}

// DeleteDevice deletes a device.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.DevicesApi.DeleteDevice(cctx, id).Execute()
	return wrap("delete device "+id, resp, err)
}
