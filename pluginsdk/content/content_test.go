package content

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/provisionhq/provision/models"
)

func sampleFS() fstest.MapFS {
	return fstest.MapFS{
		"._Description.meta":       {Data: []byte("Test Plugin for DRP\n")},
		"._DisplayName.meta":       {Data: []byte("  Incrementer Test Plugin ")},
		"params/step.yaml":         {Data: []byte("---\nName: incrementer/step\nSchema:\n  type: integer\n")},
		"params/other.json":        {Data: []byte(`{"Name":"incrementer/parameter","Schema":{"type":"string"}}`)},
		"typed-cows/bertie.yaml":   {Data: []byte("Id: bertie\nCanMilk: false\nSpotted: false\nLocation: Dallas\n")},
		"templates/hello.tmpl":     {Data: []byte("Hello {{.Machine.Name}}\n")},
		"templates/obj.yml":        {Data: []byte("ID: second.tmpl\nContents: \"x\"\n")},
		"tasks/t.yaml":             {Data: []byte("Name: do-it\nTemplates: []\n")},
		"tasks/nested/ignored.txt": {Data: []byte("DRP ignores subdirectories inside a section")},
		".hidden/whatever.bin":     {Data: []byte{0, 1, 2}},
		"README.md":                {Data: []byte("top-level files are not sections")},
	}
}

func TestFromFS(t *testing.T) {
	c, err := FromFS(sampleFS())
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Description != "Test Plugin for DRP" || c.Meta.DisplayName != "Incrementer Test Plugin" {
		t.Errorf("meta not read and trimmed: %+v", c.Meta)
	}
	if c.Meta.Name != "Unspecified" || c.Meta.Version != "v0.0.0" || c.Meta.Type != "dynamic" {
		t.Errorf("DRP defaults not applied: %+v", c.Meta)
	}
	if len(c.Sections) != 4 {
		t.Errorf("sections = %v, want params, typed-cows, templates, tasks", keys(c.Sections))
	}
	step, ok := c.Sections["params"]["incrementer/step"].(map[string]any)
	if !ok {
		t.Fatalf("param not stored under its Name: %v", keys(c.Sections["params"]))
	}
	if step["Schema"].(map[string]any)["type"] != "integer" || step["Errors"] == nil || step["Meta"] == nil {
		t.Errorf("param not filled like DRP: %v", step)
	}
	if _, ok := c.Sections["params"]["incrementer/parameter"]; !ok {
		t.Error("JSON param missing")
	}
	bertie, ok := c.Sections["typed-cows"]["bertie"].(map[string]any)
	if !ok {
		t.Fatalf("raw model not stored under Id: %v", keys(c.Sections["typed-cows"]))
	}
	if bertie["Type"] != "typed-cows" || bertie["Location"] != "Dallas" || bertie["Spotted"] != false {
		t.Errorf("raw model fields: %v", bertie)
	}
	if _, ok := bertie["Params"]; !ok {
		t.Errorf("raw model not filled: %v", bertie)
	}
	tmpl := c.Sections["templates"]["hello.tmpl"].(map[string]any)
	if tmpl["ID"] != "hello.tmpl" || tmpl["Contents"] != "Hello {{.Machine.Name}}\n" {
		t.Errorf("template object: %v", tmpl)
	}
	if _, ok := c.Sections["templates"]["second.tmpl"]; !ok {
		t.Error("YAML template object not keyed by ID")
	}
	if _, ok := c.Sections["tasks"]["do-it"]; !ok || len(c.Sections["tasks"]) != 1 {
		t.Errorf("tasks: %v", c.Sections["tasks"])
	}
}

func TestFromFSErrors(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"unsupported file extension": {"params/x.txt": {Data: []byte("Name: x")}},
		"not valid YAML":             {"params/x.yaml": {Data: []byte("Name: [")}},
		"not valid JSON":             {"params/x.json": {Data: []byte("{")}},
		"missing key field Name":     {"params/x.yaml": {Data: []byte("Schema: {}")}},
		"missing key field Id":       {"cows/x.yaml": {Data: []byte("Name: daisy")}},
		"duplicate Name":             {"params/a.yaml": {Data: []byte("Name: p")}, "params/b.yaml": {Data: []byte("Name: p")}},
		"holds no object":            {"params/a.yaml": {Data: []byte("")}},
	}
	for want, fsys := range cases {
		_, err := FromFS(fsys)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v", want, err)
		}
	}
}

func TestBundleRoundTrip(t *testing.T) {
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		t.Run(ext, func(t *testing.T) {
			orig, err := FromFS(sampleFS())
			if err != nil {
				t.Fatal(err)
			}
			src := t.TempDir()
			if err := WriteDir(orig, src); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "bundle"+ext)
			if err := Bundle(src, file); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
				t.Errorf("temporary file left behind: %v", err)
			}
			out := t.TempDir()
			if err := Unbundle(file, out); err != nil {
				t.Fatal(err)
			}
			back, err := FromDir(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(norm(t, orig), norm(t, back)) {
				t.Errorf("round trip changed the bundle:\n%+v\n%+v", orig, back)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "templates", "hello.tmpl")); string(b) != "Hello {{.Machine.Name}}\n" {
				t.Errorf("template not unbundled raw: %q", b)
			}
			if _, err := os.Stat(filepath.Join(out, "params", "incrementer.step.yaml")); err != nil {
				t.Errorf("slash in key not turned into a dot: %v", err)
			}
			if _, err := os.Stat(filepath.Join(out, "._Source.meta")); !os.IsNotExist(err) {
				t.Errorf("empty meta field written: %v", err)
			}
		})
	}
}

func TestMarshalUnmarshal(t *testing.T) {
	c, err := FromFS(sampleFS())
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".yaml", ".json"} {
		buf, err := Marshal(c, ext)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(buf, ext)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(norm(t, c), norm(t, back)) {
			t.Errorf("%s round trip differs", ext)
		}
	}
	if _, err := Marshal(c, ".go"); err == nil || !strings.Contains(err.Error(), "unsupported bundle format") {
		t.Errorf("unsupported format: %v", err)
	}
	if err := Bundle(t.TempDir()+"/missing", filepath.Join(t.TempDir(), "x.yaml")); err == nil {
		t.Error("bundling a missing directory succeeded")
	}
}

func TestWriteDirRejectsBadNames(t *testing.T) {
	c := &models.Content{Sections: map[string]map[string]any{"params": {"../evil": map[string]any{"Name": "../evil"}}}}
	if err := WriteDir(c, t.TempDir()); err == nil {
		t.Error("key escaping its section accepted")
	}
	c = &models.Content{Sections: map[string]map[string]any{"../x": {}}}
	if err := WriteDir(c, t.TempDir()); err == nil {
		t.Error("bad section name accepted")
	}
}

// norm turns a bundle into plain JSON data so that int/float differences
// between codecs do not matter.
func norm(t *testing.T, c *models.Content) any {
	t.Helper()
	var out any
	if err := models.Remarshal(c, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRoot(t *testing.T) {
	embedded := fstest.MapFS{"content/._Name.meta": {Data: []byte("p")}, "content/params/a.yaml": {Data: []byte("Name: a\n")}}
	c, err := FromFS(Root(embedded))
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Name != "p" || c.Sections["params"]["a"] == nil {
		t.Fatalf("Root did not descend into content/: %+v", c)
	}
	// A pack whose only section happens to be called content is not a wrapper
	// when anything else is at its root.
	plain := fstest.MapFS{"._Name.meta": {Data: []byte("q")}, "content/x.yaml": {Data: []byte("Id: x\n")}}
	if got := Root(plain); !reflect.DeepEqual(got, fs.FS(plain)) {
		t.Fatalf("Root changed a directory-format pack: %T", got)
	}
}

func TestKeyField(t *testing.T) {
	for section, want := range map[string]string{
		"params": "Name", "workflows": "Name", "identity_providers": "Name", "machines": "Uuid", "jobs": "Uuid",
		"leases": "Addr", "reservations": "Addr", "templates": "ID", "pools": "Id", "version_sets": "Id",
		"typed-cows": "Id",
	} {
		if got := KeyField(section); got != want {
			t.Errorf("KeyField(%q) = %q, want %q", section, got, want)
		}
	}
}
