package hostmodule

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/pluginhost"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
)

// snoopReport is what the snoop provider reports from define, unpack and
// listen: per path, "ok" (a leak) or the error it got.
type snoopReport struct {
	UID   int
	GID   int
	Cwd   string
	Base  string
	Tries map[string]string
}

func decodeSnoop(t *testing.T, where string, raw []byte) snoopReport {
	t.Helper()
	var r snoopReport
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Tries) == 0 {
		t.Fatalf("%s: snoop report %q: %v", where, raw, err)
	}
	return r
}

// secretsOf lists the server's secret files in base and fails when one
// is missing (the test would prove nothing).
func secretsOf(t *testing.T, base string) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"token.key", "secure-params.key", "server.key", "provision.db", "admin-password"} {
		p := filepath.Join(base, f)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("secret %s missing: %v", p, err)
		}
		out = append(out, p)
	}
	return out
}

// TestPluginContainment is the plugin containment test of issue #9: a
// provider that tries to read each of the server's secrets (token.key,
// secure-params.key, the TLS key, the database, admin-password; by path
// and through /proc/<provisiond>/root), provisiond's environment and
// memory, /etc/shadow, and another plugin's scratch directory, socket
// and command line, in define, unpack and listen, against a real
// provisiond with real plugin subprocesses. It may read nothing of it.
// What is enforced is in the plugin's Meta and in the log.
//
// It runs twice: with the default plugin user (nobody when the test runs
// as root, as in CI), and with --plugin-user=root, where the plugins keep
// root's uid and Landlock alone must hold (as for a provisiond that is
// not root).
func TestPluginContainment(t *testing.T) {
	t.Run("plugin-user", func(t *testing.T) { testContainment(t, "nobody") })
	t.Run("landlock-only", func(t *testing.T) {
		if sandbox.LandlockABI() == 0 {
			t.Skip("no Landlock on this kernel")
		}
		testContainment(t, "root")
	})
}

func testContainment(t *testing.T, pluginUser string) {
	switchUser := pluginhost.Sandbox{Enabled: true, User: pluginUser}.SwitchesUser()
	abi := sandbox.LandlockABI()
	if !switchUser && abi == 0 {
		t.Skip("not root and no Landlock: nothing can be enforced here")
	}
	base := t.TempDir()
	// provisiond writes admin-password only when it generates the
	// password; put one there so that it is among the secrets tried.
	if err := os.WriteFile(filepath.Join(base, "admin-password"), []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnvConfig(t, base, "", map[string]string{"snoop": "snoop", "fake": "fake"}, func(c *config.Config) {
		c.PluginUser = pluginUser
	})
	secrets := secretsOf(t, base)

	check := func(where string, r snoopReport, mustFail []string) {
		t.Helper()
		if r.Base != base {
			t.Fatalf("%s: snoop looked in %q, not the base directory %q", where, r.Base, base)
		}
		if switchUser {
			uid, gid, err := sandbox.LookupUser(pluginUser)
			if err != nil {
				t.Fatal(err)
			}
			if r.UID != uid || r.GID != gid {
				t.Errorf("%s: ran as %d/%d, want %s %d/%d", where, r.UID, r.GID, pluginUser, uid, gid)
			}
		}
		for _, p := range mustFail {
			got, tried := r.Tries[p]
			if !tried {
				t.Errorf("%s: %s was not tried", where, p)
				continue
			}
			if got == "ok" {
				t.Errorf("%s: the plugin could read %s", where, p)
			}
		}
		t.Logf("%s (uid %d): %v", where, r.UID, r.Tries)
	}
	serverSide := func() []string {
		out := append([]string{}, secrets...)
		out = append(out, base, "/etc/shadow", "/proc/1/environ")
		// provisiond runs in this process.
		self := fmt.Sprintf("/proc/%d", os.Getpid())
		for _, p := range secrets {
			out = append(out, filepath.Join(self, "root", p))
		}
		return append(out, self+"/environ", self+"/mem")
	}

	// define: its report is the provider's Documentation.
	var pp models.PluginProviderInfo
	if code, raw := e.do("GET", "/api/v3/plugin_providers/snoop", nil, &pp); code != 200 {
		t.Fatalf("snoop provider: %d %s", code, raw)
	}
	check("define", decodeSnoop(t, "define", []byte(pp.Documentation)), serverSide())

	// unpack: its report is one of the files it unpacked.
	raw, err := os.ReadFile(filepath.Join(base, "tftpboot", "files", "plugin_providers", "snoop", "snoop.json"))
	if err != nil {
		t.Fatalf("unpack report: %v", err)
	}
	check("unpack", decodeSnoop(t, "unpack", raw), serverSide())

	// listen, next to another plugin whose files it must not reach.
	e.createPlugin("fake1", "fake", nil)
	fakePid := e.waitPid("fake1")
	e.createPlugin("snoop1", "snoop", nil)
	e.waitPid("snoop1")
	sock, ok := e.mod.Host().SocketPath("fake1")
	if !ok {
		t.Fatal("no socket for fake1")
	}
	comm, scratch := pluginhost.PluginDirsFor(base, switchUser)
	otherScratch := filepath.Join(scratch, "fake1")
	otherCmdline := fmt.Sprintf("/proc/%d/cmdline", int(fakePid))
	otherFiles := []string{otherScratch, comm, otherCmdline}
	// Its own scratch directory it may read: proof that the report
	// tells reads apart from failures.
	ownScratch := filepath.Join(scratch, "snoop1")
	extra := append([]string{sock, ownScratch}, otherFiles...)
	code, v := e.action("/api/v3/system", "snoop?plugin=snoop1", map[string]any{"snoop/paths": extra})
	if code != 200 {
		t.Fatalf("snoop action: %d %v", code, v)
	}
	buf, _ := json.Marshal(v)
	r := decodeSnoop(t, "listen", buf)
	mustFail := serverSide()
	if abi > 0 {
		// Other plugins run as the same user: only Landlock keeps them
		// apart.
		mustFail = append(mustFail, otherFiles...)
		if abi >= 9 {
			mustFail = append(mustFail, sock)
		} else {
			t.Logf("Landlock ABI %d < 9 does not restrict connecting to a socket by path (%s: %s); the socket directory's name is random and its root not listable", abi, sock, r.Tries[sock])
		}
	}
	check("listen", r, mustFail)
	if r.Tries[ownScratch] != "ok" {
		t.Errorf("listen could not read its own scratch directory %s: %s", ownScratch, r.Tries[ownScratch])
	}
	if !strings.HasPrefix(r.Cwd, scratch+string(filepath.Separator)) {
		t.Errorf("listen ran in %s, not in its scratch directory under %s", r.Cwd, scratch)
	}
	if strings.HasPrefix(scratch, base+string(filepath.Separator)) && switchUser {
		t.Errorf("scratch root %s is inside the base directory", scratch)
	}

	// What is enforced is visible on the Plugin and in the log.
	var p models.Plugin
	waitFor(t, 20*time.Second, "the sandbox recorded in snoop1's Meta", func() bool {
		e.do("GET", "/api/v3/plugins/snoop1", nil, &p)
		return p.Meta[pluginhost.MetaSandbox] != ""
	})
	meta := p.Meta[pluginhost.MetaSandbox]
	t.Logf("Meta %s: %s", pluginhost.MetaSandbox, meta)
	if !strings.Contains(meta, "no_new_privs=yes") ||
		(switchUser && !strings.Contains(meta, "user="+pluginUser)) ||
		(abi > 0 && !strings.Contains(meta, fmt.Sprintf("landlock=abi%d", abi))) {
		t.Errorf("Meta %s = %q does not say what is enforced (root: %v, Landlock ABI %d)", pluginhost.MetaSandbox, meta, switchUser, abi)
	}
	if logs := e.ts.Logs(); !strings.Contains(logs, "plugin sandbox") || !strings.Contains(logs, "snoop1") {
		t.Errorf("no plugin sandbox line for snoop1 in the log")
	}
}

// TestUnpackSymlinkRefused: a provider whose unpack leaves symlinks (to
// /etc/shadow and to the server's token.key) in its unpack directory is
// refused; nothing of it reaches the file server, the provider's Errors
// and the PluginErrors of a plugin using it say why.
func TestUnpackSymlinkRefused(t *testing.T) {
	base := t.TempDir()
	e := startEnv(t, base, "", map[string]string{"symlink": "symlink"})
	var pp models.PluginProviderInfo
	if code, raw := e.do("GET", "/api/v3/plugin_providers/symlink", nil, &pp); code != 200 {
		t.Fatalf("provider record: %d %s", code, raw)
	}
	if len(pp.Errors) == 0 || !containsAny(pp.Errors, "refused") || !containsAny(pp.Errors, "is a symlink") {
		t.Fatalf("provider Errors %q do not report the refused symlink", pp.Errors)
	}
	unpacked := filepath.Join(base, "tftpboot", "files", "plugin_providers")
	entries, _ := os.ReadDir(unpacked)
	for _, d := range entries {
		if strings.Contains(d.Name(), "symlink") {
			t.Errorf("unpack output %s reached the file server", d.Name())
		}
	}

	e.createPlugin("symlink1", "symlink", nil)
	waitFor(t, 20*time.Second, "PluginErrors of symlink1 saying why", func() bool {
		errs := e.pluginErrors("symlink1")
		return containsAny(errs, "Missing Plugin Provider: symlink") && containsAny(errs, "is a symlink")
	})
	t.Logf("PluginErrors: %q", e.pluginErrors("symlink1"))
}

// TestPluginSandboxOff: --plugin-sandbox=false runs plugins unconfined,
// and says so in the log and in the Plugin's Meta.
func TestPluginSandboxOff(t *testing.T) {
	e := startEnvConfig(t, "", "", map[string]string{"fake": "fake"}, func(c *config.Config) {
		c.PluginSandbox = false
	})
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	var p models.Plugin
	waitFor(t, 20*time.Second, "the sandbox recorded in fake1's Meta", func() bool {
		e.do("GET", "/api/v3/plugins/fake1", nil, &p)
		return p.Meta[pluginhost.MetaSandbox] != ""
	})
	if got := p.Meta[pluginhost.MetaSandbox]; got != "none" {
		t.Errorf("Meta %s = %q, want none", pluginhost.MetaSandbox, got)
	}
	if !strings.Contains(e.ts.Logs(), "plugin sandbox off") {
		t.Errorf("the log does not say that the plugin sandbox is off")
	}
}
