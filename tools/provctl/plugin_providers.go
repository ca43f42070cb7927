package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/provisionhq/provision/client"
	"github.com/spf13/cobra"
)

func (a *app) newPluginProvidersCmd() *cobra.Command {
	// Providers are created by uploading their executable, never from JSON.
	cmd := a.newObjectCmd(objectKind{
		prefix: "plugin_providers", singular: "plugin_provider",
		noCreate: true, noUpdate: true,
	}, "Access plugin providers (uploaded plugin executables)")
	cmd.AddCommand(a.providerUploadCmd(), a.providerDownloadCmd())
	return cmd
}

func (a *app) providerUploadCmd() *cobra.Command {
	const use = "upload <file> [as <name>]"
	return &cobra.Command{
		Use:   use,
		Short: "Upload a plugin provider executable (named after the file unless 'as <name>')",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 || (len(args) == 3 && args[1] == "as") {
				return nil
			}
			return fmt.Errorf("usage: %s %s", cmd.Parent().CommandPath(), use)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := filepath.Base(args[0])
			if len(args) == 3 {
				name = args[2]
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("opening plugin provider: %w", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return fmt.Errorf("opening plugin provider: %w", err)
			}
			if !st.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", args[0])
			}
			return a.request(func(c *client.Client) (any, error) {
				return c.UploadPluginProvider(cmd.Context(), name, f)
			})
		},
	}
}

func (a *app) providerDownloadCmd() *cobra.Command {
	const use = "download <name> to <file>"
	return &cobra.Command{
		Use:   use,
		Short: "Download a plugin provider executable into a file",
		Args:  exactArgs(use, 3),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if err := keyword(args, 1, "to", use); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			dest := args[2]
			tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-*")
			if err != nil {
				return fmt.Errorf("creating %s: %w", dest, err)
			}
			defer func() {
				if err != nil {
					_ = tmp.Close()
					_ = os.Remove(tmp.Name())
				}
			}()
			if err := c.DownloadPluginProvider(cmd.Context(), args[0], tmp); err != nil {
				return err
			}
			if err := tmp.Chmod(0o755); err != nil {
				return fmt.Errorf("writing %s: %w", dest, err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("writing %s: %w", dest, err)
			}
			if err := os.Rename(tmp.Name(), dest); err != nil {
				return fmt.Errorf("writing %s: %w", dest, errors.Unwrap(err))
			}
			_, err = fmt.Fprintf(a.out, "Downloaded %s to %s\n", args[0], dest)
			return err
		},
	}
}
