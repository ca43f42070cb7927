package content

import (
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/provisionhq/provision/models"
	sdkcontent "github.com/provisionhq/provision/pluginsdk/content"
)

// The embedded base bundle reads as a DRP directory-store bundle named
// provision-base with the params the shipped plugins need.
func TestBaseFS(t *testing.T) {
	c, err := sdkcontent.FromFS(BaseFS())
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Name != BaseName || c.Meta.Version == "" || c.Meta.Description == "" {
		t.Fatalf("meta: %+v", c.Meta)
	}
	for _, name := range []string{"machine-plugin", "kernel-console"} {
		p, ok := c.Sections["params"][name].(map[string]any)
		if !ok {
			t.Fatalf("param %s missing: %v", name, c.Sections["params"])
		}
		if s, _ := p["Schema"].(map[string]any); s["type"] != "string" {
			t.Fatalf("param %s schema: %v", name, p["Schema"])
		}
	}
}

// paramRefRE finds params read by templates: .Param "x", .ParamExists "x",
// .ParamExpand "x", .ParamAsJSON "x".
var paramRefRE = regexp.MustCompile(`\.Param(?:Exists|Expand|AsJSON)?\s+"([^"]+)"`)

// Every param the shipped plugins' content packs use (profile and stage
// Params, task and stage Required/OptionalParams, template lookups) is
// defined by some shipped bundle: a plugin's own pack or provision-base.
// A pack that starts using one of Digital Rebar's community params must
// bring its definition (or provision-base must).
func TestPluginContentParamsAreDefined(t *testing.T) {
	base, err := sdkcontent.FromFS(BaseFS())
	if err != nil {
		t.Fatal(err)
	}
	bundles := map[string]*models.Content{BaseName: base}
	dirs, err := filepath.Glob("../plugins/*/content")
	if err != nil {
		t.Fatal(err)
	}
	nested, _ := filepath.Glob("../plugins/*/*/content")
	dirs = append(dirs, nested...)
	if len(dirs) == 0 {
		t.Fatal("no plugin content packs found")
	}
	for _, d := range dirs {
		c, err := sdkcontent.FromDir(d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		bundles[d] = c
	}
	defined := map[string]bool{}
	for _, c := range bundles {
		for name := range c.Sections["params"] {
			defined[name] = true
		}
	}
	used := map[string][]string{} // param → where
	use := func(name, where string) { used[name] = append(used[name], where) }
	for src, c := range bundles {
		for section, objs := range c.Sections {
			for key, raw := range objs {
				where := src + ":" + section + "/" + key
				obj, _ := raw.(map[string]any)
				for _, f := range []string{"RequiredParams", "OptionalParams"} {
					list, _ := obj[f].([]any)
					for _, n := range list {
						if s, ok := n.(string); ok {
							use(s, where)
						}
					}
				}
				if section != "params" {
					params, _ := obj["Params"].(map[string]any)
					for n := range params {
						use(n, where)
					}
				}
				// Template text sits in JSON strings, where its quotes
				// are escaped: search the decoded strings.
				for _, text := range stringsIn(raw) {
					for _, m := range paramRefRE.FindAllStringSubmatch(text, -1) {
						use(m[1], where)
					}
				}
			}
		}
	}
	for name, where := range used {
		if !defined[name] {
			sort.Strings(where)
			t.Errorf("param %s is used by %v but no shipped bundle defines it", name, where)
		}
	}
	if len(used) == 0 {
		t.Fatal("found no param uses at all; the scan is broken")
	}
}

// stringsIn returns every string value inside v (maps, lists, strings).
func stringsIn(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, stringsIn(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, stringsIn(e)...)
		}
		return out
	}
	return nil
}
