package server_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// immutableCall reports a call of a constructor whose result is safe as a
// package-level value: nothing can change it after initialisation.
func immutableCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	switch pkg.Name + "." + sel.Sel.Name {
	case "regexp.MustCompile", "errors.New", "strings.NewReplacer":
		return true
	}
	return false
}

// knownState lists the package-level variables of server/ and models/
// that are deliberately kept, each with the reason.
func knownState() map[string]string {
	return map[string]string{
		// A fact about the process, not state of a server: sandbox.Main
		// ran first in main, so this executable can be the helper.
		"pluginhost/sandbox/sandbox.go:mainCalled": "set once at the start of main, then only read",
		// Test kits: per-test-binary build caches guarded by sync.Once
		// or a mutex, never used by provisiond.
		"servertest/servertest.go:sharedHTTP":                    "test kit, read-only",
		"servertest/servertest.go:buildOnce":                     "test kit build cache",
		"servertest/servertest.go:builtBin":                      "test kit build cache",
		"servertest/servertest.go:buildErr":                      "test kit build cache",
		"pluginhost/internal/testplugins/testplugins.go:once":    "test kit build cache",
		"pluginhost/internal/testplugins/testplugins.go:dir":     "test kit build cache",
		"pluginhost/internal/testplugins/testplugins.go:errBld":  "test kit build cache",
		"pluginhost/internal/testplugins/testplugins.go:pkgMu":   "test kit build cache",
		"pluginhost/internal/testplugins/testplugins.go:pkgBins": "test kit build cache",
	}
}

// TestNoPackageLevelMutableState keeps global mutable state out of the
// server and the wire models: package-level variables must be sentinel
// errors, compiled regexps, replacers, interface assertions (_), embedded
// files, or listed in knownState with a reason. Commands (package main)
// are exempt.
func TestNoPackageLevelMutableState(t *testing.T) {
	known := knownState()
	fset := token.NewFileSet()
	for _, root := range []string{".", "../models"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			if f.Name.Name == "main" {
				return nil
			}
			rel := filepath.ToSlash(path)
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.VAR {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					if embedded(gd, vs) {
						continue
					}
					for i, name := range vs.Names {
						if name.Name == "_" || known[rel+":"+name.Name] != "" {
							continue
						}
						if i < len(vs.Values) && immutableCall(vs.Values[i]) {
							continue
						}
						t.Errorf("%s: package-level variable %s is global mutable state; use a func, a const or a field", fset.Position(name.Pos()), name.Name)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// embedded reports a //go:embed variable of type embed.FS (read-only).
func embedded(gd *ast.GenDecl, vs *ast.ValueSpec) bool {
	sel, ok := vs.Type.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "FS" {
		return false
	}
	for _, cg := range []*ast.CommentGroup{gd.Doc, vs.Doc} {
		if cg == nil {
			continue
		}
		for _, c := range cg.List { // raw text: Text() drops directives
			if strings.HasPrefix(c.Text, "//go:embed ") {
				return true
			}
		}
	}
	return false
}
