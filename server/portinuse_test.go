package server_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/tlsutil"
)

// TestPortInUseWritesNoSecrets: a first start whose port is taken fails
// before it creates the admin password (file and notice), the TLS
// material or the secure-param key, so a retry on a free port is a clean
// first start.
func TestPortInUseWritesNoSecrets(t *testing.T) {
	for _, which := range []string{"api", "static"} {
		t.Run(which, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			port := busy.Addr().(*net.TCPAddr).Port
			cfg := config.Defaults()
			cfg.BaseRoot = t.TempDir()
			cfg.APIAddr, cfg.StaticAddr = "127.0.0.1", "127.0.0.1"
			cfg.APIPort, cfg.StaticPort = 0, 0
			if which == "api" {
				cfg.APIPort = port
			} else {
				cfg.StaticPort = port
			}
			var out bytes.Buffer
			err = func() error {
				s, err := server.New(context.Background(), cfg, server.Options{LogOutput: &out, Stdout: &out})
				if err != nil {
					return err
				}
				defer s.Close()
				return s.Start(context.Background())
			}()
			if err == nil {
				t.Fatal("a start on a port in use succeeded")
			}
			if !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("error does not say why: %v", err)
			}
			for _, f := range []string{server.AdminPasswordFile, tlsutil.CertFileName, tlsutil.KeyFileName, secrets.KeyFileName, server.EndpointsFile} {
				if _, err := os.Stat(filepath.Join(cfg.BaseRoot, f)); !os.IsNotExist(err) {
					t.Errorf("%s exists after a failed start (%v)", f, err)
				}
			}
			if strings.Contains(out.String(), "generated password") {
				t.Errorf("a password was announced by a start that failed:\n%s", out.String())
			}
			// The base directory is not locked by the failed attempt and a
			// retry on free ports bootstraps normally.
			busy.Close()
			cfg.APIPort, cfg.StaticPort = 0, 0
			s, err := server.New(context.Background(), cfg, server.Options{LogOutput: &out, Stdout: &out})
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			defer s.Close()
			if _, err := os.Stat(filepath.Join(cfg.BaseRoot, server.AdminPasswordFile)); err != nil {
				t.Fatalf("retry did not bootstrap: %v", err)
			}
		})
	}
}
