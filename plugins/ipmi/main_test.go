package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/actions"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server/servertest"
)

func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }

// drpParams are the 61 params of DRP's ipmi pack.
func drpParams() []string {
	return []string{"ipmi/address", "ipmi/address-v4", "ipmi/address-v6", "ipmi/auto-boot-target", "ipmi/configure/address",
		"ipmi/configure/cert-country", "ipmi/configure/cert-locality", "ipmi/configure/cert-org-unit", "ipmi/configure/cert-org",
		"ipmi/configure/cert-province", "ipmi/configure/certificate", "ipmi/configure/dns-servers", "ipmi/configure/domain",
		"ipmi/configure/gateway", "ipmi/configure/generate-csr", "ipmi/configure/generate-random-password", "ipmi/configure/hostname",
		"ipmi/configure/ip-mode", "ipmi/configure/key", "ipmi/configure/netmask", "ipmi/configure/network", "ipmi/configure/no-bmc-fatal",
		"ipmi/configure/ntp-servers", "ipmi/configure/password", "ipmi/configure/port", "ipmi/configure/post-csr-task",
		"ipmi/configure/random-password-settings", "ipmi/configure/reserve-ip", "ipmi/configure/timezone", "ipmi/configure/user",
		"ipmi/configure/userid", "ipmi/configure/username", "ipmi/csr", "ipmi/enabled", "ipmi/extra-ipmi-commands", "ipmi/force-lan-chan",
		"ipmi/force-protocol", "ipmi/gateway", "ipmi/gateway-v4", "ipmi/gateway-v6", "ipmi/identify-duration", "ipmi/ipsrc", "ipmi/ipsrc-v4",
		"ipmi/ipsrc-v6", "ipmi/lpar-id", "ipmi/macaddr", "ipmi/mode", "ipmi/netmask", "ipmi/netmask-v4", "ipmi/netmask-v6", "ipmi/password",
		"ipmi/port-ipmitool", "ipmi/port-lpar", "ipmi/port-racadm", "ipmi/port-redfish", "ipmi/prefer-v6", "ipmi/service-user",
		"ipmi/skip-status-validation", "ipmi/username", "ipmi/virtual-media-boot", "ipmi/virtual-media-url"}
}

// TestDefine runs the built binary's define, as the host does.
func TestDefine(t *testing.T) {
	def := plugintest.FromPackage(t, ".").Define(t)
	if def.Name != "ipmi" || def.PluginVersion != 4 || !def.AutoStart || def.HasPublish {
		t.Fatalf("definition header: %+v", def)
	}
	if len(def.AvailableActions) != 25 {
		t.Fatalf("%d actions", len(def.AvailableActions))
	}
	last := def.AvailableActions[24]
	if last.Command != "bulkAction" || last.Model != "" || !slices.Equal(last.RequiredParams, []string{"ipmi/bulk-command", "ipmi/bulk-filter"}) {
		t.Fatalf("system action: %+v", last)
	}
	c, err := content.Unmarshal([]byte(def.Content), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Name != "ipmi" || c.Meta.Type != "plugin" {
		t.Fatalf("content meta %+v", c.Meta)
	}
	for _, name := range drpParams() {
		if plugintest.ParamSchema(t, c, name)["type"] == nil {
			t.Fatalf("%s has no schema type", name)
		}
	}
	if len(drpParams()) != 61 {
		t.Fatal("test list drifted")
	}
	secure := []string{}
	for name, p := range c.Sections["params"] {
		if p.(map[string]any)["Secure"] == true {
			secure = append(secure, name)
		}
	}
	slices.Sort(secure)
	if !slices.Equal(secure, []string{"ipmi/configure/password", "ipmi/password"}) {
		t.Fatalf("secure params %q", secure)
	}
	defaults := map[string]any{"ipmi/mode": "native", "ipmi/port-ipmitool": 0, "ipmi/port-racadm": 0, "ipmi/port-redfish": 443,
		"ipmi/port-lpar": 12443, "ipmi/identify-duration": 60, "detected-bios-mode": "legacy", "ipmi/configure/ip-mode": "dhcp"}
	for name, want := range defaults {
		if got := plugintest.ParamSchema(t, c, name)["default"]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s default = %v, want %v", name, got, want)
		}
	}
	if enum := plugintest.ParamSchema(t, c, "ipmi/mode")["enum"].([]any); !slices.Contains(enum, any("racadmn")) || !slices.Contains(enum, any("ipmitool")) {
		t.Fatalf("ipmi/mode enum %v", enum)
	}
	for _, kind := range []string{"stages", "tasks", "templates"} {
		if len(c.Sections[kind]) == 0 {
			t.Fatalf("no %s in the content pack", kind)
		}
	}
	// Every template a task names is in the pack.
	for name, tk := range c.Sections["tasks"] {
		for _, tm := range tk.(map[string]any)["Templates"].([]any) {
			id := tm.(map[string]any)["ID"].(string)
			if _, ok := c.Sections["templates"][id]; !ok {
				t.Fatalf("task %s uses missing template %s", name, id)
			}
		}
	}
}

// env starts a real provisiond, loads the pack's params into it and
// returns the plugin environment (endpoint and an admin token).
func env(t *testing.T) (*servertest.Server, map[string]string) {
	ts := servertest.Start(t, servertest.Options{})
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := fs.Sub(contentFS, "content")
	if err != nil {
		t.Fatal(err)
	}
	pack, err := content.FromFS(sub)
	if err != nil {
		t.Fatal(err)
	}
	// The server accepts every param definition of the pack.
	for name, p := range pack.Sections["params"] {
		var param models.Param
		if err := models.Remarshal(p, &param); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, "params", &param, nil); err != nil {
			t.Fatalf("server refused param %s: %v", name, err)
		}
	}
	resp, body := ts.Do(t, "GET", "/api/v3/users/rocketskates/token", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tok models.UserToken
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	return ts, map[string]string{"RS_ENDPOINT": ts.URL, "RS_TOKEN": tok.Token}
}

func TestActionsThroughTheSDK(t *testing.T) {
	ts, e := env(t)
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pl := plugintest.StartApp(t, app(newPlugin(actions.Options{})), e)
	if r := pl.Config(t, map[string]any{}); r.Status != 200 {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}

	var sims []*bmcsim.BMC
	var machines []*models.Machine
	for i := range 2 {
		s, err := bmcsim.Start(bmcsim.Options{Password: fmt.Sprintf("secret-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		sims = append(sims, s)
		m := &models.Machine{Name: fmt.Sprintf("rack7-%d", i), Params: map[string]any{"rack": "r7",
			"ipmi/address": s.Host, "ipmi/port-ipmitool": s.Port, "ipmi/username": "ADMIN", "ipmi/password": fmt.Sprintf("secret-%d", i)}}
		out := &models.Machine{}
		if err := c.Create(ctx, "machines", m, out); err != nil {
			t.Fatal(err)
		}
		machines = append(machines, out)
	}
	// What the host sends: the machine plus resolved params, numbers as JSON numbers.
	params := func(i int, extra ...any) map[string]any {
		p := map[string]any{"ipmi/address": sims[i].Host, "ipmi/port-ipmitool": float64(sims[i].Port), "ipmi/username": "ADMIN",
			"ipmi/password": fmt.Sprintf("secret-%d", i), "ipmi/mode": "native", "detected-bios-mode": "uefi"}
		for j := 0; j < len(extra); j += 2 {
			p[extra[j].(string)] = extra[j+1]
		}
		return p
	}
	act := func(i int, cmd string, p map[string]any) *plugintest.Response {
		return pl.Action(t, &models.Action{Model: machines[i], Plugin: "ipmi", Command: cmd, Params: p})
	}

	if r := act(0, "poweron", params(0)); r.Status != 200 || !sims[0].Chassis.On() {
		t.Fatalf("poweron: %d %s", r.Status, r.Body)
	}
	r := act(0, "powerstatus", params(0))
	var ps map[string]string
	if r.Status != 200 || r.Decode(&ps) != nil || ps["power"] != "on" || ps["raw"] != "Chassis Power is on" {
		t.Fatalf("powerstatus: %d %s", r.Status, r.Body)
	}
	if r := act(0, "identify", params(0, "ipmi/identify-duration", float64(20))); r.Status != 200 {
		t.Fatalf("identify: %d %s", r.Status, r.Body)
	}
	if id, _ := sims[0].Chassis.LastIdentify(); id.Seconds != 20 {
		t.Fatalf("identify reached the BMC as %+v", id)
	}
	if r := act(0, "forcebootpxe", params(0)); r.Status != 200 {
		t.Fatalf("forcebootpxe: %d %s", r.Status, r.Body)
	}
	if f, _ := sims[0].Chassis.BootFlags(); !f.Persistent || !f.EFI {
		t.Fatalf("boot flags %+v", f)
	}
	// Errors keep their codes through the SDK.
	r = act(0, "poweroff", params(0, "ipmi/password", "wrong"))
	if me := r.Error(); r.Status != 401 || me == nil || me.Code != 401 || me.Key != "ipmi" {
		t.Fatalf("wrong password: %d %s", r.Status, r.Body)
	}
	r = act(0, "poweroff", params(0, "ipmi/mode", "telepathy"))
	if r.Status != 400 || !strings.Contains(string(r.Body), "Invalid mode: telepathy") {
		t.Fatalf("bad mode: %d %s", r.Status, r.Body)
	}
	if !sims[0].Chassis.On() {
		t.Fatal("failed actions changed the power state")
	}

	// bulkAction over the rack, reading params (secure password decoded) from provisiond.
	sims[1].Chassis.SetOn(true)
	r = pl.Action(t, &models.Action{Plugin: "ipmi", Command: "bulkAction", Params: map[string]any{
		"ipmi/bulk-command": "poweroff", "ipmi/bulk-filter": "rack=Eq(r7)", "ipmi/bulk-concurrency": float64(2)}})
	var sum struct {
		Total, Succeeded, Failed int
		Results                  []struct {
			Name  string
			Error *models.Error
		}
	}
	if r.Status != 200 || r.Decode(&sum) != nil || sum.Total != 2 || sum.Succeeded != 2 {
		t.Fatalf("bulk: %d %s", r.Status, r.Body)
	}
	if sims[0].Chassis.On() || sims[1].Chassis.On() {
		t.Fatal("bulk poweroff did not power the rack off")
	}
	for _, bad := range []map[string]any{
		{"ipmi/bulk-command": "explode", "ipmi/bulk-filter": "rack=Eq(r7)"},
		{"ipmi/bulk-command": "poweroff"},
		{"ipmi/bulk-command": "poweroff", "ipmi/bulk-filter": "rack=Eq(r7)", "ipmi/bulk-concurrency": float64(0)},
	} {
		if r := pl.Action(t, &models.Action{Command: "bulkAction", Params: bad}); r.Status != 400 {
			t.Fatalf("bulk %v: %d %s", bad, r.Status, r.Body)
		}
	}
	if r := pl.Stop(t); r.Status != 200 {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
}

// TestDocumentedBulkFilterExample runs the example the ipmi/bulk-filter
// param documents against a real provisiond: it must select the machine it
// describes (an operator copies it), and the Params.<name> form that
// matches nothing must fail loudly instead of succeeding with Total 0.
func TestDocumentedBulkFilterExample(t *testing.T) {
	ts, e := env(t)
	c := ts.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := fs.Sub(contentFS, "content")
	if err != nil {
		t.Fatal(err)
	}
	pack, err := content.FromFS(sub)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := pack.Sections["params"]["ipmi/bulk-filter"].(map[string]any)["Documentation"].(string)
	m := regexp.MustCompile(`(?m)^Example: (\S+)$`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no \"Example: <filter>\" line in the ipmi/bulk-filter documentation:\n%s", doc)
	}
	example := m[1]
	if example != "rack=Eq(r12)&Name=Re(^node)" {
		t.Fatalf("documented example %q: update this test's machines to match it", example)
	}
	sim, err := bmcsim.Start(bmcsim.Options{Password: "pw", PoweredOn: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	for _, mc := range []struct{ name, rack string }{{"node1", "r12"}, {"node2", "r13"}, {"web1", "r12"}} {
		m := &models.Machine{Name: mc.name, Params: map[string]any{"rack": mc.rack, "ipmi/address": sim.Host,
			"ipmi/port-ipmitool": sim.Port, "ipmi/username": "ADMIN", "ipmi/password": "pw"}}
		if err := c.Create(ctx, "machines", m, nil); err != nil {
			t.Fatal(err)
		}
	}
	pl := plugintest.StartApp(t, app(newPlugin(actions.Options{})), e)
	if r := pl.Config(t, map[string]any{}); r.Status != 200 {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}
	bulkRun := func(filter string, extra ...any) *plugintest.Response {
		p := map[string]any{"ipmi/bulk-command": "powerstatus", "ipmi/bulk-filter": filter}
		for i := 0; i < len(extra); i += 2 {
			p[extra[i].(string)] = extra[i+1]
		}
		return pl.Action(t, &models.Action{Plugin: "ipmi", Command: "bulkAction", Params: p})
	}
	var sum struct {
		Total, Succeeded int
		Results          []struct{ Name string }
	}
	r := bulkRun(example)
	if r.Status != 200 || r.Decode(&sum) != nil || sum.Total != 1 || sum.Succeeded != 1 || sum.Results[0].Name != "node1" {
		t.Fatalf("documented example %s: %d %s", example, r.Status, r.Body)
	}
	// The form the docs used to give: a clear 404, not an empty success.
	r = bulkRun("Params.rack=Eq(r12)")
	if me := r.Error(); r.Status != 404 || me == nil || len(me.Messages) != 1 ||
		!strings.Contains(me.Messages[0], "no machine matches Params.rack=Eq(r12)") || !strings.Contains(me.Messages[0], "(rack=...)") {
		t.Fatalf("Params.rack filter: %d %s", r.Status, r.Body)
	}
	r = bulkRun("rack=Eq(r99)", "ipmi/bulk-allow-empty", true)
	if r.Status != 200 || r.Decode(&sum) != nil || sum.Total != 0 {
		t.Fatalf("allowed empty selection: %d %s", r.Status, r.Body)
	}
	if r := bulkRun("rack=Eq(r99)", "ipmi/bulk-allow-empty", "yes"); r.Status != 400 {
		t.Fatalf("non-boolean ipmi/bulk-allow-empty: %d %s", r.Status, r.Body)
	}
}

// TestConfigNeedsSecureParams: like DRP's plugin, refuse a server that does
// not hand out decrypted secure params.
func TestConfigNeedsSecureParams(t *testing.T) {
	old := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v3/info" {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"Code":404}`))
			return
		}
		_ = json.NewEncoder(w).Encode(models.Info{Features: []string{"api-v3"}})
	}))
	defer old.Close()
	pl := plugintest.StartApp(t, app(newPlugin(actions.Options{})), map[string]string{"RS_ENDPOINT": old.URL, "RS_TOKEN": "x"})
	r := pl.Config(t, map[string]any{})
	me := r.ConfigError()
	if r.Status != 500 || me == nil || !strings.Contains(strings.Join(me.Messages, " "), "secure-param-upgrade") {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}
}
