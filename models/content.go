package models

// ContentMetaData is the "meta" section of a content bundle. All values are
// strings, as in DRP.
type ContentMetaData struct {
	Name             string `json:"Name" yaml:"Name"`
	Version          string `json:"Version" yaml:"Version"`
	Description      string `json:"Description" yaml:"Description"`
	Source           string `json:"Source" yaml:"Source"`
	Documentation    string `json:"Documentation" yaml:"Documentation"`
	RequiredFeatures string `json:"RequiredFeatures" yaml:"RequiredFeatures"`
	Prerequisites    string `json:"Prerequisites" yaml:"Prerequisites"`
	Color            string `json:"Color" yaml:"Color"`
	Icon             string `json:"Icon" yaml:"Icon"`
	Author           string `json:"Author" yaml:"Author"`
	DisplayName      string `json:"DisplayName" yaml:"DisplayName"`
	License          string `json:"License" yaml:"License"`
	Copyright        string `json:"Copyright" yaml:"Copyright"`
	CodeSource       string `json:"CodeSource" yaml:"CodeSource"`
	Order            string `json:"Order" yaml:"Order"`
	Tags             string `json:"Tags" yaml:"Tags"`
	DocUrl           string `json:"DocUrl" yaml:"DocUrl"`
	Type             string `json:"Type" yaml:"Type"`
	Writable         bool   `json:",omitempty" yaml:"Writable,omitempty"`
	Overwritable     bool   `json:",omitempty" yaml:"Overwritable,omitempty"`
}

// MetaFields yields (index, name) of the string fields of ContentMetaData
// in DRP's order; they drive the ._<Field>.meta files of the directory
// format. It is an iterator rather than a slice so no importer can change
// the list: use it as `for _, f := range models.MetaFields`.
func MetaFields(yield func(int, string) bool) {
	for i, f := range [...]string{"Name", "Version", "Description", "Source", "Documentation", "RequiredFeatures",
		"Type", "Color", "Icon", "Author", "DisplayName", "License", "Copyright", "CodeSource", "Order", "Tags",
		"DocUrl", "Prerequisites"} {
		if !yield(i, f) {
			return
		}
	}
}

// Content is a content bundle: metadata plus sections of objects keyed by
// prefix then object key.
type Content struct {
	Meta     ContentMetaData           `json:"meta" yaml:"meta"`
	Sections map[string]map[string]any `json:"sections" yaml:"sections"`
}

// SecureData is an encrypted param value in DRP's NaCl box format: Key is
// the sender's ephemeral public key, Nonce 24 random bytes, Payload the
// sealed JSON value. All three are base64 in JSON.
type SecureData struct {
	Key     []byte
	Nonce   []byte
	Payload []byte
}
