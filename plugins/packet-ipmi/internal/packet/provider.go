// Package packet is the logic of the packet-ipmi plugin: out-of-band
// power control and lifecycle of Equinix Metal (formerly Packet) devices as
// provision machines, with DRP's provider, action and param names so DRP
// content keeps working.
//
// It is independent of the plugin SDK: Plugin has the SDK's Config, Action,
// Publish, SelectEvents and Stop methods, and the DRP REST callbacks go
// through pluginutil.API, which *client.Client implements.
package packet

import "github.com/provisionhq/provision/models"

// ProviderName is the plugin provider name DRP content refers to.
const ProviderName = "packet-ipmi"

// Short is the one-line description given to the SDK's InitApp.
const Short = "Provides out-of-band IPMI-like controls for Equinix Metal (formerly Packet.net)"

// Param names. The first ten are DRP's; the rest are provision additions.
const (
	ParamAlwaysPXE      = "packet/always-pxe"
	ParamAPIKey         = "packet/api-key"
	ParamFacility       = "packet/facility"
	ParamImportExisting = "packet/import-existing"
	ParamIPXEScriptURL  = "packet/ipxe-script-url"
	ParamName           = "packet/name"
	ParamPlan           = "packet/plan"
	ParamProjectID      = "packet/project-id"
	ParamSOS            = "packet/sos"
	ParamUUID           = "packet/uuid"

	// ParamAPIURL points the plugin at any Metal-compatible API.
	ParamAPIURL = "packet/api-url"
	// ParamDeleteMissing lets Config delete machines whose device is gone.
	ParamDeleteMissing = "packet/delete-missing"
	// ParamPollInterval is the device poll interval in seconds.
	ParamPollInterval = "packet/poll-interval"
	// ParamCreateTimeout is how long a new device may take to become ready, in seconds.
	ParamCreateTimeout = "packet/create-timeout"
	// ParamAPITimeout bounds each Metal API call, in seconds.
	ParamAPITimeout = "packet/api-timeout"
	// ParamMetadataURL is the metadata service the content's tasks query.
	ParamMetadataURL = "packet/metadata-url"

	// ParamMachinePlugin names the plugin instance that manages a machine.
	ParamMachinePlugin = "machine-plugin"
)

// ConsoleProfile is the profile every mapped machine gets (serial console).
const ConsoleProfile = "packet-console"

// Defaults, as in DRP's plugin where it had one.
const (
	DefaultFacility        = "ewr1"
	DefaultPlan            = "baremetal_0"
	DefaultName            = "fred"
	DefaultOperatingSystem = "custom_ipxe"
	DefaultPollSeconds     = 5
	DefaultCreateSeconds   = 15 * 60
	DefaultAPISeconds      = 30
)

// Action names, exactly as in DRP.
const (
	CmdCreateVM     = "createVm"
	CmdStartVM      = "startVm"
	CmdStopVM       = "stopVm"
	CmdDestroyVM    = "destroyVm"
	CmdPowerOn      = "poweron"
	CmdPowerOff     = "poweroff"
	CmdPowerCycle   = "powercycle"
	CmdNextBootPXE  = "nextbootpxe"
	CmdNextBootDisk = "nextbootdisk"
	CmdUpdatePXE    = "updatepxe"
)

// Definition returns the plugin provider definition (without Content,
// which the SDK adds from the embedded content pack).
func Definition(version string) models.PluginProvider {
	vm := func(cmd string, optional ...string) models.AvailableAction {
		return models.AvailableAction{Command: cmd, Model: "plugins",
			RequiredParams: []string{ParamAPIKey}, OptionalParams: optional}
	}
	machine := func(cmd string, optional ...string) models.AvailableAction {
		return models.AvailableAction{Command: cmd, Model: "machines",
			RequiredParams: []string{ParamUUID}, OptionalParams: optional}
	}
	def := models.PluginProvider{
		Name:          ProviderName,
		Version:       version,
		PluginVersion: 4,
		HasPublish:    false,
		AvailableActions: []models.AvailableAction{
			vm(CmdCreateVM, ParamName, ParamFacility, ParamPlan, ParamProjectID),
			vm(CmdStartVM, ParamUUID),
			vm(CmdStopVM, ParamUUID),
			vm(CmdDestroyVM, ParamUUID),
			machine(CmdPowerOn),
			machine(CmdPowerOff),
			machine(CmdPowerCycle),
			machine(CmdNextBootPXE),
			machine(CmdNextBootDisk),
			machine(CmdUpdatePXE, ParamIPXEScriptURL, ParamAlwaysPXE),
		},
		RequiredParams: []string{ParamAPIKey},
		OptionalParams: []string{ParamProjectID, ParamImportExisting,
			ParamAPIURL, ParamDeleteMissing, ParamPollInterval, ParamCreateTimeout, ParamAPITimeout},
	}
	def.Fill()
	return def
}

// EventFilters returns the websocket filters the plugin registers
// (SelectEvents): machine creations and deletions.
func EventFilters() []string { return []string{"machines.create.*", "machines.delete.*"} }
