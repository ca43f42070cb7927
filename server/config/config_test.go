package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestEnvFallbackAndFlagPrecedence(t *testing.T) {
	t.Setenv("RS_BASE_ROOT", "/from/env")
	t.Setenv("RS_API_PORT", "9999")
	cfg := Defaults()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	if err := BindFlags(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--api-port", "1234", "--action-timeout", "20m"}); err != nil {
		t.Fatal(err)
	}
	if cfg.BaseRoot != "/from/env" || cfg.APIPort != 1234 || cfg.ActionTimeout.Minutes() != 20 || cfg.MaxActionTimeout.Hours() != 1 {
		t.Fatalf("cfg %+v", cfg)
	}
	if cfg.EffectivePluginRoot() != "/from/env/plugins" {
		t.Fatalf("plugin root %s", cfg.EffectivePluginRoot())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteLimitFlags(t *testing.T) {
	cfg := Defaults()
	if cfg.MaxObjectBytes != 1<<20 || cfg.MaxNameBytes != 1024 || cfg.MaxPatchOps != 1000 {
		t.Fatalf("defaults %d %d %d", cfg.MaxObjectBytes, cfg.MaxNameBytes, cfg.MaxPatchOps)
	}
	t.Setenv("RS_MAX_OBJECT_BYTES", "65536")
	t.Setenv("RS_MAX_NAME_BYTES", "200")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	if err := BindFlags(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--max-name-bytes", "300", "--max-patch-ops", "50"}); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxObjectBytes != 65536 || cfg.MaxNameBytes != 300 || cfg.MaxPatchOps != 50 {
		t.Fatalf("cfg %d %d %d", cfg.MaxObjectBytes, cfg.MaxNameBytes, cfg.MaxPatchOps)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadEnvIsReported(t *testing.T) {
	t.Setenv("RS_API_PORT", "eighty")
	cfg := Defaults()
	err := BindFlags(pflag.NewFlagSet("t", pflag.ContinueOnError), &cfg)
	if err == nil || !strings.Contains(err.Error(), "RS_API_PORT") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, mut := range []func(*Config){
		func(c *Config) { c.BaseRoot = "" },
		func(c *Config) { c.TLSCert = "x" },
		func(c *Config) { c.LogFormat = "xml" },
		func(c *Config) { c.APIPort = 70000 },
		func(c *Config) { c.ActionTimeout = 0 },
		func(c *Config) { c.MaxActionTimeout = c.ActionTimeout / 2 },
		func(c *Config) { c.LogLines = -1 },
		func(c *Config) { c.LogLines = MaxLogLines + 1 },
		func(c *Config) { c.MaxObjectBytes = MinObjectBytes - 1 },
		func(c *Config) { c.MaxNameBytes = 0 },
		func(c *Config) { c.MaxNameBytes = MaxNameBytesLimit + 1 },
		func(c *Config) { c.MaxPatchOps = 0 },
		func(c *Config) { c.ReadTimeout = 0 },
		func(c *Config) { c.APIMaxConnsPerIP = 0 },
		func(c *Config) { c.AdminReserveConns = c.APIMaxConns },
		func(c *Config) { c.AdminReserveConns = -1 },
		func(c *Config) { c.WSMaxPerPrincipal = 0 },
		func(c *Config) { c.LoginBurst = 0 },
		func(c *Config) { c.LoginWindow = 0 },
	} {
		c := Defaults()
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("invalid config accepted: %+v", c)
		}
	}
}

func TestAbsoluteResolvesRelativePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.BaseRoot = "data"
	cfg.TLSCert = "/etc/cert.pem"
	got, err := cfg.Absolute()
	if err != nil {
		t.Fatal(err)
	}
	if got.BaseRoot != filepath.Join(wd, "data") {
		t.Fatalf("BaseRoot = %q, want %q", got.BaseRoot, filepath.Join(wd, "data"))
	}
	if got.EffectivePluginRoot() != filepath.Join(wd, "data", "plugins") {
		t.Fatalf("plugin root = %q", got.EffectivePluginRoot())
	}
	if got.TLSCert != "/etc/cert.pem" || got.PluginRoot != "" || got.TLSKey != "" {
		t.Fatalf("absolute or unset paths changed: %+v", got)
	}
}

// TestLimitFlagsFromEnv: the security limits follow the flag > RS_* >
// default order like every other setting.
func TestLimitFlagsFromEnv(t *testing.T) {
	t.Setenv("RS_WS_MAX_PER_PRINCIPAL", "7")
	t.Setenv("RS_LOGIN_WINDOW", "5m")
	t.Setenv("RS_STATIC_LISTING", "true")
	cfg := Defaults()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	if err := BindFlags(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--api-max-conns", "100", "--login-burst", "3"}); err != nil {
		t.Fatal(err)
	}
	if cfg.WSMaxPerPrincipal != 7 || cfg.LoginWindow.Minutes() != 5 || !cfg.StaticListing || cfg.APIMaxConns != 100 || cfg.LoginBurst != 3 ||
		cfg.ReadTimeout != Defaults().ReadTimeout {
		t.Fatalf("cfg %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
