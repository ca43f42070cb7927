package hostmodule

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/content"
)

// repoDir returns a directory of this repository.
func repoDir(t *testing.T, rel string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", rel)
}

// TestPluginContentPacksLoadCompletely loads the content packs of the
// ipmi, packet-ipmi and virtualbox-ipmi providers as the host does after
// define (YAML bundle → content layer): every section has an object type,
// so nothing is skipped, and the stages, tasks, templates and workflows
// show up ReadOnly with Bundle <provider>, in DRP's shape.
func TestPluginContentPacksLoadCompletely(t *testing.T) {
	e := startEnv(t, "", "", nil)
	packs := map[string]string{
		"ipmi":            "plugins/ipmi/content",
		"packet-ipmi":     "plugins/packet-ipmi/content",
		"virtualbox-ipmi": "plugins/virtualbox-ipmi/vboxplugin/content",
	}
	counts := map[string]int{}
	for provider, dir := range packs {
		c, err := content.FromDir(repoDir(t, dir))
		if err != nil {
			t.Fatalf("%s content: %v", provider, err)
		}
		// Through YAML, as providers ship it in define's Content.
		buf, err := content.Marshal(c, ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if c, err = content.Unmarshal(buf, ".yaml"); err != nil {
			t.Fatal(err)
		}
		for prefix, objs := range c.Sections {
			counts[provider+"/"+prefix] = len(objs)
		}
		if err := e.mod.AddPluginLayer(context.Background(), provider, c, false); err != nil {
			t.Fatalf("load %s content: %v", provider, err)
		}
	}
	if logs := e.ts.Logs(); strings.Contains(logs, "plugin content section skipped") {
		t.Fatalf("a content section was skipped:\n%s", logs)
	}
	for _, want := range []string{"ipmi/stages", "ipmi/tasks", "ipmi/templates", "packet-ipmi/workflows", "virtualbox-ipmi/stages"} {
		if counts[want] == 0 {
			t.Fatalf("content pack has no %s; counts %v", want, counts)
		}
	}
	// Every object of every pack is stored, ReadOnly, in its bundle.
	for key, n := range counts {
		provider, prefix, _ := strings.Cut(key, "/")
		var got []map[string]any
		if code, raw := e.do("GET", "/api/v3/"+prefix+"?Bundle="+provider+"&ReadOnly=true", nil, &got); code != 200 || len(got) != n {
			t.Errorf("%s: %d objects stored ReadOnly with Bundle %s (%d %.300s), want %d", prefix, len(got), provider, code, raw, n)
		}
	}

	var st models.Stage
	if code, raw := e.do("GET", "/api/v3/stages/ipmi-configure", nil, &st); code != 200 || !st.ReadOnly || st.Bundle != "ipmi" ||
		len(st.Tasks) != 2 || st.Tasks[0] != "ipmi-configure" || !st.RunnerWait || st.Meta["icon"] != "heartbeat" {
		t.Fatalf("stage: %d %s", code, raw)
	}
	var task models.Task
	if code, raw := e.do("GET", "/api/v3/tasks/ipmi-configure", nil, &task); code != 200 || !task.ReadOnly || task.Bundle != "ipmi" ||
		len(task.Templates) != 1 || task.Templates[0].ID != "ipmi-configure.sh.tmpl" || len(task.Prerequisites) != 1 || len(task.RequiredParams) != 1 {
		t.Fatalf("task: %d %s", code, raw)
	}
	var tmpl models.Template
	if code, raw := e.do("GET", "/api/v3/templates/ipmi-configure.sh.tmpl", nil, &tmpl); code != 200 || !tmpl.ReadOnly || tmpl.Bundle != "ipmi" || !strings.Contains(tmpl.Contents, "ipmitool") {
		t.Fatalf("template: %d %.300s", code, raw)
	}
	var wf models.Workflow
	if code, raw := e.do("GET", "/api/v3/workflows/discover-packet", nil, &wf); code != 200 || wf.Bundle != "packet-ipmi" || len(wf.Stages) != 3 {
		t.Fatalf("workflow: %d %s", code, raw)
	}
	if code, raw := e.do("DELETE", "/api/v3/tasks/ipmi-configure", nil, nil); code != 403 {
		t.Fatalf("delete of a content task: %d %s", code, raw)
	}
	// The kinds also serve user objects with DRP's syntax checks.
	if code, raw := e.do("POST", "/api/v3/stages", map[string]any{"Name": "mine", "Tasks": []string{"action:ipmi:poweron", "bad:x"}}, nil); code != 422 || !strings.Contains(string(raw), "Invalid Task: bad:x") {
		t.Fatalf("bad stage: %d %s", code, raw)
	}
	if code, raw := e.do("POST", "/api/v3/bootenvs", map[string]any{"Name": "local", "OnlyUnknown": false}, nil); code != 201 {
		t.Fatalf("bootenv: %d %s", code, raw)
	}
	// Removing a layer removes all of it.
	if err := e.mod.RemovePluginLayer(context.Background(), "ipmi"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"stages", "tasks", "templates", "params"} {
		if code, raw := e.do("GET", "/api/v3/"+p+"?Bundle=ipmi", nil, nil); code != 200 || string(raw) != "[]" {
			t.Errorf("%s left after removing the layer: %d %.200s", p, code, raw)
		}
	}
}
