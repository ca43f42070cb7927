// Package e2etest runs a plugin provider end to end under a real,
// in-process provisiond with the plugin host: it builds the provider,
// uploads it through the REST API and gives the test a client, a context
// and a deadline-bounded Wait that prints the server's logs on failure.
//
//	env := e2etest.Start(t, e2etest.Options{Provider: "slack"})
//	env.Client.Create(env.Ctx, "plugins", &models.Plugin{...}, nil)
//	env.Wait("the webhook post", func() bool { return len(wh.Bodies()) > 0 })
//
// Plugin processes inherit the test process's environment (minus RS_*), so
// a test sets anything a plugin needs from its environment (SSL_CERT_FILE,
// PATH) with t.Setenv before calling Start.
package e2etest

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/pluginhost/hostmodule"
	"github.com/provisionhq/provision/server/servertest"
)

// DefaultWait is how long Wait polls before failing the test. It only
// bounds failures: a passing test returns as soon as its condition holds.
const DefaultWait = 30 * time.Second

// Options configure Start.
type Options struct {
	// Provider is the name the binary is uploaded under (required).
	Provider string
	// Package is the Go package of the provider's main (default ".").
	Package string
	// Timeout bounds the whole test's context (default 2m).
	Timeout time.Duration
}

// Env is a running provisiond with the provider uploaded.
type Env struct {
	t testing.TB
	// Server is the in-process provisiond.
	Server *servertest.Server
	// Client talks to it as the admin user.
	Client *client.Client
	// Ctx ends with the test or after Options.Timeout.
	Ctx context.Context
}

// Start builds the provider, starts provisiond with the plugin host and
// uploads the provider. The test is skipped with -short.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin and runs it under provisiond")
	}
	if opts.Provider == "" {
		t.Fatal("e2etest: Options.Provider is required")
	}
	if opts.Package == "" {
		opts.Package = "."
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	bin := plugintest.Build(t, opts.Package)
	ts := servertest.Start(t, servertest.Options{Modules: []server.Module{hostmodule.New(hostmodule.Options{})}})
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	t.Cleanup(cancel)
	e := &Env{t: t, Server: ts, Client: ts.Client(t), Ctx: ctx}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatalf("e2etest: open provider: %v", err)
	}
	defer f.Close()
	if _, err := e.Client.UploadPluginProvider(ctx, opts.Provider, f); err != nil {
		t.Fatalf("e2etest: upload %s: %v\nserver logs:\n%s", opts.Provider, err, ts.Logs())
	}
	return e
}

// Wait polls cond every 20 ms until it holds, failing the test with the
// server's logs when DefaultWait passes first.
func (e *Env) Wait(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(DefaultWait)
	for !cond() {
		if time.Now().After(deadline) || e.Ctx.Err() != nil {
			e.t.Fatalf("timed out waiting for %s; server logs:\n%s", what, e.Server.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitParam waits until the provider's content pack has defined the param
// called name (content is loaded asynchronously after the upload).
func (e *Env) WaitParam(name string) *models.Param {
	e.t.Helper()
	var p models.Param
	e.Wait("param "+name+" from the content pack", func() bool { return e.Client.Get(e.Ctx, "params", name, &p) == nil })
	return &p
}

// WaitAction waits until cmd is among the actions available on
// prefix/key ("system" and "" for system actions), i.e. until a plugin
// instance offering it is configured. The list only has actions whose
// required params the object already provides.
func (e *Env) WaitAction(prefix, key, cmd string) {
	e.t.Helper()
	e.Wait(cmd+" to be available on "+prefix+"/"+key, func() bool {
		acts, err := e.Client.Actions(e.Ctx, prefix, key, "")
		return err == nil && slices.ContainsFunc(acts, func(a models.AvailableAction) bool { return a.Command == cmd })
	})
}

// Watch opens an event stream registered for filters
// (<type>.<action>.<key>); it is closed when the test ends.
func (e *Env) Watch(filters ...string) *client.EventStream {
	e.t.Helper()
	es, err := e.Client.Events(e.Ctx)
	if err != nil {
		e.t.Fatalf("e2etest: events: %v", err)
	}
	e.t.Cleanup(func() { _ = es.Close() })
	if err := es.Register(e.Ctx, filters...); err != nil {
		e.t.Fatalf("e2etest: register %v: %v", filters, err)
	}
	return es
}

// NextEvent reads es until an event of typ and action for key arrives,
// failing the test after DefaultWait.
func (e *Env) NextEvent(es *client.EventStream, typ, action, key string) models.Event {
	e.t.Helper()
	timer := time.NewTimer(DefaultWait)
	defer timer.Stop()
	for {
		select {
		case ev := <-es.C():
			if ev.Type == typ && ev.Action == action && ev.Key == key {
				return ev
			}
		case <-es.Done():
			e.t.Fatalf("e2etest: event stream closed waiting for %s.%s.%s", typ, action, key)
		case <-timer.C:
			e.t.Fatalf("no %s.%s.%s event; server logs:\n%s", typ, action, key, e.Logs())
		case <-e.Ctx.Done():
			e.t.Fatalf("no %s.%s.%s event before the test's deadline; server logs:\n%s", typ, action, key, e.Logs())
		}
	}
}

// CreatePlugin creates the Plugin object and waits for the host's
// plugins.configed event, i.e. until the instance answered /config (an
// EventSelector plugin has registered its event filters by then).
func (e *Env) CreatePlugin(pl *models.Plugin) {
	e.t.Helper()
	es := e.Watch("plugins.configed." + pl.Name)
	defer es.Close()
	if err := e.Client.Create(e.Ctx, "plugins", pl, nil); err != nil {
		e.t.Fatalf("e2etest: create plugin %s: %v", pl.Name, err)
	}
	e.NextEvent(es, "plugins", "configed", pl.Name)
}

// Logs returns everything provisiond (and the plugins through it) logged.
func (e *Env) Logs() string { return e.Server.Logs() }
