package models

// RawModel is an object of a type declared by a plugin provider's
// StoreObjects: a free-form map whose key field is "Id" and whose "Type" is
// the prefix.
type RawModel map[string]any

// Prefix implements Model.
func (r RawModel) Prefix() string { s, _ := r["Type"].(string); return s }

// Key implements Model.
func (r RawModel) Key() string { s, _ := r["Id"].(string); return s }

// KeyName implements Model.
func (r RawModel) KeyName() string { return "Id" }

// Fill implements Model: it sets the common fields DRP always shows.
func (r RawModel) Fill() {
	def := map[string]any{
		"Validated": false, "Available": false, "Errors": []any{}, "Meta": map[string]any{},
		"Params": map[string]any{}, "Bundle": "", "Endpoint": "", "ReadOnly": false,
		"Documentation": "", "Description": "",
	}
	for k, v := range def {
		if _, ok := r[k]; !ok || r[k] == nil {
			r[k] = v
		}
	}
}

// GetParams implements Paramer.
func (r RawModel) GetParams() map[string]any {
	p, _ := r["Params"].(map[string]any)
	return p
}

// SetParams implements Paramer.
func (r RawModel) SetParams(p map[string]any) { r["Params"] = p }
