package vboxplugin

import (
	"embed"
	"io/fs"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/content"
)

// ProviderName is the provider name DRP content refers to.
const ProviderName = "virtualbox-ipmi"

// Param names, kept from DRP so that existing content keeps working.
const (
	ParamCPUs       = "virtualbox/cpus"
	ParamDiskSizeMB = "virtualbox/disk-size-mb"
	ParamID         = "virtualbox/id"
	ParamMemSizeMB  = "virtualbox/mem-size-mb"
	ParamName       = "virtualbox/name"
	ParamUser       = "virtualbox/user"
	ParamVMPath     = "virtualbox/vm-path"
	ParamVRAMSizeMB = "virtualbox/vram-size-mb"
	// ParamVBoxManage and ParamImportExisting are new.
	ParamVBoxManage     = "virtualbox/vboxmanage"
	ParamImportExisting = "virtualbox/import-existing"
	// ParamMachinePlugin names the plugin instance that manages a machine.
	ParamMachinePlugin = "machine-plugin"
)

// Defaults of the sizing params (DRP's values).
const (
	DefaultCPUs   = 2
	DefaultDiskMB = 20480
	DefaultMemMB  = 2048
	DefaultVRAMMB = 128
)

// Action names, in DRP's order.
const (
	ActionCreateVM     = "createVm"
	ActionStartVM      = "startVm"
	ActionStopVM       = "stopVm"
	ActionDestroyVM    = "destroyVm"
	ActionPowerOn      = "poweron"
	ActionPowerOff     = "poweroff"
	ActionPowerCycle   = "powercycle"
	ActionNextBootPXE  = "nextbootpxe"
	ActionNextBootDisk = "nextbootdisk"
)

//go:embed all:content
var contentFS embed.FS

// Content returns the embedded content pack in DRP's directory format.
func Content() fs.FS {
	return content.Root(contentFS)
}

// Definition returns the provider definition printed by `define`: DRP's 9
// actions with their models and params. virtualbox/user moved from
// Required to Optional (plugin and VM actions): without it VBoxManage runs
// as the plugin's own user instead of through sudo.
func Definition(version string) models.PluginProvider {
	vmOpt := func(extra ...string) []string { return append([]string{ParamUser}, extra...) }
	machine := func(cmd string) models.AvailableAction {
		return models.AvailableAction{Model: "machines", Command: cmd, RequiredParams: []string{ParamID}, OptionalParams: []string{}}
	}
	return models.PluginProvider{
		Name:          ProviderName,
		Version:       version,
		PluginVersion: 4,
		HasPublish:    false,
		AvailableActions: []models.AvailableAction{
			{Model: "plugins", Command: ActionCreateVM, RequiredParams: []string{},
				OptionalParams: vmOpt(ParamName, ParamCPUs, ParamDiskSizeMB, ParamMemSizeMB, ParamVRAMSizeMB, ParamID)},
			{Model: "plugins", Command: ActionStartVM, RequiredParams: []string{}, OptionalParams: vmOpt(ParamID, ParamName)},
			{Model: "plugins", Command: ActionStopVM, RequiredParams: []string{}, OptionalParams: vmOpt(ParamID, ParamName)},
			{Model: "plugins", Command: ActionDestroyVM, RequiredParams: []string{}, OptionalParams: vmOpt(ParamID, ParamName)},
			machine(ActionPowerOn),
			machine(ActionPowerOff),
			machine(ActionPowerCycle),
			machine(ActionNextBootPXE),
			machine(ActionNextBootDisk),
		},
		RequiredParams: []string{},
		OptionalParams: []string{ParamUser, ParamVMPath, ParamVBoxManage, ParamImportExisting},
	}
}
