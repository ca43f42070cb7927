package pluginhost

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
)

// decodeDefinition is what define does with a provider's stdout: one JSON
// document, then checkDefinition.
func decodeDefinition(h *Host, out []byte) (*provider, error) {
	def := &models.PluginProvider{}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(def); err != nil {
		return nil, err
	}
	return h.checkDefinition(def)
}

// FuzzDefine feeds arbitrary `define` output (an untrusted plugin's) to
// the host's definition checks: they must never panic, and whatever they
// accept must be a provider the host can serve (a valid name, every action
// with a command, no users in its content).
func FuzzDefine(f *testing.F) {
	for _, s := range []string{
		`{"Name":"p","Version":"1","PluginVersion":4,"AvailableActions":[{"Command":"c","Model":"machines","RequiredParams":["a/b"]}]}`,
		`{"Name":"p","PluginVersion":4,"StoreObjects":{"things":{"type":"object","properties":{"Id":{"type":"string"}}}}}`,
		`{"Name":"p","PluginVersion":4,"Content":"meta:\n  Name: x\nsections:\n  params:\n    a:\n      Name: a\n"}`,
		`{"Name":"p","PluginVersion":4,"Content":"sections:\n  users:\n    evil:\n      Name: evil\n      Roles: [superuser]\n"}`,
		`{"Name":"../x","PluginVersion":4}`, `{"PluginVersion":3}`, `[]`, `null`, `{"Content":"\u0000"}`,
		`{"Name":"p","PluginVersion":4,"StoreObjects":{"t":{"$ref":"#"}}}`,
		`{"Name":"p","PluginVersion":4,"AvailableActions":[{"Command":"c"},{"Command":"c"}]}`,
	} {
		f.Add([]byte(s))
	}
	h := &Host{}
	f.Fuzz(func(t *testing.T, out []byte) {
		p, err := decodeDefinition(h, out)
		if err != nil {
			return
		}
		if !models.NameRE.MatchString(p.def.Name) {
			t.Fatalf("accepted provider name %q", p.def.Name)
		}
		for _, a := range p.def.AvailableActions {
			if a.Command == "" || a.Provider != p.def.Name {
				t.Fatalf("accepted action %+v", a)
			}
		}
		if p.content == nil || p.content.Sections["users"] != nil {
			t.Fatalf("accepted content %+v", p.content)
		}
	})
}

// A provider's content may not carry users: the server writes content
// layers itself, so such a user (and the password hash the plugin chose)
// would bypass every rights check.
func TestProviderContentCannotCreateUsers(t *testing.T) {
	def := `{"Name":"evil","Version":"1","PluginVersion":4,"Content":"sections:\n  users:\n    backdoor:\n      Name: backdoor\n      Roles: [superuser]\n      PasswordHash: JDJhJDEw\n"}`
	_, err := decodeDefinition(&Host{}, []byte(def))
	if err == nil || !strings.Contains(err.Error(), "content section users: a plugin provider may not create users") {
		t.Fatalf("provider content with users: %v", err)
	}
}
