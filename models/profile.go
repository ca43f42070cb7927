package models

// Profile is a named set of params shared by machines. The profile named
// "global" always exists and is consulted last.
type Profile struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key.
	Name string
	// Description is free text.
	Description string
	// Documentation is longer free text.
	Documentation string
	// Params are the profile's values.
	Params map[string]any
	// Profiles are sub-profiles consulted after this one's own params.
	Profiles []string
}

// Prefix implements Model.
func (p *Profile) Prefix() string { return "profiles" }

// Key implements Model.
func (p *Profile) Key() string { return p.Name }

// KeyName implements Model.
func (p *Profile) KeyName() string { return "Name" }

// Fill implements Model.
func (p *Profile) Fill() {
	p.Validation.fill()
	p.Meta = fillMeta(p.Meta)
	p.Params = fillParams(p.Params)
	p.Profiles = fillStrings(p.Profiles)
}

// GetParams implements Paramer.
func (p *Profile) GetParams() map[string]any { return p.Params }

// SetParams implements Paramer.
func (p *Profile) SetParams(v map[string]any) { p.Params = v }

// GetProfiles implements Profiler.
func (p *Profile) GetProfiles() []string { return p.Profiles }

// Param defines a param: its name, a JSON Schema that every value must
// satisfy, and whether values are secret.
type Param struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key; it may contain slashes.
	Name string
	// Description is free text.
	Description string
	// Documentation is longer free text.
	Documentation string
	// Secure values are encrypted at rest and shown only with decode=true.
	Secure bool
	// Schema is a JSON Schema for values of this param.
	Schema any
}

// Prefix implements Model.
func (p *Param) Prefix() string { return "params" }

// Key implements Model.
func (p *Param) Key() string { return p.Name }

// KeyName implements Model.
func (p *Param) KeyName() string { return "Name" }

// Fill implements Model.
func (p *Param) Fill() {
	p.Validation.fill()
	p.Meta = fillMeta(p.Meta)
	if p.Schema == nil {
		p.Schema = map[string]any{}
	}
}

// DefaultValue returns the schema's "default" when it has one.
func (p *Param) DefaultValue() (any, bool) {
	s, ok := p.Schema.(map[string]any)
	if !ok {
		return nil, false
	}
	v, ok := s["default"]
	return v, ok
}
