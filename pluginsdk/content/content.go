// Package content converts content bundles between DRP's directory-store
// format (the layout `drpcli contents bundle` reads) and the single
// {meta, sections} document carried in PluginProvider.Content.
//
// Directory format (DRP §6.2):
//
//	._<Field>.meta          one file per metadata field (trimmed), e.g. ._Description.meta
//	<section>/<any>.yaml    one object per file; .yaml, .yml or .json
//	templates/<name>        raw template text, becomes {ID: <name>, Contents: <text>}
//
// Every non-hidden top-level directory is a section named after it. Objects
// are stored under their key (Name for params, profiles, tasks, stages,
// workflows...; Id for RawModels of types unknown to provision; ID for
// templates), so file names do not matter.
package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/provisionhq/provision/models"
	"gopkg.in/yaml.v3"
)

// TemplatesSection is the section whose files are raw template text rather
// than YAML/JSON objects.
const TemplatesSection = "templates"

// metaDefault is the value DRP's bundler uses when a ._<Field>.meta file
// is missing.
func metaDefault(field string) string {
	switch field {
	case "Name":
		return "Unspecified"
	case "Version":
		return "v0.0.0"
	case "Type":
		return "dynamic"
	}
	return ""
}

// knownKeyField returns the name of the key field of a section provision
// or DRP knows; ok is false for other sections, which hold RawModels.
func knownKeyField(section string) (field string, ok bool) {
	switch section {
	case "bootenvs", "contexts", "identity_providers", "params", "plugins", "preferences", "profiles",
		"roles", "stages", "subnets", "tasks", "tenants", "users", "workflows":
		return "Name", true
	case "catalog_items", "endpoints", "pools", "version_sets":
		return "Id", true
	case "jobs", "machines":
		return "Uuid", true
	case "leases", "reservations":
		return "Addr", true
	case "templates":
		return "ID", true
	}
	return "", false
}

// newTyped returns an empty Go model for the sections provision has one
// for (nil otherwise); their objects are Fill()ed so the bundle carries the
// same defaults DRP emits.
func newTyped(section string) models.Model {
	switch section {
	case "params":
		return &models.Param{}
	case "profiles":
		return &models.Profile{}
	case "plugins":
		return &models.Plugin{}
	case "machines":
		return &models.Machine{}
	}
	return nil
}

// KeyField returns the name of the key field of objects in section: Name,
// Uuid, ID... and Id for sections unknown to provision (RawModels).
func KeyField(section string) string {
	if k, ok := knownKeyField(section); ok {
		return k
	}
	return "Id"
}

// FromFS reads a content directory in DRP's directory-store format from
// fsys (whose root is the content directory) and returns the bundle.
func FromFS(fsys fs.FS) (*models.Content, error) {
	c := &models.Content{Sections: map[string]map[string]any{}}
	meta := map[string]string{}
	for _, f := range models.MetaFields {
		buf, err := fs.ReadFile(fsys, "._"+f+".meta")
		switch {
		case err == nil:
			meta[f] = strings.TrimSpace(string(buf))
		case errors.Is(err, fs.ErrNotExist):
			meta[f] = metaDefault(f)
		default:
			return nil, fmt.Errorf("content: reading ._%s.meta: %w", f, err)
		}
	}
	if err := setMeta(&c.Meta, meta); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("content: reading content directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		section := e.Name()
		objs, err := readSection(fsys, section)
		if err != nil {
			return nil, err
		}
		c.Sections[section] = objs
	}
	return c, nil
}

// Root returns the content directory held in fsys: its "content"
// directory when that is all its root holds (an embed.FS made with
// `//go:embed all:content`, all: keeping the ._<Field>.meta files),
// otherwise fsys itself. Plugins embed their pack this way.
func Root(fsys fs.FS) fs.FS {
	if entries, err := fs.ReadDir(fsys, "."); err == nil && len(entries) == 1 &&
		entries[0].IsDir() && entries[0].Name() == "content" {
		if sub, err := fs.Sub(fsys, "content"); err == nil {
			return sub
		}
	}
	return fsys
}

// FromDir is FromFS on a directory of the local filesystem.
func FromDir(dir string) (*models.Content, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("content: %s is not a directory", dir)
	}
	return FromFS(os.DirFS(dir))
}

func readSection(fsys fs.FS, section string) (map[string]any, error) {
	entries, err := fs.ReadDir(fsys, section)
	if err != nil {
		return nil, fmt.Errorf("content: reading section %s: %w", section, err)
	}
	objs := map[string]any{}
	for _, e := range entries {
		// DRP ignores subdirectories inside a section; hidden files are
		// editor droppings, not objects.
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := path.Join(section, e.Name())
		buf, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("content: reading %s: %w", p, err)
		}
		var obj map[string]any
		switch ext := strings.ToLower(path.Ext(e.Name())); {
		case ext == ".yaml" || ext == ".yml":
			if err := yaml.Unmarshal(buf, &obj); err != nil {
				return nil, fmt.Errorf("content: %s is not valid YAML: %w", p, err)
			}
		case ext == ".json":
			if err := json.Unmarshal(buf, &obj); err != nil {
				return nil, fmt.Errorf("content: %s is not valid JSON: %w", p, err)
			}
		case section == TemplatesSection:
			obj = map[string]any{"ID": e.Name(), "Contents": string(buf)}
		default:
			return nil, fmt.Errorf("content: %s: unsupported file extension %q (use .yaml, .yml or .json; raw files only in templates/)", p, ext)
		}
		if obj == nil {
			return nil, fmt.Errorf("content: %s holds no object", p)
		}
		obj, err = normalize(section, obj)
		if err != nil {
			return nil, fmt.Errorf("content: %s: %w", p, err)
		}
		kf := KeyField(section)
		key, _ := obj[kf].(string)
		if key == "" {
			return nil, fmt.Errorf("content: %s: missing key field %s", p, kf)
		}
		if _, dup := objs[key]; dup {
			return nil, fmt.Errorf("content: %s: duplicate %s %q in section %s", p, kf, key, section)
		}
		objs[key] = obj
	}
	return objs, nil
}

// normalize fills an object the way DRP's bundler does (full model fields
// with defaults) and converts it to plain JSON-shaped data.
func normalize(section string, obj map[string]any) (map[string]any, error) {
	m := newTyped(section)
	if _, known := knownKeyField(section); m == nil && !known {
		obj["Type"] = section
		m = models.RawModel(obj)
	}
	if m != nil {
		if _, isRaw := m.(models.RawModel); !isRaw {
			if err := models.Remarshal(obj, m); err != nil {
				return nil, fmt.Errorf("not a valid %s object: %w", section, err)
			}
		}
		m.Fill()
		out := map[string]any{}
		if err := models.Remarshal(m, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	out := map[string]any{}
	if err := models.Remarshal(obj, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func setMeta(dst *models.ContentMetaData, vals map[string]string) error {
	v := reflect.ValueOf(dst).Elem()
	for k, s := range vals {
		f := v.FieldByName(k)
		if !f.IsValid() || f.Kind() != reflect.String {
			return fmt.Errorf("content: unknown metadata field %s", k)
		}
		f.SetString(s)
	}
	return nil
}

func metaValues(m *models.ContentMetaData) map[string]string {
	v := reflect.ValueOf(m).Elem()
	out := map[string]string{}
	for _, f := range models.MetaFields {
		out[f] = v.FieldByName(f).String()
	}
	return out
}

// Marshal encodes a bundle as YAML (ext ".yaml"/".yml") or JSON (".json").
func Marshal(c *models.Content, ext string) ([]byte, error) {
	switch strings.ToLower(ext) {
	case ".yaml", ".yml":
		// Round-trip through JSON so YAML keys match the JSON field names
		// and values are plain maps, lists and scalars.
		var plain any
		if err := models.Remarshal(c, &plain); err != nil {
			return nil, fmt.Errorf("content: encoding bundle: %w", err)
		}
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(plain); err != nil {
			return nil, fmt.Errorf("content: encoding bundle as YAML: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case ".json":
		buf, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("content: encoding bundle as JSON: %w", err)
		}
		return append(buf, '\n'), nil
	}
	return nil, fmt.Errorf("content: unsupported bundle format %q (use .yaml, .yml or .json)", ext)
}

// Unmarshal decodes a bundle from YAML (ext ".yaml"/".yml") or JSON (".json").
func Unmarshal(data []byte, ext string) (*models.Content, error) {
	var raw any
	switch strings.ToLower(ext) {
	case ".yaml", ".yml":
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("content: bundle is not valid YAML: %w", err)
		}
	case ".json":
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("content: bundle is not valid JSON: %w", err)
		}
	default:
		return nil, fmt.Errorf("content: unsupported bundle format %q (use .yaml, .yml or .json)", ext)
	}
	c := &models.Content{}
	if err := models.Remarshal(raw, c); err != nil {
		return nil, fmt.Errorf("content: bundle has the wrong shape: %w", err)
	}
	if c.Sections == nil {
		c.Sections = map[string]map[string]any{}
	}
	return c, nil
}

// Bundle reads the content directory dir and writes the bundle to file,
// as YAML or JSON chosen by file's extension. The file is written to
// <file>.tmp first and renamed, so a failed run leaves no partial bundle.
func Bundle(dir, file string) error {
	ext := filepath.Ext(file)
	c, err := FromDir(dir)
	if err != nil {
		return err
	}
	buf, err := Marshal(c, ext)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o644); err != nil {
		return fmt.Errorf("content: writing bundle: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("content: writing bundle: %w", err)
	}
	return nil
}

// Unbundle reads the bundle file (YAML or JSON by extension) and writes it
// out as a content directory under dir: ._<Field>.meta for every non-empty
// metadata field, <section>/<key>.yaml per object (slashes in keys become
// dots) and templates/<ID> with the raw template text.
func Unbundle(file, dir string) error {
	buf, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	c, err := Unmarshal(buf, filepath.Ext(file))
	if err != nil {
		return err
	}
	return WriteDir(c, dir)
}

// WriteDir writes c as a content directory under dir (see Unbundle).
func WriteDir(c *models.Content, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	meta := metaValues(&c.Meta)
	for _, f := range models.MetaFields {
		if meta[f] == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "._"+f+".meta"), []byte(meta[f]), 0o644); err != nil {
			return fmt.Errorf("content: writing metadata: %w", err)
		}
	}
	sections := make([]string, 0, len(c.Sections))
	for s := range c.Sections {
		sections = append(sections, s)
	}
	sort.Strings(sections)
	for _, s := range sections {
		if s == "" || strings.ContainsAny(s, `/\`) || strings.HasPrefix(s, ".") {
			return fmt.Errorf("content: invalid section name %q", s)
		}
		sdir := filepath.Join(dir, s)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return fmt.Errorf("content: %w", err)
		}
		for key, obj := range c.Sections[s] {
			name := strings.ReplaceAll(key, "/", ".")
			if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") || strings.Contains(name, `\`) {
				return fmt.Errorf("content: section %s: key %q cannot be a file name", s, key)
			}
			var data []byte
			var err error
			if s == TemplatesSection && !isObjectFile(name) {
				m, _ := obj.(map[string]any)
				text, ok := m["Contents"].(string)
				if !ok {
					return fmt.Errorf("content: template %s has no Contents string", key)
				}
				data = []byte(text)
			} else {
				name += ".yaml"
				data, err = yaml.Marshal(obj)
				if err != nil {
					return fmt.Errorf("content: encoding %s/%s: %w", s, key, err)
				}
			}
			if err := os.WriteFile(filepath.Join(sdir, name), data, 0o644); err != nil {
				return fmt.Errorf("content: writing %s/%s: %w", s, key, err)
			}
		}
	}
	return nil
}

// isObjectFile reports whether FromFS would decode name as a YAML/JSON
// object. Templates whose ID looks like that are written as objects so that
// unbundling and bundling again gives the same result.
func isObjectFile(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
