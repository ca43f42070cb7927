package contentlayer

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/events"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/store"
)

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a real object service on a real bbolt file, with the kinds a
// content layer touches here (params, profiles).
type env struct {
	t    *testing.T
	objs *objects.Service
	logs *logBuf
	l    *Loader
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "test.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	keys, err := secrets.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	objs, err := objects.New(objects.Options{Store: st, Bus: events.NewBus(events.Options{Logger: log}), Keys: keys, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []objects.Kind{objects.ProfilesKind(), objects.ParamsKind(objs)} {
		if err := objs.Register(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, objs: objs, logs: logs, l: New(objs, "system", log)}
}

// bundle builds content with params (name → description) and profiles
// (name → profiles it includes).
func bundle(name string, params map[string]string, profiles map[string][]string) *models.Content {
	c := &models.Content{Meta: models.ContentMetaData{Name: name}, Sections: map[string]map[string]any{}}
	if len(params) > 0 {
		c.Sections["params"] = map[string]any{}
		for n, d := range params {
			c.Sections["params"][n] = map[string]any{"Name": n, "Description": d, "Schema": map[string]any{"type": "string"}}
		}
	}
	if len(profiles) > 0 {
		c.Sections["profiles"] = map[string]any{}
		for n, ps := range profiles {
			c.Sections["profiles"][n] = map[string]any{"Name": n, "Profiles": ps}
		}
	}
	return c
}

// state lists "prefix/key=Description|Bundle|ReadOnly" for every param and
// profile, sorted, to compare whole states.
func (e *env) state() []string {
	e.t.Helper()
	var out []string
	for _, prefix := range []string{"params", "profiles"} {
		list, err := e.objs.ListObjects(context.Background(), prefix, objects.All())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, o := range list {
			var f struct {
				Description string
				Bundle      string
				ReadOnly    bool
			}
			if err := models.Remarshal(o, &f); err != nil {
				e.t.Fatal(err)
			}
			ro := "rw"
			if f.ReadOnly {
				ro = "ro"
			}
			out = append(out, prefix+"/"+o.Key()+"="+f.Description+"|"+f.Bundle+"|"+ro)
		}
	}
	return out
}

func (e *env) wantState(what string, want ...string) {
	e.t.Helper()
	if got := e.state(); !reflect.DeepEqual(got, want) {
		e.t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func (e *env) noErrorLogs() {
	e.t.Helper()
	if logs := e.logs.String(); strings.Contains(logs, "level=ERROR") {
		e.t.Fatalf("ERROR logged:\n%s", logs)
	}
}

func TestLoadMarksObjectsAndRemoveDeletesThem(t *testing.T) {
	e := newEnv(t)
	if err := e.l.Add(t.Context(), "contents", "b1", bundle("b1", map[string]string{"b1/a": "A", "b1/b": "B"}, map[string][]string{"p1": nil}), RefuseWritable); err != nil {
		t.Fatal(err)
	}
	e.wantState("after load", "params/b1/a=A|b1|ro", "params/b1/b=B|b1|ro", "profiles/p1=|b1|ro")
	// The API (no AllowReadOnly) cannot change a layer object.
	_, err := e.objs.Delete(t.Context(), "user", "params", "b1/a")
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusForbidden || !strings.Contains(me.Error(), "content bundle b1") {
		t.Fatalf("delete of a layer object: %v", err)
	}
	e.l.Remove(t.Context(), "b1")
	e.wantState("after remove")
	e.l.Remove(t.Context(), "no-such-bundle") // not an error
	e.noErrorLogs()
}

func TestReplaceDropsWhatTheNewVersionLacks(t *testing.T) {
	e := newEnv(t)
	if err := e.l.Add(t.Context(), "contents", "b1", bundle("b1", map[string]string{"b1/a": "A1", "b1/b": "B1"}, nil), RefuseWritable); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Add(t.Context(), "contents", "b1", bundle("b1", map[string]string{"b1/b": "B2", "b1/c": "C2"}, nil), RefuseWritable); err != nil {
		t.Fatal(err)
	}
	e.wantState("after replace", "params/b1/b=B2|b1|ro", "params/b1/c=C2|b1|ro")
	// Another layer's object is never taken over.
	err := e.l.Add(t.Context(), "contents", "b2", bundle("b2", map[string]string{"b1/c": "stolen"}, nil), ReplaceWritable)
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusConflict || !strings.Contains(me.Error(), "already belongs to content bundle b1") {
		t.Fatalf("taking over another layer's object: %v", err)
	}
	e.wantState("after the refused takeover", "params/b1/b=B2|b1|ro", "params/b1/c=C2|b1|ro")
	e.noErrorLogs()
}

func TestRejectedObjectRollsBackTheWholeLayer(t *testing.T) {
	e := newEnv(t)
	if err := e.l.Add(t.Context(), "contents", "b1", bundle("b1", map[string]string{"b1/a": "A1"}, nil), RefuseWritable); err != nil {
		t.Fatal(err)
	}
	before := e.state()
	// Params sort before profiles: b1/a is replaced and b1/new created
	// before the broken profile is refused.
	bad := bundle("b1", map[string]string{"b1/a": "A2", "b1/new": "N"}, map[string][]string{"broken": {"no-such-profile"}})
	err := e.l.Add(t.Context(), "contents", "b1", bad, RefuseWritable)
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusUnprocessableEntity || me.Model != "contents" || me.Key != "b1" ||
		!strings.Contains(me.Error(), "profiles/broken") {
		t.Fatalf("rejected layer: %v", err)
	}
	e.wantState("after the rollback", before...)
	e.noErrorLogs()
}

// TestRollbackAfterCancel: the caller's context ends part-way (SIGTERM
// during discovery). The rollback must still run to completion, so the
// layer is back as it was and nothing is logged as an ERROR.
func TestRollbackAfterCancel(t *testing.T) {
	e := newEnv(t)
	if err := e.l.Add(t.Context(), "contents", "b1", bundle("b1", map[string]string{"b1/a": "A1"}, nil), RefuseWritable); err != nil {
		t.Fatal(err)
	}
	before := e.state()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var changes []string
	e.objs.OnChange("params", func(_ context.Context, c objects.Change) {
		what := "delete "
		if c.New != nil {
			var p models.Param
			_ = models.Remarshal(c.New, &p)
			what = "save " + p.Description + " "
		}
		if changes = append(changes, what+c.Key); len(changes) == 2 {
			cancel() // after b1/a and b1/b are saved, before b1/c
		}
	})
	err := e.l.Add(ctx, "contents", "b1", bundle("b1", map[string]string{"b1/a": "A2", "b1/b": "B2", "b1/c": "C2"}, nil), RefuseWritable)
	if err == nil || !strings.Contains(err.Error(), "b1/c") {
		t.Fatalf("Add after cancel: %v", err)
	}
	// Saved in key order, then undone newest first.
	if want := []string{"save A2 b1/a", "save B2 b1/b", "delete b1/b", "save A1 b1/a"}; !reflect.DeepEqual(changes, want) {
		t.Fatalf("changes %q, want %q", changes, want)
	}
	e.wantState("after a rollback with the caller's context ended", before...)
	e.noErrorLogs()
}

func TestWritableObjectsOfTheSameName(t *testing.T) {
	e := newEnv(t)
	user := &models.Param{Name: "b1/a", Description: "mine"}
	if _, err := e.objs.Create(t.Context(), "user", "params", user); err != nil {
		t.Fatal(err)
	}
	c := bundle("b1", map[string]string{"b1/a": "A", "b1/b": "B"}, nil)

	// Refused by default: nothing stored, the message says how to proceed.
	err := e.l.Add(t.Context(), "contents", "b1", c, RefuseWritable)
	var me *models.Error
	if !errors.As(err, &me) || me.Code != http.StatusConflict || !strings.Contains(me.Error(), "replaceWritable=true") {
		t.Fatalf("clash refused: %v", err)
	}
	e.wantState("after the refused clash", "params/b1/a=mine||rw")

	// KeepWritable: the user's object wins, the rest of the layer loads.
	if err := e.l.Add(t.Context(), "contents", "b1", c, KeepWritable); err != nil {
		t.Fatal(err)
	}
	e.wantState("keep writable", "params/b1/a=mine||rw", "params/b1/b=B|b1|ro")
	// Reloading in that mode keeps it so, and removing the layer leaves
	// the user's object alone.
	if err := e.l.Add(t.Context(), "contents", "b1", c, KeepWritable); err != nil {
		t.Fatal(err)
	}
	e.wantState("keep writable again", "params/b1/a=mine||rw", "params/b1/b=B|b1|ro")
	e.l.Remove(t.Context(), "b1")
	e.wantState("layer removed", "params/b1/a=mine||rw")

	// ReplaceWritable: the layer's object replaces the user's.
	if err := e.l.Add(t.Context(), "contents", "b1", c, ReplaceWritable); err != nil {
		t.Fatal(err)
	}
	e.wantState("replace writable", "params/b1/a=A|b1|ro", "params/b1/b=B|b1|ro")
	e.noErrorLogs()
}
