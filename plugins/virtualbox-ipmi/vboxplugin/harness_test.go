package vboxplugin

import (
	_ "embed"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

//go:embed testdata/fake-vboxmanage.sh
var fakeVBoxManage string

// fakeVBox is an installed VBoxManage stand-in with its state directory.
type fakeVBox struct {
	dir   string // holds the VBoxManage script (put on PATH by tests)
	state string
	path  string
}

// installFakeVBox writes the stand-in into t.TempDir().
func installFakeVBox(t *testing.T) *fakeVBox {
	t.Helper()
	root := t.TempDir()
	f := &fakeVBox{dir: filepath.Join(root, "bin"), state: filepath.Join(root, "state")}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.path = filepath.Join(f.dir, "VBoxManage")
	script := strings.ReplaceAll(fakeVBoxManage, "@STATE@", "'"+f.state+"'")
	if err := os.WriteFile(f.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// Calls returns the argument lists VBoxManage was called with, in order.
func (f *fakeVBox) Calls(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.state, "calls"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" {
			out = append(out, strings.Split(line, "|"))
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (f *fakeVBox) ResetCalls(t *testing.T) {
	t.Helper()
	if err := os.Remove(filepath.Join(f.state, "calls")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// VM reads one state file of a VM ("" when the VM or file is missing).
func (f *fakeVBox) VM(id, file string) string {
	b, err := os.ReadFile(filepath.Join(f.state, "vms", strings.ToUpper(id), file))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// VMs lists the registered VM UUIDs.
func (f *fakeVBox) VMs() []string {
	es, _ := os.ReadDir(filepath.Join(f.state, "vms"))
	var ids []string
	for _, e := range es {
		ids = append(ids, e.Name())
	}
	sort.Strings(ids)
	return ids
}

// Media lists the disk files that exist.
func (f *fakeVBox) Media() []string {
	es, _ := os.ReadDir(filepath.Join(f.state, "media"))
	var out []string
	for _, e := range es {
		out = append(out, strings.ReplaceAll(e.Name(), "%", "/"))
	}
	return out
}

// Set writes a control or VM state file.
func (f *fakeVBox) Set(t *testing.T, rel, content string) {
	t.Helper()
	p := filepath.Join(f.state, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// AddVM registers a VM directly in the stand-in's state.
func (f *fakeVBox) AddVM(t *testing.T, id, name, state string, macs ...string) {
	t.Helper()
	dir := filepath.Join("vms", strings.ToUpper(id))
	f.Set(t, filepath.Join(dir, "name"), name)
	f.Set(t, filepath.Join(dir, "state"), state)
	if len(macs) > 0 {
		f.Set(t, filepath.Join(dir, "macs"), strings.Join(macs, "\n"))
	}
}
