package models

import (
	"net"

	"github.com/google/uuid"
)

// Machine is a physical or virtual server managed by provision.
type Machine struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is unique and usable as Name:<n> in URLs.
	Name string
	// Description is free text.
	Description string
	// Uuid is the key, generated on create when empty.
	Uuid uuid.UUID
	// CurrentJob is the running job, if any.
	CurrentJob uuid.UUID
	// Address is the machine's primary IP.
	Address net.IP
	// Stage is the current stage name.
	Stage string
	// BootEnv is the current boot environment.
	BootEnv string
	// Profiles are consulted in order for params after the machine's own.
	Profiles []string
	// Params are set directly on the machine.
	Params map[string]any
	// Tasks is the task list, possibly holding action:<cmd> entries.
	Tasks []string
	// CurrentTask indexes Tasks.
	CurrentTask int
	// RetryTaskAttempt counts retries of the current task.
	RetryTaskAttempt int
	// Runnable says whether the machine may run tasks.
	Runnable bool
	// Secret is blanked in API output.
	Secret string
	// OS is the installed operating system.
	OS string
	// Arch is the machine architecture.
	Arch string
	// Workflow is the current workflow.
	Workflow string
	// Context is the execution context.
	Context string
	// Pool is the machine pool.
	Pool string
	// HardwareAddrs lists the machine's MAC addresses.
	HardwareAddrs []string
	// Locked machines refuse changes.
	Locked bool
}

// Prefix implements Model.
func (m *Machine) Prefix() string { return "machines" }

// Key implements Model.
func (m *Machine) Key() string { return m.Uuid.String() }

// KeyName implements Model.
func (m *Machine) KeyName() string { return "Uuid" }

// UUID returns the key as a string, as DRP's machine.UUID() does.
func (m *Machine) UUID() string { return m.Uuid.String() }

// Fill implements Model.
func (m *Machine) Fill() {
	m.Validation.fill()
	m.Meta = fillMeta(m.Meta)
	m.Params = fillParams(m.Params)
	m.Profiles = fillStrings(m.Profiles)
	m.Tasks = fillStrings(m.Tasks)
	m.HardwareAddrs = fillStrings(m.HardwareAddrs)
	if m.Arch == "" {
		m.Arch = "amd64"
	}
}

// GetParams implements Paramer.
func (m *Machine) GetParams() map[string]any { return m.Params }

// SetParams implements Paramer.
func (m *Machine) SetParams(p map[string]any) { m.Params = p }

// GetProfiles implements Profiler.
func (m *Machine) GetProfiles() []string { return m.Profiles }
