package models

// The provisioning object types below are minimal versions of DRP's
// (same JSON field names): enough for plugin content packs, which ship
// stages, tasks, templates, workflows and bootenvs, to load completely and
// be shown as DRP shows them. provisiond stores and serves them; it does
// not run tasks or render templates.

// TemplateInfo is a template reference or inline template of a task,
// stage or bootenv.
type TemplateInfo struct {
	// Name of the template entry.
	Name string
	// Path is a text/template for where the rendered file goes ("" = run
	// it as a task script).
	Path string
	// Link optionally references another file to put at Path.
	Link string
	// ID names a Template object to render; either ID or Contents is set.
	ID string
	// Contents is an inline template.
	Contents string
	// Meta holds hints for the job runner.
	Meta map[string]string
}

func fillTemplates(t []TemplateInfo) []TemplateInfo {
	if t == nil {
		return []TemplateInfo{}
	}
	for i := range t {
		if t[i].Meta == nil {
			t[i].Meta = map[string]string{}
		}
	}
	return t
}

// Task is a unit of work that runs on a machine (prefix "tasks").
type Task struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key.
	Name string
	// Description is a one-line description.
	Description string
	// Documentation describes the task in detail.
	Documentation string
	// Templates are rendered and run for the task.
	Templates []TemplateInfo
	// RequiredParams must resolve on the machine.
	RequiredParams []string
	// OptionalParams may be used by the templates.
	OptionalParams []string
	// Prerequisites are tasks that must run before this one.
	Prerequisites []string
}

// Prefix implements Model.
func (t *Task) Prefix() string { return "tasks" }

// Key implements Model.
func (t *Task) Key() string { return t.Name }

// KeyName implements Model.
func (t *Task) KeyName() string { return "Name" }

// Fill implements Model.
func (t *Task) Fill() {
	t.Validation.fill()
	t.Meta = fillMeta(t.Meta)
	t.Templates = fillTemplates(t.Templates)
	t.RequiredParams = fillStrings(t.RequiredParams)
	t.OptionalParams = fillStrings(t.OptionalParams)
	t.Prerequisites = fillStrings(t.Prerequisites)
}

// Stage groups tasks, params and profiles a machine runs through (prefix
// "stages").
type Stage struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key.
	Name string
	// Description is a one-line description.
	Description string
	// Documentation describes the stage in detail.
	Documentation string
	// Templates are rendered when a machine enters the stage.
	Templates []TemplateInfo
	// RequiredParams must resolve on the machine.
	RequiredParams []string
	// OptionalParams may be used by the templates.
	OptionalParams []string
	// Params apply to machines in this stage.
	Params map[string]any
	// BootEnv is the boot environment the stage needs ("" = any).
	BootEnv string
	// Tasks run in order when a machine enters the stage.
	Tasks []string
	// Profiles apply to machines in this stage.
	Profiles []string
	// Reboot asks for a network boot on entering the stage.
	Reboot bool
	// RunnerWait is deprecated in DRP and always true there.
	RunnerWait bool
}

// Prefix implements Model.
func (s *Stage) Prefix() string { return "stages" }

// Key implements Model.
func (s *Stage) Key() string { return s.Name }

// KeyName implements Model.
func (s *Stage) KeyName() string { return "Name" }

// Fill implements Model.
func (s *Stage) Fill() {
	s.Validation.fill()
	s.Meta = fillMeta(s.Meta)
	s.Templates = fillTemplates(s.Templates)
	s.RequiredParams = fillStrings(s.RequiredParams)
	s.OptionalParams = fillStrings(s.OptionalParams)
	s.Params = fillParams(s.Params)
	s.Tasks = fillStrings(s.Tasks)
	s.Profiles = fillStrings(s.Profiles)
}

// GetParams implements Paramer.
func (s *Stage) GetParams() map[string]any { return s.Params }

// SetParams implements Paramer.
func (s *Stage) SetParams(p map[string]any) { s.Params = p }

// GetProfiles implements Profiler.
func (s *Stage) GetProfiles() []string { return s.Profiles }

// Template is a text/template that tasks, stages and bootenvs reference by
// ID (prefix "templates").
type Template struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// ID is the key, e.g. "ipmi-configure.sh.tmpl".
	ID string
	// Description is a one-line description.
	Description string
	// Contents is the template text.
	Contents string
}

// Prefix implements Model.
func (t *Template) Prefix() string { return "templates" }

// Key implements Model.
func (t *Template) Key() string { return t.ID }

// KeyName implements Model.
func (t *Template) KeyName() string { return "ID" }

// Fill implements Model.
func (t *Template) Fill() {
	t.Validation.fill()
	t.Meta = fillMeta(t.Meta)
}

// Workflow is an ordered list of stages (prefix "workflows").
type Workflow struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key.
	Name string
	// Description is a one-line description.
	Description string
	// Documentation describes the workflow in detail.
	Documentation string
	// Stages run in order.
	Stages []string
}

// Prefix implements Model.
func (w *Workflow) Prefix() string { return "workflows" }

// Key implements Model.
func (w *Workflow) Key() string { return w.Name }

// KeyName implements Model.
func (w *Workflow) KeyName() string { return "Name" }

// Fill implements Model.
func (w *Workflow) Fill() {
	w.Validation.fill()
	w.Meta = fillMeta(w.Meta)
	w.Stages = fillStrings(w.Stages)
}

// ArchInfo is the per-architecture part of a boot environment's OS.
type ArchInfo struct {
	// IsoFile is the install archive for this architecture.
	IsoFile string
	// Sha256 is IsoFile's checksum.
	Sha256 string
	// IsoUrl is where IsoFile can be downloaded.
	IsoUrl string
	// Kernel is the kernel path inside the archive.
	Kernel string
	// Initrds are the initrd paths inside the archive.
	Initrds []string
	// BootParams is a template of the kernel command line.
	BootParams string
	// Loader is the boot loader to use.
	Loader string
}

// OsInfo describes the operating system of a boot environment.
type OsInfo struct {
	// Name is family-version, e.g. "centos-8".
	Name string
	// Family is the distribution lineage.
	Family string
	// Codename is the release codename, if any.
	Codename string
	// Version is the OS version, if any.
	Version string
	// IsoFile is the amd64 install archive.
	IsoFile string
	// IsoSha256 is IsoFile's checksum.
	IsoSha256 string
	// IsoUrl is where IsoFile can be downloaded.
	IsoUrl string
	// SupportedArchitectures maps an architecture to its details.
	SupportedArchitectures map[string]ArchInfo
}

// BootEnv is a boot environment (prefix "bootenvs").
type BootEnv struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key.
	Name string
	// Description is a one-line description.
	Description string
	// Documentation describes the boot environment in detail.
	Documentation string
	// OS describes the operating system.
	OS OsInfo
	// Templates are rendered for machines in this boot environment.
	Templates []TemplateInfo
	// Kernel is the kernel path; empty means not network bootable.
	Kernel string
	// Initrds are the initrd paths.
	Initrds []string
	// BootParams is a template of the kernel command line.
	BootParams string
	// RequiredParams must resolve on the machine.
	RequiredParams []string
	// OptionalParams may be used by the templates.
	OptionalParams []string
	// OnlyUnknown marks boot environments for unknown machines.
	OnlyUnknown bool
}

// Prefix implements Model.
func (b *BootEnv) Prefix() string { return "bootenvs" }

// Key implements Model.
func (b *BootEnv) Key() string { return b.Name }

// KeyName implements Model.
func (b *BootEnv) KeyName() string { return "Name" }

// Fill implements Model.
func (b *BootEnv) Fill() {
	b.Validation.fill()
	b.Meta = fillMeta(b.Meta)
	b.Templates = fillTemplates(b.Templates)
	b.Initrds = fillStrings(b.Initrds)
	b.RequiredParams = fillStrings(b.RequiredParams)
	b.OptionalParams = fillStrings(b.OptionalParams)
	if b.OS.SupportedArchitectures == nil {
		b.OS.SupportedArchitectures = map[string]ArchInfo{}
	}
	for k, v := range b.OS.SupportedArchitectures {
		v.Initrds = fillStrings(v.Initrds)
		b.OS.SupportedArchitectures[k] = v
	}
}
