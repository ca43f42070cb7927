// Package testplugins builds the fake plugin providers of
// server/pluginhost/testdata for tests, once per test binary.
package testplugins

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// variants maps a variant name to the -ldflags that select its behaviour
// (see testdata/fakeplugin); a fresh map on every call.
func variants() map[string]string {
	return map[string]string{
		"fake":       "-X main.mode=good -X main.version=v1 -X main.name=fake",
		"fake-v2":    "-X main.mode=good -X main.version=v2 -X main.name=fake",
		"noready":    "-X main.mode=noready -X main.name=noready",
		"failready":  "-X main.mode=failready -X main.name=failready",
		"garbage":    "-X main.mode=garbage -X main.name=garbage",
		"badversion": "-X main.mode=badversion -X main.name=badversion",
		"needparam":  "-X main.mode=needparam -X main.name=needparam",
		"stubborn":   "-X main.mode=stubborn -X main.name=stubborn",
		// badcontent variants: a new provider, and a broken upgrade of fake.
		"badcontent":      "-X main.mode=badcontent -X main.name=badcontent",
		"fake-badcontent": "-X main.mode=badcontent -X main.version=v3 -X main.name=fake",
		"probe":           "-X main.mode=probe -X main.name=probe",
		"hangdefine":      "-X main.mode=hangdefine -X main.name=hangdefine",
		"snoop":           "-X main.mode=snoop -X main.name=snoop",
		"symlink":         "-X main.mode=symlink -X main.name=symlink",
		"chatty":          "-X main.mode=chatty -X main.name=chatty",
	}
}

var (
	once   sync.Once
	dir    string
	errBld error
)

// Path returns the built binary of variant.
func Path(t testing.TB, variant string) string {
	t.Helper()
	if _, ok := variants()[variant]; !ok {
		t.Fatalf("testplugins: unknown variant %q", variant)
	}
	once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fakeplugin")
		dir, errBld = os.MkdirTemp("", "pluginhost-bins-")
		if errBld != nil {
			return
		}
		for name, flags := range variants() {
			cmd := exec.Command("go", "build", "-ldflags", flags, "-o", filepath.Join(dir, name), ".")
			cmd.Dir = src
			if out, err := cmd.CombinedOutput(); err != nil {
				errBld = fmt.Errorf("build %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if errBld != nil {
		t.Fatal(errBld)
	}
	return filepath.Join(dir, variant)
}

// Install copies variant into dir as name (mode 0755, so that a plugin
// user can execute it) and returns its path.
func Install(t testing.TB, dstDir, variant, name string) string {
	t.Helper()
	b, err := os.ReadFile(Path(t, variant))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dstDir, name)
	if err := os.MkdirAll(dstDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Cleanup removes the built binaries; call it from TestMain.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
	pkgMu.Lock()
	defer pkgMu.Unlock()
	for _, b := range pkgBins {
		os.RemoveAll(filepath.Dir(b))
	}
}

var (
	pkgMu   sync.Mutex
	pkgBins = map[string]string{}
)

// Package builds the main package at importPath (e.g. the SDK-based
// plugins/incrementer) once per test binary and returns the binary.
func Package(t testing.TB, importPath string) string {
	t.Helper()
	pkgMu.Lock()
	defer pkgMu.Unlock()
	if b, ok := pkgBins[importPath]; ok {
		return b
	}
	d, err := os.MkdirTemp("", "pluginhost-pkg-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(d, filepath.Base(importPath))
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", out, importPath)
	cmd.Dir = filepath.Dir(file)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", importPath, err, b)
	}
	pkgBins[importPath] = out
	return out
}
