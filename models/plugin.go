package models

// Plugin is one configured, running instance of a plugin provider.
type Plugin struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key; it must match NameRE.
	Name string
	// Description is free text; changing it restarts the instance.
	Description string
	// Documentation is longer free text.
	Documentation string
	// Params are sent to the plugin on /config; changing them restarts it.
	Params map[string]any
	// Provider names the plugin provider to run.
	Provider string
	// PluginErrors are runtime errors of the instance (start, config, crashes).
	PluginErrors []string
}

// Prefix implements Model.
func (p *Plugin) Prefix() string { return "plugins" }

// Key implements Model.
func (p *Plugin) Key() string { return p.Name }

// KeyName implements Model.
func (p *Plugin) KeyName() string { return "Name" }

// Fill implements Model.
func (p *Plugin) Fill() {
	p.Validation.fill()
	p.Meta = fillMeta(p.Meta)
	p.Params = fillParams(p.Params)
	p.PluginErrors = fillStrings(p.PluginErrors)
}

// GetParams implements Paramer.
func (p *Plugin) GetParams() map[string]any { return p.Params }

// SetParams implements Paramer.
func (p *Plugin) SetParams(v map[string]any) { p.Params = v }

// AvailableAction is one command a provider offers on objects of Model
// ("" = a system action).
type AvailableAction struct {
	// Provider is filled in by the host with the provider name.
	Provider string
	// Model is the object prefix the action applies to, "" for system actions.
	Model string
	// Command is the action name.
	Command string
	// RequiredParams must resolve for the action to run.
	RequiredParams []string
	// OptionalParams are passed when they resolve.
	OptionalParams []string
}

// Fill implements the DRP convention of empty, not nil, slices.
func (a *AvailableAction) Fill() {
	a.RequiredParams = fillStrings(a.RequiredParams)
	a.OptionalParams = fillStrings(a.OptionalParams)
}

// PluginProvider is what a provider binary prints for `define`.
type PluginProvider struct {
	// Meta is derived from the content bundle metadata.
	Meta Meta
	// Name is the key.
	Name string
	// Version is the provider version.
	Version string
	// PluginVersion must be 4.
	PluginVersion int
	// AutoStart makes the host create a Plugin named like the provider.
	AutoStart bool
	// HasPublish asks for every event on /api-plugin/v4/publish.
	HasPublish bool
	// AvailableActions are the actions the provider implements.
	AvailableActions []AvailableAction
	// RequiredParams must be set on a Plugin before it starts.
	RequiredParams []string
	// OptionalParams may be set on a Plugin.
	OptionalParams []string
	// StoreObjects declares extra object types: prefix -> {} or a schema.
	StoreObjects map[string]any
	// Documentation is free text.
	Documentation string
	// Content is the content bundle as a YAML document; omitted by the API.
	Content string `json:",omitempty"`
}

// Prefix implements Model.
func (p *PluginProvider) Prefix() string { return "plugin_providers" }

// Key implements Model.
func (p *PluginProvider) Key() string { return p.Name }

// KeyName implements Model.
func (p *PluginProvider) KeyName() string { return "Name" }

// Fill implements Model. Unlike DRP's Fill it fills the actions in place.
func (p *PluginProvider) Fill() {
	p.Meta = fillMeta(p.Meta)
	if p.AvailableActions == nil {
		p.AvailableActions = []AvailableAction{}
	}
	for i := range p.AvailableActions {
		p.AvailableActions[i].Fill()
	}
	p.RequiredParams = fillStrings(p.RequiredParams)
	p.OptionalParams = fillStrings(p.OptionalParams)
	if p.StoreObjects == nil {
		p.StoreObjects = map[string]any{}
	}
}

// PluginProviderUploadInfo is the answer to a provider upload.
type PluginProviderUploadInfo struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Action is the body the host POSTs to /api-plugin/v4/action.
type Action struct {
	// Model is the full JSON of the target object (nil for system actions).
	Model any
	// Plugin is the instance chosen by the host.
	Plugin string
	// Command is the action name.
	Command string
	// CommandSet is reserved by DRP; always "".
	CommandSet string
	// Params are the caller's params plus the resolved required/optional ones.
	Params map[string]any
}
