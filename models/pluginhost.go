package models

// PluginProviderInfo is the API form of a plugin provider: DRP's fields
// (Content omitted) plus what provisiond adds. DRP clients decode it into
// PluginProvider and ignore the extra fields.
type PluginProviderInfo struct {
	PluginProvider
	// Sha256Sum is the hex SHA-256 of the provider executable.
	Sha256Sum string `json:",omitempty"`
	// Errors says why the provider could not be loaded (define failed,
	// printed garbage, bad version...); empty for a working provider.
	Errors []string `json:",omitempty"`
}
