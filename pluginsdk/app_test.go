package pluginsdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
	"github.com/provisionhq/provision/pluginsdk/content"
)

// configOnly implements just the mandatory interface.
type configOnly struct{}

func (configOnly) Config(context.Context, *slog.Logger, *client.Client, map[string]any) *models.Error {
	return nil
}

// notAPlugin lacks Config.
type notAPlugin struct{}

func (notAPlugin) Stop(context.Context, *slog.Logger) {}

func testDef() *models.PluginProvider {
	return &models.PluginProvider{
		Name: "sdktest", Version: "v1.2.3", PluginVersion: pluginsdk.PluginVersion,
		AvailableActions: []models.AvailableAction{{Command: "poke", Model: "machines"}},
	}
}

// run executes the App with args and returns stdout, stderr and the error.
func run(t *testing.T, app *pluginsdk.App, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	app.WithOutput(&out, &errb).WithGetenv(func(k string) string { return env[k] })
	app.Command().SetArgs(args)
	err := app.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestInitAppRequiresConfigurer(t *testing.T) {
	for _, impl := range []any{notAPlugin{}, nil} {
		app := pluginsdk.InitApp("bad", "bad", "v0", testDef(), impl)
		_, stderr, err := run(t, app, nil, "define")
		if err == nil || !strings.Contains(err.Error(), "InitApp") || !strings.Contains(stderr, "InitApp") {
			t.Errorf("%T: err %v, stderr %q", impl, err, stderr)
		}
	}
	app := pluginsdk.InitApp("bad", "bad", "v0", testDef(), notAPlugin{})
	if _, _, err := run(t, app, nil, "define"); !strings.Contains(err.Error(), "does not implement pluginsdk.Configurer") {
		t.Errorf("message does not say what is missing: %v", err)
	}
}

func TestDefine(t *testing.T) {
	contentDir := fstest.MapFS{
		"content/._Description.meta": {Data: []byte("SDK test content\n")},
		"content/params/p.yaml":      {Data: []byte("Name: sdktest/p\nSchema:\n  type: string\n")},
	}
	def := testDef()
	app := pluginsdk.InitApp("sdktest", "test", "v1.2.3", def, configOnly{}).WithContent(contentDir)
	stdout, stderr, err := run(t, app, map[string]string{"RS_TOKEN": "x"}, "define", "ignored-extra-arg")
	if err != nil || stderr != "" {
		t.Fatalf("define: %v, stderr %q", err, stderr)
	}
	var got models.PluginProvider
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("define output: %v\n%s", err, stdout)
	}
	want := *def
	want.Content = got.Content
	buf, _ := json.MarshalIndent(&want, "", "  ")
	if stdout != string(buf)+"\n" {
		t.Errorf("define output is not MarshalIndent(def)+newline:\n%s", stdout)
	}
	if def.Content != "" {
		t.Error("define modified the caller's definition")
	}
	c, err := content.Unmarshal([]byte(got.Content), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Description != "SDK test content" || c.Meta.Name != "sdktest" || c.Meta.Version != "v1.2.3" || c.Meta.Type != "plugin" {
		t.Errorf("content meta: %+v", c.Meta)
	}
	if _, ok := c.Sections["params"]["sdktest/p"]; !ok {
		t.Errorf("content sections: %v", c.Sections)
	}

	bad := pluginsdk.InitApp("sdktest", "test", "v1", testDef(), configOnly{}).
		WithContent(fstest.MapFS{"params/x.txt": {Data: []byte("?")}})
	if _, _, err := run(t, bad, nil, "define"); err == nil || !strings.Contains(err.Error(), "unsupported file extension") {
		t.Errorf("bad content: %v", err)
	}
}

// validating implements Validator.
type validating struct {
	configOnly
	called *int
	fail   bool
}

func (v validating) Validate(ctx context.Context, l *slog.Logger, c *client.Client) (any, *models.Error) {
	*v.called++
	l.Info("validating") // must not reach stdout or stderr
	if v.fail {
		return nil, models.NewError("plugin", 403, "license expired")
	}
	d := testDef()
	d.Documentation = "validated against " + c.Endpoint()
	return d, nil
}

func TestDefineValidator(t *testing.T) {
	calls := 0
	newApp := func(fail bool) *pluginsdk.App {
		return pluginsdk.InitApp("sdktest", "t", "v1", testDef(), validating{called: &calls, fail: fail})
	}
	stdout, stderr, err := run(t, newApp(false), map[string]string{"RS_TOKEN": "tok", "RS_ENDPOINT": "https://192.0.2.1:8092"}, "define")
	if err != nil || stderr != "" || !strings.Contains(stdout, `"Documentation": "validated against https://192.0.2.1:8092"`) {
		t.Errorf("validated define: %v %q %s", err, stderr, stdout)
	}
	stdout, _, err = run(t, newApp(false), map[string]string{"RS_TOKEN": pluginsdk.CatalogToken}, "define")
	if err != nil || strings.Contains(stdout, "validated") || calls != 1 {
		t.Errorf("RS_TOKEN=catalog did not skip Validate: %v calls=%d %s", err, calls, stdout)
	}
	_, _, err = run(t, newApp(false), nil, "define")
	if err == nil || !strings.Contains(err.Error(), "RS_TOKEN is not set") || calls != 1 {
		t.Errorf("define without token: %v", err)
	}
	stdout, _, err = run(t, newApp(true), map[string]string{"RS_TOKEN": "tok"}, "define")
	if err == nil || !strings.Contains(err.Error(), "license expired") || stdout != "" {
		t.Errorf("failed validation: %v %q", err, stdout)
	}
}

// unpacking implements Unpacker.
type unpacking struct{ configOnly }

func (unpacking) Unpack(ctx context.Context, l *slog.Logger, dir string) error {
	return os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
}

func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if _, _, err := run(t, pluginsdk.InitApp("u", "u", "v", testDef(), unpacking{}), nil, "unpack", dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("unpack dir: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "x" {
		t.Error("Unpack not called")
	}
	for _, args := range [][]string{{"unpack"}, {"unpack", ""}, {"unpack", "a", "b"}} {
		_, stderr, err := run(t, pluginsdk.InitApp("u", "u", "v", testDef(), unpacking{}), nil, args...)
		if err == nil || !strings.Contains(err.Error(), "unpack <dir>") || !strings.Contains(stderr, "unpack <dir>") {
			t.Errorf("%q: err %v, stderr %q", args, err, stderr)
		}
	}
	// Without an Unpacker unpack is a no-op.
	none := filepath.Join(t.TempDir(), "none")
	if _, _, err := run(t, pluginsdk.InitApp("u", "u", "v", testDef(), configOnly{}), nil, "unpack", none); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("unpack without Unpacker created %s", none)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	stdout, _, err := run(t, pluginsdk.InitApp("v", "v", "v9.9.9", testDef(), configOnly{}), nil, "version")
	if err != nil || stdout != "Version: v9.9.9\n" {
		t.Errorf("version: %v %q", err, stdout)
	}
	stdout, _, err = run(t, pluginsdk.InitApp("v", "v", "v9.9.9", testDef(), configOnly{}), nil, "completion", "bash")
	if err != nil || !strings.Contains(stdout, "bash completion") {
		t.Errorf("completion: %v %.80q", err, stdout)
	}
	f := filepath.Join(t.TempDir(), "c.sh")
	if _, _, err := run(t, pluginsdk.InitApp("v", "v", "v", testDef(), configOnly{}), nil, "autocomplete", f); err != nil {
		t.Errorf("autocomplete: %v", err)
	} else if st, err := os.Stat(f); err != nil || st.Size() == 0 {
		t.Errorf("autocomplete wrote nothing: %v", err)
	}
}

func TestListenSetupErrors(t *testing.T) {
	for _, args := range [][]string{{"listen"}, {"listen", "a"}, {"listen", "a", "b", "c"}} {
		stdout, _, err := run(t, pluginsdk.InitApp("l", "l", "v", testDef(), configOnly{}), nil, args...)
		if err == nil || stdout != "Failed\n" || !strings.Contains(err.Error(), "exactly 2 arguments") {
			t.Errorf("%q: stdout %q err %v", args, stdout, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "no", "such", "dir")
	stdout, _, err := run(t, pluginsdk.InitApp("l", "l", "v", testDef(), configOnly{}), nil,
		"listen", filepath.Join(missing, "to"), filepath.Join(missing, "from"))
	if err == nil || stdout != "Failed\n" {
		t.Errorf("unbindable socket: stdout %q err %v", stdout, err)
	}
}
