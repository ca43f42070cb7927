package metal

import (
	"strings"

	"github.com/equinix/equinix-sdk-go/services/metalv1"
)

// Project is a Metal project.
type Project struct {
	// ID is the project UUID.
	ID string
	// Name is the display name.
	Name string
}

// Device is the part of a Metal device the plugin uses.
type Device struct {
	// ID is the device UUID (DRP param packet/uuid).
	ID string
	// Hostname is the device hostname (DRP machine Name).
	Hostname string
	// State is e.g. "queued", "provisioning", "active".
	State string
	// PlanSlug is the plan, e.g. "baremetal_0".
	PlanSlug string
	// FacilityCode is the datacenter code, e.g. "ewr1".
	FacilityCode string
	// ProjectID is the owning project.
	ProjectID string
	// AlwaysPXE mirrors always_pxe.
	AlwaysPXE bool
	// IPXEScriptURL mirrors ipxe_script_url.
	IPXEScriptURL string
	// SOS is the serial-over-SSH host name the API reports ("" when absent).
	SOS string
	// IPs are the device's addresses.
	IPs []IP
	// MACs are the MAC addresses of the physical ("NetworkPort") ports.
	MACs []string
}

// IP is one address of a device.
type IP struct {
	// Address is the textual address.
	Address string
	// Family is 4 or 6.
	Family int
	// Public is true for public addresses.
	Public bool
}

// PublicIPv4 returns the last public IPv4 address, as DRP's mapping did, or "".
func (d *Device) PublicIPv4() string {
	addr := ""
	for _, ip := range d.IPs {
		if ip.Family == 4 && ip.Public {
			addr = ip.Address
		}
	}
	return addr
}

// Ready reports whether a freshly created device is usable: active, or with
// a public IPv4 address and at least one MAC (DRP's rule).
func (d *Device) Ready() bool {
	return d.State == "active" || (d.PublicIPv4() != "" && len(d.MACs) > 0)
}

// fromSDK converts an SDK device.
func fromSDK(d *metalv1.Device) Device {
	out := Device{
		ID:            d.GetId(),
		Hostname:      d.GetHostname(),
		State:         string(d.GetState()),
		AlwaysPXE:     d.GetAlwaysPxe(),
		IPXEScriptURL: d.GetIpxeScriptUrl(),
		SOS:           d.GetSos(),
	}
	if d.Plan != nil {
		out.PlanSlug = d.Plan.GetSlug()
	}
	if d.Facility != nil {
		out.FacilityCode = d.Facility.GetCode()
	}
	if d.Project != nil {
		out.ProjectID = d.Project.GetId()
		if out.ProjectID == "" {
			out.ProjectID = lastSegment(d.Project.GetHref())
		}
	}
	if out.ProjectID == "" && d.ProjectLite != nil {
		out.ProjectID = lastSegment(d.ProjectLite.Href)
	}
	for _, ip := range d.IpAddresses {
		out.IPs = append(out.IPs, IP{Address: ip.GetAddress(), Family: int(ip.GetAddressFamily()), Public: ip.GetPublic()})
	}
	for _, p := range d.NetworkPorts {
		if p.Type == nil || *p.Type != metalv1.PORTTYPE_NETWORK_PORT || p.Data == nil {
			continue
		}
		if mac := p.Data.GetMac(); mac != "" {
			out.MACs = append(out.MACs, mac)
		}
	}
	return out
}

// lastSegment returns the final path element of an href like /projects/<id>.
func lastSegment(href string) string {
	href = strings.TrimRight(href, "/")
	if i := strings.LastIndex(href, "/"); i >= 0 {
		return href[i+1:]
	}
	return href
}
