package objects

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/provisionhq/provision/models"
)

func str(unique bool) models.Index { return models.Index{Type: "string", Unique: unique, Regex: true} }

func boolIndex() models.Index { return models.Index{Type: "boolean", Unordered: true} }

func intIndex() models.Index { return models.Index{Type: "integer"} }

// RandomSecret returns a random URL-safe string used for per-object
// secrets (token revocation).
func RandomSecret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func checkName(what, name string) error {
	if !models.NameRE.MatchString(name) {
		return fmt.Errorf("Invalid %s `%s`", what, name)
	}
	return nil
}

func checkProfiles(v View, names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("Duplicate profile %s", n)
		}
		seen[n] = true
		if _, ok := v.Get("profiles", n); !ok {
			return fmt.Errorf("Profile %s does not exist", n)
		}
	}
	return nil
}

// MachinesKind is the machines collection: Uuid key generated on create,
// unique Name, Secret hidden from the API.
func MachinesKind() Kind {
	return Kind{
		Prefix: "machines", KeyField: "Uuid",
		New: func() models.Model { return &models.Machine{} },
		Indexes: map[string]models.Index{
			"Uuid": {Type: "UUID", Unique: true}, "Name": str(true), "Address": {Type: "IP"},
			"Stage": str(false), "BootEnv": str(false), "Workflow": str(false), "Description": str(false),
			"OS": str(false), "Arch": str(false), "Pool": str(false), "Context": str(false),
			"Runnable": boolIndex(), "Locked": boolIndex(), "CurrentTask": intIndex(), "Endpoint": str(false),
			"Bundle": str(false), "ReadOnly": boolIndex(), "Available": boolIndex(), "Validated": boolIndex(),
		},
		NormalizeKey: func(k string) string {
			u, err := uuid.Parse(k)
			if err != nil {
				return ""
			}
			return u.String()
		},
		Prepare: func(v View, old, obj models.Model) error {
			m := obj.(*models.Machine)
			if old == nil {
				if m.Uuid == uuid.Nil {
					m.Uuid = uuid.New()
				}
				if m.Secret == "" {
					m.Secret = RandomSecret()
				}
				return nil
			}
			if m.Secret == "" {
				m.Secret = old.(*models.Machine).Secret
			}
			return nil
		},
		Validate: func(v View, obj models.Model) error {
			m := obj.(*models.Machine)
			if strings.TrimSpace(m.Name) == "" {
				return errors.New("Name must not be empty")
			}
			if strings.ContainsAny(m.Name, "/:") {
				return fmt.Errorf("Invalid Name `%s`: must not contain / or :", m.Name)
			}
			return checkProfiles(v, m.Profiles)
		},
		Sanitize: func(obj models.Model) { obj.(*models.Machine).Secret = "" },
	}
}

// ProfilesKind is the profiles collection; the global profile cannot be
// deleted and profiles in use cannot be deleted.
func ProfilesKind() Kind {
	return Kind{
		Prefix: "profiles", KeyField: "Name",
		New:     func() models.Model { return &models.Profile{} },
		Indexes: map[string]models.Index{"Name": str(true), "Description": str(false), "Bundle": str(false), "ReadOnly": boolIndex()},
		Validate: func(v View, obj models.Model) error {
			p := obj.(*models.Profile)
			if err := checkName("Name", p.Name); err != nil {
				return err
			}
			for _, n := range p.Profiles {
				if n == p.Name {
					return fmt.Errorf("Profile %s cannot include itself", n)
				}
			}
			return checkProfiles(v, p.Profiles)
		},
		ValidateDelete: func(v View, obj models.Model) error {
			p := obj.(*models.Profile)
			if p.Name == GlobalProfile {
				return &models.Error{Code: 409, Type: "DELETE", Messages: []string{"the global profile cannot be deleted"}}
			}
			for _, prefix := range []string{"machines", "profiles"} {
				for _, o := range v.List(prefix) {
					if pr, ok := o.(models.Profiler); ok {
						for _, n := range pr.GetProfiles() {
							if n == p.Name {
								return &models.Error{Code: 409, Type: "DELETE",
									Messages: []string{fmt.Sprintf("Profile %s is in use by %s/%s", p.Name, prefix, o.Key())}}
							}
						}
					}
				}
			}
			return nil
		},
	}
}

// ParamsKind is the param definitions collection. Schemas must compile.
func ParamsKind(s *Service) Kind {
	return Kind{
		Prefix: "params", KeyField: "Name", SlashKeys: true,
		New:     func() models.Model { return &models.Param{} },
		Indexes: map[string]models.Index{"Name": str(true), "Secure": boolIndex(), "Description": str(false), "Bundle": str(false), "ReadOnly": boolIndex()},
		Validate: func(v View, obj models.Model) error {
			p := obj.(*models.Param)
			if !models.ParamNameRE.MatchString(p.Name) {
				return fmt.Errorf("Invalid Name `%s`", p.Name)
			}
			if _, err := s.schemas.Compile(p.Schema); err != nil {
				return fmt.Errorf("Schema: %v", err)
			}
			if d, ok := p.DefaultValue(); ok {
				if err := s.schemas.Validate(p.Schema, d); err != nil {
					return fmt.Errorf("Schema default: %v", err)
				}
			}
			return nil
		},
	}
}

// PluginsKind is the plugins collection (the plugin host attaches the
// instance lifecycle through hooks).
func PluginsKind() Kind {
	return Kind{
		Prefix: "plugins", KeyField: "Name",
		New:     func() models.Model { return &models.Plugin{} },
		Indexes: map[string]models.Index{"Name": str(true), "Provider": str(false), "Description": str(false), "Bundle": str(false), "ReadOnly": boolIndex()},
		Validate: func(v View, obj models.Model) error {
			p := obj.(*models.Plugin)
			if err := checkName("Name", p.Name); err != nil {
				return err
			}
			return checkName("Provider", p.Provider)
		},
	}
}

// PluginProvidersKind is the plugin_providers collection; Content is kept
// but never shown by the API.
func PluginProvidersKind() Kind {
	return Kind{
		Prefix: "plugin_providers", KeyField: "Name",
		New: func() models.Model { return &models.PluginProvider{} },
		Indexes: map[string]models.Index{"Name": str(true), "Version": str(false), "PluginVersion": intIndex(),
			"AutoStart": boolIndex(), "HasPublish": boolIndex()},
		Prepare: func(v View, old, obj models.Model) error {
			if old != nil && obj.(*models.PluginProvider).Content == "" {
				obj.(*models.PluginProvider).Content = old.(*models.PluginProvider).Content
			}
			return nil
		},
		Validate: func(v View, obj models.Model) error {
			return checkName("Name", obj.(*models.PluginProvider).Name)
		},
		Sanitize: func(obj models.Model) { obj.(*models.PluginProvider).Content = "" },
	}
}

// RawKind returns a kind of models.RawModel objects keyed by Id, as created
// for a plugin provider's StoreObjects. indexes (may be nil) add the
// fields of the kind's schema to the common ones every RawModel has (Id,
// Bundle, Endpoint, Description, ReadOnly, Available, Validated); they
// cannot redefine Id.
func RawKind(prefix string, indexes map[string]models.Index, validate func(v View, obj models.Model) error) Kind {
	idx := map[string]models.Index{}
	for k, v := range indexes {
		idx[k] = v
	}
	for k, v := range map[string]models.Index{"Id": str(true), "Bundle": str(false), "Endpoint": str(false),
		"Description": str(false), "ReadOnly": boolIndex(), "Available": boolIndex(), "Validated": boolIndex()} {
		if _, set := idx[k]; !set || k == "Id" {
			idx[k] = v
		}
	}
	return Kind{Prefix: prefix, KeyField: "Id", Indexes: idx, Validate: validate}
}
