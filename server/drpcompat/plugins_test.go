package drpcompat

import (
	"bytes"
	"github.com/provisionhq/provision/server/pluginhost/sandbox"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/servertest"
)

// TestMain makes this test binary the plugin sandbox helper, so the
// provisiond these tests start in-process runs plugins confined, as a real
// one does.
func TestMain(m *testing.M) {
	sandbox.Main()
	code := m.Run()
	if incrementerDir != "" {
		os.RemoveAll(incrementerDir)
	}
	os.Exit(code)
}

var (
	incrementerOnce sync.Once
	incrementerDir  string
	incrementerErr  error
)

// incrementerBinary builds plugins/incrementer (DRP's reference plugin on
// our SDK) once per test binary, into a directory named after the file
// drpcli would upload ("incrementer").
func incrementerBinary(t *testing.T) string {
	t.Helper()
	incrementerOnce.Do(func() {
		incrementerDir, incrementerErr = os.MkdirTemp("", "drpcompat-")
		if incrementerErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", filepath.Join(incrementerDir, "incrementer"), "github.com/provisionhq/provision/plugins/incrementer")
		cmd.Dir = filepath.Dir(file)
		if out, err := cmd.CombinedOutput(); err != nil {
			incrementerErr = &buildError{err: err, out: string(out)}
		}
	})
	if incrementerErr != nil {
		t.Fatal(incrementerErr)
	}
	return filepath.Join(incrementerDir, "incrementer")
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "build incrementer: " + e.err.Error() + "\n" + e.out }

// startWithPlugins runs provisiond with the plugin host.
func startWithPlugins(t *testing.T) *servertest.Server {
	t.Helper()
	mod := hostmodule.New(hostmodule.Options{})
	ts := servertest.Start(t, servertest.Options{Modules: []server.Module{mod}})
	if err := mod.WaitReady(t.Context()); err != nil {
		t.Fatalf("plugin host not ready: %v", err)
	}
	return ts
}

// TestPluginProviderUploadDownload mirrors cli/plugin_providers.go:
// `upload <path>` (name = path.Base, body = the opened file, so
// octet-stream sent chunked; ?replaceWritable=true with
// --replace-writable) answered 201 {"path","size"}; `download <name> to
// <dest>` = GetBlob of /plugin_providers/<name>/binary (Accept gains
// application/octet-stream); show/exists/list/count; `destroy` =
// DeleteModel.
func TestPluginProviderUploadDownload(t *testing.T) {
	ts := startWithPlugins(t)
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	bin := incrementerBinary(t)
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	upload := func(replaceWritable bool) {
		t.Helper()
		f, err := os.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var res struct {
			Path string `json:"path"`
			Size int64  `json:"size"`
		}
		r := c.req().post(f).urlFor("plugin_providers", filepath.Base(bin))
		if replaceWritable {
			r = r.params("replaceWritable", "true")
		}
		r.mustDo(t, &res)
		ex := c.last()
		if ex.ReqHeader.Get("Content-Type") != "application/octet-stream" || ex.ReqLength > 0 {
			t.Fatalf("mirror sent %v length %d, want octet-stream chunked", ex.ReqHeader, ex.ReqLength)
		}
		wantBody := `{"path":"incrementer","size":` + strconv.Itoa(len(want)) + `}`
		if ex.Status != http.StatusCreated || strings.TrimSpace(string(ex.Body)) != wantBody {
			t.Fatalf("upload answer %d %s, want 201 %s", ex.Status, ex.Body, wantBody)
		}
		if ct := ex.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("upload answer Content-Type %q", ct)
		}
	}
	upload(false)
	upload(true)

	// download to a writer.
	var got bytes.Buffer
	c.req().urlFor("/", "plugin_providers/incrementer/binary").mustDo(t, &got)
	if accept := c.last().ReqHeader.Values("Accept"); len(accept) != 2 || accept[1] != "application/octet-stream" {
		t.Fatalf("GetBlob Accept %v", accept)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("downloaded %d bytes, want the %d uploaded", got.Len(), len(want))
	}
	// A missing provider's binary: the JSON error reaches the writer call.
	err = c.req().urlFor("plugin_providers", "nope", "binary").do(&got)
	if e := asDRPError(t, err, 404); e.Error() != "GET: plugin_providers/nope: Not Found" {
		t.Fatalf("download missing: %q", e.Error())
	}

	// show, exists (HEAD), list, count.
	var pp struct {
		Name             string
		PluginVersion    int
		AvailableActions []struct{ Provider, Model, Command string }
		Content          *string
	}
	c.req().urlFor("plugin_providers", "incrementer").mustDo(t, &pp)
	if pp.Name != "incrementer" || pp.PluginVersion != 4 || len(pp.AvailableActions) != 3 || pp.AvailableActions[0].Provider != "incrementer" || pp.Content != nil {
		t.Fatalf("show: %s", c.last().Body)
	}
	if err := c.req().head().urlFor("plugin_providers", "incrementer").do(nil); err != nil {
		t.Fatalf("exists: %v", err)
	}
	var list []map[string]any
	c.req().urlFor("plugin_providers").mustDo(t, &list)
	h := http.Header{}
	c.req().head().urlFor("plugin_providers").mustDo(t, &h)
	if n := strconv.Itoa(len(list)); h.Get("X-Drp-List-Count") != n || h.Get("X-Drp-List-Filter-Count") != n {
		t.Fatalf("count headers %v for %d providers", h, len(list))
	}

	// destroy: DeleteModel decodes the answer, so even an empty 204 must
	// be JSON-typed.
	if err := c.req().del().urlFor("plugin_providers", "incrementer").do(&map[string]any{}); err != nil {
		t.Fatalf("destroy: %v (answer %d %v)", err, c.last().Status, c.last().Header)
	}
	err = c.req().urlFor("plugin_providers", "incrementer").do(&pp)
	if e := asDRPError(t, err, 404); e.Error() != "GET: plugin_providers/incrementer: Not Found" {
		t.Fatalf("after destroy: %q", e.Error())
	}
	err = c.req().del().urlFor("plugin_providers", "incrementer").do(nil)
	if e := asDRPError(t, err, 404); e.Error() != "DELETE: plugin_providers/incrementer: Not Found" {
		t.Fatalf("destroy again: %q", e.Error())
	}
}

// TestActions mirrors cli/actionHelper.go: `machines actions <id>`,
// `machines action <id> <cmd>`, `machines runaction <id> <cmd> k v ...`
// (values YAML-decoded, body the JSON map, --plugin → ?plugin=),
// `system actions|action|runaction`, and the error strings drpcli prints
// (DRP's models.Error.Error() on the decoded answer, drp-protocol §5.4).
func TestActions(t *testing.T) {
	ts := startWithPlugins(t)
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	f, err := os.Open(incrementerBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	c.req().post(f).urlFor("plugin_providers", "incrementer").mustDo(t, &map[string]any{})
	f.Close()
	var plugin map[string]any
	c.req().post(map[string]any{"Name": "incr", "Provider": "incrementer"}).urlFor("plugins").mustDo(t, &plugin)

	// The instance is up once its system action answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v any
		err := c.req().post(map[string]any{}).urlFor("system", "actions", "incrstatus").do(&v)
		if err == nil && v == "Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incrementer never answered incrstatus: %v %v", err, v)
		}
		time.Sleep(100 * time.Millisecond)
	}

	m := &drpMachine{Name: "john"}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	id := m.Uuid.String()

	// runaction <id> reset_count: a required param is missing.
	var v any
	err = c.req().post(map[string]any{}).urlFor("machines", id, "actions", "reset_count").do(&v)
	if got := asDRPError(t, err, 400).Error(); got != "INVOKE: machines/"+id+": Action reset_count Missing Parameter incrementer/touched" {
		t.Fatalf("drpcli prints %q", got)
	}
	// actions <id>: only commands that validate for this machine.
	var acts []struct{ Provider, Model, Command string }
	c.req().urlFor("machines", id, "actions").mustDo(t, &acts)
	if len(acts) != 1 || acts[0].Command != "increment" || acts[0].Provider != "incrementer" || acts[0].Model != "machines" {
		t.Fatalf("actions: %s", c.last().Body)
	}
	// action <id> reset_count: the validation error of GET.
	var one struct{ Command string }
	err = c.req().urlFor("machines", id, "actions", "reset_count").do(&one)
	if got := asDRPError(t, err, 400).Error(); got != "GET: machines/"+id+": Action reset_count Missing Parameter incrementer/touched" {
		t.Fatalf("drpcli prints %q", got)
	}
	c.req().urlFor("machines", id, "actions", "increment").params("plugin", "incr").mustDo(t, &one)
	if one.Command != "increment" {
		t.Fatalf("action: %s", c.last().Body)
	}

	// runaction <id> increment incrementer/step 3 --plugin incr: the
	// pair's value is YAML-decoded (3 is a number).
	c.req().post(map[string]any{"incrementer/step": 3}).urlFor("machines", id, "actions", "increment").params("plugin", "incr").mustDo(t, &v)
	if v != float64(3) || !strings.HasSuffix(c.last().URL, "/actions/increment?plugin=incr") {
		t.Fatalf("runaction: %v via %s", v, c.last().URL)
	}
	err = c.req().post(map[string]any{"incrementer/step": "x"}).urlFor("machines", id, "actions", "increment").do(&v)
	if got := asDRPError(t, err, 400).Error(); !strings.HasPrefix(got, "INVOKE: machines/"+id+": Action increment: Invalid Parameter: incrementer/step: ") {
		t.Fatalf("drpcli prints %q", got)
	}
	err = c.req().post(map[string]any{}).urlFor("machines", id, "actions", "explode").do(&v)
	if got := asDRPError(t, err, 400).Error(); got != "INVOKE: machines/"+id+": Action explode on machines: Not Found" {
		t.Fatalf("drpcli prints %q", got)
	}
	err = c.req().post(map[string]any{}).urlFor("machines", id, "actions", "increment").params("plugin", "nope").do(&v)
	if got := asDRPError(t, err, 400).Error(); got != "INVOKE: machines/"+id+": Action increment on machines for plugin nope not found" {
		t.Fatalf("drpcli prints %q", got)
	}
	err = c.req().post(map[string]any{}).urlFor("machines", "fred", "actions", "increment").do(&v)
	if got := asDRPError(t, err, 404).Error(); got != "POST: machines/fred: Not Found" {
		t.Fatalf("drpcli prints %q", got)
	}

	// system actions / action / runaction.
	var sys []struct{ Model, Command string }
	c.req().urlFor("system", "actions").mustDo(t, &sys)
	if len(sys) != 1 || sys[0].Command != "incrstatus" || sys[0].Model != "" {
		t.Fatalf("system actions: %s", c.last().Body)
	}
	c.req().urlFor("system", "actions", "incrstatus").mustDo(t, &one)
	if one.Command != "incrstatus" {
		t.Fatalf("system action: %s", c.last().Body)
	}
	err = c.req().post(map[string]any{}).urlFor("system", "actions", "nothing").do(&v)
	if got := asDRPError(t, err, 400).Error(); !strings.HasPrefix(got, "INVOKE: system") || !strings.HasSuffix(got, "Action nothing on system: Not Found") {
		t.Fatalf("drpcli prints %q", got)
	}
}
