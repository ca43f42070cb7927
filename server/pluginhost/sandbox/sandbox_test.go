package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// envProbe makes the test binary, started through the helper, act as a
// probe: it tries the paths in the variable's JSON and prints what it
// could do.
const envProbe = "SANDBOX_TEST_PROBE"

type probeReq struct {
	Read  []string
	Write []string
}

type probeOut struct {
	UID, GID int
	Groups   []int
	Read     map[string]string // path -> "ok" or the error
	Write    map[string]string
}

func TestMain(m *testing.M) {
	Main()
	if v := os.Getenv(envProbe); v != "" {
		var req probeReq
		if err := json.Unmarshal([]byte(v), &req); err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		out := probeOut{UID: os.Getuid(), GID: os.Getgid(), Read: map[string]string{}, Write: map[string]string{}}
		out.Groups, _ = os.Getgroups()
		for _, p := range req.Read {
			if _, err := os.ReadFile(p); err != nil {
				out.Read[p] = err.Error()
			} else {
				out.Read[p] = "ok"
			}
		}
		for _, p := range req.Write {
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				out.Write[p] = err.Error()
			} else {
				out.Write[p] = "ok"
			}
		}
		json.NewEncoder(os.Stdout).Encode(out)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHelperConfines runs a probe through the helper: it may read and
// write its own directory and nothing of the host's, runs as the
// unprivileged user when the test runs as root, and has no groups.
func TestHelperConfines(t *testing.T) {
	if !Available() {
		t.Fatal("Main did not run")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Directories the probe user can enter: /tmp is sticky and open.
	mk := func(mode os.FileMode) string {
		d, err := os.MkdirTemp("", "sandbox-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	own := mk(0o777)
	host := mk(0o755)
	// World-readable, so only Landlock stands between the probe and it.
	secret := filepath.Join(host, "token.key")
	if err := os.WriteFile(secret, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(own, "mine")
	if err := os.WriteFile(mine, []byte("m"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mine, 0o666); err != nil {
		t.Fatal(err)
	}

	pol := Policy{Landlock: true, RW: []string{own}}
	userName := "nobody"
	if os.Getuid() == 0 {
		uid, gid, err := LookupUser(userName)
		if err != nil {
			t.Skipf("no %s user: %v", userName, err)
		}
		pol.SwitchUser, pol.UID, pol.GID = true, uid, gid
	}
	req, _ := json.Marshal(probeReq{Read: []string{secret, mine, "/etc/hosts"}, Write: []string{filepath.Join(own, "new"), filepath.Join(host, "new")}})
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envProbe+"="+string(req))
	if err := Wrap(cmd, self, pol); err != nil {
		t.Fatal(err)
	}
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe: %v: %s", err, raw)
	}
	var out probeOut
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("probe output %q: %v", raw, err)
	}
	t.Logf("%s; probe: %+v", Describe(pol, userName), out)
	if pol.SwitchUser {
		if out.UID != pol.UID || out.GID != pol.GID || len(out.Groups) != 0 {
			t.Errorf("probe ran as uid %d gid %d groups %v, want %d/%d and none", out.UID, out.GID, out.Groups, pol.UID, pol.GID)
		}
	}
	if out.Read[mine] != "ok" || out.Write[filepath.Join(own, "new")] != "ok" {
		t.Errorf("probe could not use its own directory: %+v", out)
	}
	if out.Write[filepath.Join(host, "new")] == "ok" {
		t.Errorf("probe wrote into the host's directory")
	}
	if LandlockABI() > 0 {
		if out.Read[secret] == "ok" {
			t.Errorf("probe read %s despite Landlock ABI %d", secret, LandlockABI())
		}
		if out.Read["/etc/hosts"] != "ok" {
			t.Errorf("probe could not read /etc/hosts: %s", out.Read["/etc/hosts"])
		}
	} else {
		t.Logf("Landlock unavailable: only the user switch is tested")
	}
}

// TestHelperReportsExecFailure checks that the helper reports a clear error (exit 126 and a
// message) when the plugin executable does not exist.
func TestHelperReportsExecFailure(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/nonexistent/plugin", "define")
	cmd.Env = os.Environ()
	if err := Wrap(cmd, self, Policy{}); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != helperExit {
		t.Fatalf("exit: %v, want status %d; output %s", err, helperExit, out)
	}
	if want := "provision-plugin-sandbox: open /nonexistent/plugin"; !strings.Contains(string(out), want) {
		t.Errorf("output %q lacks %q", out, want)
	}
}
