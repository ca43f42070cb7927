package main

import (
	"fmt"
	"os"

	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/spf13/cobra"
)

// newContentsCmd is `provctl contents`: conversion between a content
// directory in DRP's directory-store format (._<Field>.meta files, one
// directory per section, templates/ holding raw files) and a single bundle
// file, as `drpcli contents bundle|unbundle` does. Both run locally and
// need no server.
func newContentsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contents",
		Short: "Bundle and unbundle content directories (local, no server needed)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "bundle <dir> <file>",
		Short: "Bundle the content directory <dir> into <file> (.yaml, .yml or .json)",
		Long: `Bundle reads a content directory in DRP's directory-store format and
writes the {meta, sections} bundle to <file>, as YAML or JSON chosen by the
file's extension. Metadata comes from ._<Field>.meta files (Name defaults
to Unspecified, Version to v0.0.0, Type to dynamic); every non-hidden
subdirectory is a section of .yaml/.yml/.json objects stored under their
key; templates/ may also hold raw template files.`,
		Args: contentsArgs("<dir> <file>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := content.Bundle(args[0], args[1]); err != nil {
				return fmt.Errorf("bundling %s: %w", args[0], err)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "unbundle <file> <dir>",
		Short: "Write the bundle <file> (.yaml, .yml or .json) out as a content directory <dir>",
		Long: `Unbundle is the inverse of bundle: it writes ._<Field>.meta for every
non-empty metadata field, <section>/<key>.yaml per object (slashes in keys
become dots) and templates/<ID> with the raw template text. Existing files
with the same names are overwritten; other files are left alone.`,
		Args: contentsArgs("<file> <dir>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return fmt.Errorf("unbundling: %w", err)
			}
			if err := content.Unbundle(args[0], args[1]); err != nil {
				return fmt.Errorf("unbundling %s: %w", args[0], err)
			}
			return nil
		},
	})
	return cmd
}

// contentsArgs requires exactly two non-empty arguments.
func contentsArgs(usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 2 || args[0] == "" || args[1] == "" {
			return fmt.Errorf("%s needs exactly two arguments: %s", cmd.CommandPath(), usage)
		}
		return nil
	}
}
