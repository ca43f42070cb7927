// Package content holds the content bundles provision ships in DRP's
// directory-store format (._<Field>.meta files and one directory per
// section, as `drpcli contents bundle` reads them), embedded in the
// binaries that need them.
//
// provision-base holds the params that shipped plugins set or read but
// that Digital Rebar defines in its community content (machine-plugin,
// kernel-console). provisiond loads it at start as a read-only content
// layer named provision-base.
package content

import (
	"embed"
	"fmt"
	"io/fs"
)

// BaseName is the name of the base bundle (its ._Name.meta), which is
// also the Bundle of its objects.
const BaseName = "provision-base"

// baseFiles is the embedded provision-base directory ("all:" keeps the
// ._<Field>.meta files, which embed skips otherwise).
//
//go:embed all:provision-base
var baseFiles embed.FS

// BaseFS returns the provision-base bundle as a read-only file system
// whose root is the bundle directory.
func BaseFS() fs.FS {
	sub, err := fs.Sub(baseFiles, BaseName)
	if err != nil {
		// Only possible if the embed directive and BaseName disagree,
		// which TestBaseFS catches.
		panic(fmt.Sprintf("content: %v", err))
	}
	return sub
}
