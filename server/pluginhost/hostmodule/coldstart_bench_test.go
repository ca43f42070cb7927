package hostmodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
	"github.com/provisionhq/provision/server/servertest"
)

// coldStartN is how many Plugin objects BenchmarkPluginColdStart creates
// at once (issue #14).
const coldStartN = 50

// BenchmarkPluginColdStart measures issue #14's cold start: 50 Plugin
// objects of the fake provider created at once through the REST API of a
// real in-process provisiond, timed until every one of them has answered
// an action ("pid" through POST /api/v3/system/actions/pid?plugin=<name>).
// The wait is event driven (the host's "configed" event, then one action
// per plugin), so no polling loads the two cores the plugins start on.
//
// Its floor, in the same run, is 50 parallel `define` runs of the same
// provider binary: a process start of that binary each, which every
// instance start must pay as well. "provisiond" runs the plugins in the
// sandbox as a provisiond does by default (the re-exec helper: Landlock,
// no_new_privs and, as root, the plugin user); "provisiond-nosandbox" is
// the same with --plugin-sandbox=false, to show what the sandbox costs.
//
//	go test -run '^$' -bench BenchmarkPluginColdStart -benchtime=3x ./server/pluginhost/hostmodule
func BenchmarkPluginColdStart(b *testing.B) {
	bin := testplugins.Path(b, "fake")
	b.Run("define", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := parallelDefine(bin, coldStartN); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/start")
	})
	envs := map[bool]*env{}
	envFor := func(sandboxed bool) *env {
		if e := envs[sandboxed]; e != nil {
			return e
		}
		// Started on the parent benchmark: the server outlives the
		// sub-benchmark's repeated runs and goes at the parent's end.
		e := startEnvConfig(b, "", "", map[string]string{"fake": "fake"}, func(c *config.Config) {
			c.PluginSandbox = sandboxed
			c.LogLevel = "warn"
		})
		envs[sandboxed] = e
		return e
	}
	for _, sandboxed := range []bool{true, false} {
		name := "provisiond"
		if !sandboxed {
			name = "provisiond-nosandbox"
		}
		b.Run(name, func(b *testing.B) {
			e := envFor(sandboxed)
			var tok models.UserToken
			if code, raw := e.do("GET", "/api/v3/users/rocketskates/token?ttl=3600", nil, &tok); code != 200 {
				b.Fatalf("token: %d %s", code, raw)
			}
			var creates time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				names := make([]string, coldStartN)
				for j := range names {
					names[j] = fmt.Sprintf("cold%d-%d", i, j)
				}
				b.StartTimer()
				c, err := e.coldStart(tok.Token, names)
				if err != nil {
					b.Fatal(err)
				}
				creates += c
				b.StopTimer()
				if err := e.deleteAll(tok.Token, names); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/start")
			b.ReportMetric(float64(creates.Milliseconds())/float64(b.N), "creates-ms/start")
		})
	}
}

// parallelDefine runs `<bin> define` n times at once, as the host's
// discovery would (stdout captured, checked to be JSON).
func parallelDefine(bin string, n int) error {
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command(bin, "define").Output()
			if err == nil && !json.Valid(out) {
				err = errors.New("define printed invalid JSON")
			}
			if err != nil {
				errs <- fmt.Errorf("define: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchClient is the env's client for benchmark calls: TLS as
// servertest's, at most coldStartN/2 connections (a client pool, not one
// connection per caller, which the server's per-address limit refuses).
func (e *env) benchClient() *http.Client {
	e.clientOnce.Do(func() {
		tr := servertest.HTTPClient().Transport.(*http.Transport).Clone()
		tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = coldStartN/2, coldStartN/2
		e.client = &http.Client{Transport: tr, Timeout: time.Minute}
	})
	return e.client
}

// apiCall sends one JSON request with a bearer token and returns its
// status and body.
func (e *env) apiCall(token, method, path string, body any) (int, []byte, error) {
	var rd *bytes.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(buf)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", servertest.Bearer(token))
	resp, err := e.benchClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), err
}

// waitEvents returns a func that waits (up to limit) until the host has
// published a plugins event of action for each of names. Subscribe before
// causing the events.
func (e *env) waitEvents(action string, names []string) func(limit time.Duration) error {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	sub := e.mod.s.Bus().Subscribe("bench-"+action, 4*len(names), func(ev *models.Event) bool {
		return ev.Type == "plugins" && ev.Action == action && want[ev.Key]
	})
	return func(limit time.Duration) error {
		defer sub.Close()
		seen := map[string]bool{}
		timer := time.NewTimer(limit)
		defer timer.Stop()
		for len(seen) < len(names) {
			select {
			case ev := <-sub.C():
				seen[ev.Key] = true
			case <-timer.C:
				return fmt.Errorf("%d of %d plugins %s within %s", len(seen), len(names), action, limit)
			}
		}
		return nil
	}
}

// coldStart creates the named Plugin objects at once and returns when
// each answers an action, with the time the creates alone took (until the
// last 201).
func (e *env) coldStart(token string, names []string) (time.Duration, error) {
	configured := e.waitEvents("configed", names)
	errs := make(chan error, 2*len(names))
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw, err := e.apiCall(token, "POST", "/api/v3/plugins", map[string]any{"Name": name, "Provider": "fake"})
			if err == nil && code != http.StatusCreated {
				err = fmt.Errorf("create %s: %d %s", name, code, raw)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	creates := time.Since(start)
	if err := configured(time.Minute); err != nil {
		return creates, err
	}
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw, err := e.apiCall(token, "POST", "/api/v3/system/actions/pid?plugin="+name, map[string]any{})
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("pid of %s: %d %s", name, code, raw)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []string
	for err := range errs {
		all = append(all, err.Error())
	}
	if len(all) > 0 {
		return creates, errors.New(strings.Join(all, "; "))
	}
	return creates, nil
}

// deleteAll deletes the named Plugin objects and waits until their
// processes have stopped.
func (e *env) deleteAll(token string, names []string) error {
	stopped := e.waitEvents("stopped", names)
	for _, name := range names {
		code, raw, err := e.apiCall(token, "DELETE", "/api/v3/plugins/"+name, nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("delete %s: %d %s", name, code, raw)
		}
	}
	return stopped(time.Minute)
}
