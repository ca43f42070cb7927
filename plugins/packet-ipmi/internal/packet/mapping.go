package packet

import (
	"net"
	"slices"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// sosFor is the serial-over-SSH login of a device: <id>@<sos host>. The API
// reports the host in "sos"; without it the Equinix naming pattern
// sos.<facility>.platformequinix.com is used (DRP's sos.<facility>.packet.net
// hosts no longer exist).
func sosFor(d *metal.Device) string {
	switch {
	case d.SOS != "":
		return d.ID + "@" + d.SOS
	case d.FacilityCode != "":
		return d.ID + "@sos." + d.FacilityCode + ".platformequinix.com"
	}
	return ""
}

// applyDevice updates m from d, as DRP's updateDrpMachineFromPacketDevice:
// Name, the packet/* params, machine-plugin, the packet-console profile,
// the last public IPv4 as Address and the NetworkPort MACs as
// HardwareAddrs. Fields the API left empty do not erase what m has.
func applyDevice(m *models.Machine, d *metal.Device, plugin string) {
	if m.Params == nil {
		m.Params = map[string]any{}
	}
	switch {
	case d.Hostname != "":
		m.Name = d.Hostname
	case m.Name == "":
		m.Name = "packet-" + d.ID
	}
	m.Params[ParamUUID] = d.ID
	setIf := func(k, v string) {
		if v != "" {
			m.Params[k] = v
		}
	}
	setIf(ParamPlan, d.PlanSlug)
	setIf(ParamFacility, d.FacilityCode)
	setIf(ParamProjectID, d.ProjectID)
	setIf(ParamSOS, sosFor(d))
	setIf(ParamIPXEScriptURL, d.IPXEScriptURL)
	m.Params[ParamAlwaysPXE] = d.AlwaysPXE
	m.Params[ParamMachinePlugin] = plugin
	if !slices.Contains(m.Profiles, ConsoleProfile) {
		m.Profiles = append(m.Profiles, ConsoleProfile)
	}
	if ip := net.ParseIP(d.PublicIPv4()); ip != nil {
		m.Address = ip
	}
	m.HardwareAddrs = append([]string{}, d.MACs...)
}

// machineFromDevice builds a new machine for a device (import, createVm).
func machineFromDevice(d *metal.Device, plugin string) *models.Machine {
	m := &models.Machine{}
	m.Fill()
	applyDevice(m, d, plugin)
	return m
}
