// Command fakeplugin is a DRP v4 plugin provider written with plain
// net/http (no SDK), used by the pluginhost tests. Its behaviour is chosen
// at link time with -ldflags "-X main.mode=<mode> -X main.version=<v>":
//
//	good      a working provider (actions, publish, plugin-apis, callbacks)
//	noready   listen never prints READY! and stays alive
//	failready listen prints Failed and exits
//	garbage   define prints something that is not JSON
//	badversion define reports PluginVersion 3
//	needparam like good, but requires the provider param fake/token
//	stubborn  like good, but ignores /stop and SIGTERM
//	badcontent like good, but its content changes bertie's Size to 5 and
//	          ends with a profile the server rejects (content rollback)
//	probe     like good, but define calls the API with its RS_TOKEN and
//	          reports the answers (and the token) as JSON in Documentation
//	hangdefine define never finishes
//	snoop     like good, but tries to read the server's secrets (from the
//	          base directory above RS_WEBROOT) and other processes' files
//	          in define (report in Documentation), unpack (report in
//	          snoop.json) and listen (the "snoop" action)
//	symlink   like good, but unpack leaves symlinks to /etc/shadow and
//	          to the server's token.key
//	chatty    like good, but listen prints 20000 lines on stdout and on
//	          stderr before READY!
//
// The machine action "sleep" waits params.seconds (default 24h) or until
// the file params["until-file"] exists, whichever comes first.
//
// In every mode the config param fake/fail-config makes /config fail:
// true answers 400, a number answers with that code (403: DRP's licence
// denial).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	mode    = "good"
	version = "v1"
	name    = "fake"
)

const content = `meta:
  Description: Fake plugin for tests
  DisplayName: Fake
sections:
  params:
    PFX/step:
      Name: PFX/step
      Schema:
        type: integer
    PFX/withdefault:
      Name: PFX/withdefault
      Schema:
        type: integer
        default: 7
    PFX/secret:
      Name: PFX/secret
      Secure: true
      Schema:
        type: string
  KIND:
    bertie:
      Id: bertie
      Type: KIND
      Size: SIZE
`

// badProfile is appended to the content by the badcontent mode: profiles
// sort after the other sections, so the server has stored some objects
// when it rejects this one.
const badProfile = `  profiles:
    NAME-broken:
      Name: NAME-broken
      Profiles: [no-such-profile]
`

// kind is the custom object type of this build: "fakes" for the provider
// named fake, "<name>s" otherwise, so variants can be loaded side by side.
func kind() string {
	if name == "fake" {
		return "fakes"
	}
	return name + "s"
}

type action struct {
	Model          string
	Command        string
	RequiredParams []string
	OptionalParams []string
}

// probeAPI calls the API with the define token and returns the status of
// each call (0 when the call failed) plus the token itself.
func probeAPI() map[string]any {
	out := map[string]any{"token": os.Getenv("RS_TOKEN")}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	call := func(method, path, body string) int {
		req, err := http.NewRequest(method, os.Getenv("RS_ENDPOINT")+path, strings.NewReader(body))
		if err != nil {
			return 0
		}
		req.Header.Set("Authorization", "Bearer "+os.Getenv("RS_TOKEN"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	out["info"] = call("GET", "/api/v3/info", "")
	out["getGlobal"] = call("GET", "/api/v3/profiles/global", "")
	out["createMachine"] = call("POST", "/api/v3/machines", `{"Name":"probe-made"}`)
	out["setGlobalParam"] = call("POST", "/api/v3/profiles/global/params/probe", `"x"`)
	out["mintToken"] = call("GET", "/api/v3/users/rocketskates/token", "")
	out["createUser"] = call("POST", "/api/v3/users", `{"Name":"probeuser"}`)
	return out
}

func define() {
	switch mode {
	case "garbage":
		fmt.Println("this is not json {")
		return
	case "hangdefine":
		select {}
	}
	pv := 4
	if mode == "badversion" {
		pv = 3
	}
	def := map[string]any{
		"Name":          name,
		"Version":       version,
		"PluginVersion": pv,
		"HasPublish":    true,
		"AvailableActions": []action{
			{Model: "machines", Command: "echo", RequiredParams: []string{"fake/required"}, OptionalParams: []string{"fake/step", "fake/withdefault", "fake/secret"}},
			{Model: "machines", Command: "sleep"},
			{Model: "machines", Command: "callback"},
			{Model: "machines", Command: "publish"},
			{Model: "machines", Command: "leave"},
			{Model: "machines", Command: "fail"},
			{Model: "", Command: "status"},
			{Model: "", Command: "crash"},
			{Model: "", Command: "pid"},
			{Model: "", Command: "config"},
			{Model: "", Command: "events"},
			{Model: "", Command: "version"},
			{Model: "", Command: "token"},
			{Model: "", Command: "env"},
			{Model: "", Command: "active"},
			{Model: kind(), Command: "measure", OptionalParams: []string{"fake/step"}},
		},
		"StoreObjects": map[string]any{
			kind(): map[string]any{"Size": map[string]any{"type": "integer", "isrequired": true}},
		},
	}
	size, body := "3", content
	if mode == "badcontent" {
		size, body = "5", content+badProfile
	}
	def["Content"] = strings.NewReplacer("KIND", kind(), "PFX/", name+"/", "SIZE", size, "NAME", name).Replace(body)
	if mode == "needparam" {
		def["RequiredParams"] = []string{"fake/token"}
	}
	if mode == "probe" {
		doc, _ := json.Marshal(probeAPI())
		def["Documentation"] = string(doc)
	}
	if mode == "snoop" {
		def["AvailableActions"] = append(def["AvailableActions"].([]action), action{Command: "snoop", OptionalParams: []string{"snoop/paths"}})
		doc, _ := json.Marshal(snoop(nil))
		def["Documentation"] = string(doc)
	}
	buf, _ := json.MarshalIndent(def, "", "  ")
	os.Stdout.Write(append(buf, '\n'))
}

func unpack(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(dir+"/testFile", []byte("ImaFile "+version), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	switch mode {
	case "snoop":
		buf, _ := json.Marshal(snoop(nil))
		if err := os.WriteFile(dir+"/snoop.json", buf, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "symlink":
		for link, target := range map[string]string{
			"shadow": "/etc/shadow",
			"key":    filepath.Join(filepath.Dir(os.Getenv("RS_WEBROOT")), "token.key"),
		} {
			if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

// secretFiles are the server's secrets, relative to its base directory.
var secretFiles = []string{"token.key", "secure-params.key", "server.key", "provision.db", "admin-password"}

// snoop tries to get at what a plugin must not: the server's secret files
// (by path, and through /proc/<server pid>/root), the server's
// environment and memory, /etc/shadow, and extra (other plugins' scratch
// directories and sockets). It returns, per path, "ok" (read, listed or
// connected: a leak) or the error, plus its uid and gid.
func snoop(extra []string) map[string]any {
	base := filepath.Dir(os.Getenv("RS_WEBROOT"))
	ppid := os.Getppid()
	tries := map[string]string{}
	try := func(path string) {
		fi, err := os.Lstat(path)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSocket != 0:
			var c net.Conn
			if c, err = net.Dial("unix", path); err == nil {
				c.Close()
			}
		case fi.IsDir():
			_, err = os.ReadDir(path)
		default:
			_, err = os.ReadFile(path)
		}
		if err != nil {
			tries[path] = err.Error()
		} else {
			tries[path] = "ok"
		}
	}
	for _, f := range secretFiles {
		try(filepath.Join(base, f))
		try(filepath.Join(fmt.Sprintf("/proc/%d/root", ppid), base, f))
	}
	try(base)
	try(fmt.Sprintf("/proc/%d/environ", ppid))
	try(fmt.Sprintf("/proc/%d/mem", ppid))
	try("/proc/1/environ")
	try("/etc/shadow")
	for _, p := range extra {
		try(p)
	}
	cwd, _ := os.Getwd()
	return map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "cwd": cwd, "base": base, "tries": tries}
}

type plugin struct {
	host   *http.Client
	mu     sync.Mutex
	config map[string]any
	events []map[string]any
	active int
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func drpErr(code int, msg string) map[string]any {
	return map[string]any{"Model": "plugin", "Key": name, "Type": "plugin", "Messages": []string{msg}, "Code": code}
}

func (p *plugin) toHost(path string, body any) (int, error) {
	buf, _ := json.Marshal(body)
	resp, err := p.host.Post("http://unix/api-server-plugin/v4"+path, "application/json", bytes.NewReader(buf))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *plugin) handle(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/v3/plugin-apis/") {
		p.pluginAPI(w, r)
		return
	}
	if r.Method != http.MethodPost {
		reply(w, 404, map[string]any{"Model": "", "Key": r.URL.Path, "Type": r.Method, "Messages": nil, "Code": 404})
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/api-plugin/v4/config":
		var params map[string]any
		json.Unmarshal(body, &params)
		code := 0
		switch v := params["fake/fail-config"].(type) {
		case bool:
			if v {
				code = 400
			}
		case float64:
			code = int(v)
		}
		if code != 0 {
			// DRP's library double-encodes config errors.
			inner, _ := json.Marshal(drpErr(code, "config rejected: fake/fail-config is set"))
			reply(w, code, map[string]any{"Model": "", "Key": "", "Type": "", "Messages": []string{string(inner)}, "Code": code})
			return
		}
		p.mu.Lock()
		p.config = params
		p.mu.Unlock()
		p.toHost("/log", map[string]any{"Level": "info", "Message": "configured", "Service": name, "Time": time.Now()})
		reply(w, 200, map[string]any{"Model": "", "Key": "", "Type": "", "Messages": nil, "Code": 200})
	case "/api-plugin/v4/stop":
		reply(w, 200, map[string]any{"Code": 200})
		if mode == "stubborn" {
			return // ignores /stop (and SIGTERM, see listen)
		}
		os.Exit(0)
	case "/api-plugin/v4/publish":
		p.mu.Lock()
		slow, _ := p.config["fake/slow-publish"].(float64)
		p.mu.Unlock()
		if slow > 0 {
			time.Sleep(time.Duration(slow * float64(time.Second)))
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		p.mu.Lock()
		if len(p.events) < 10000 {
			p.events = append(p.events, ev)
		}
		p.mu.Unlock()
		reply(w, 200, map[string]any{"Code": 200})
	case "/api-plugin/v4/action":
		var a struct {
			Model   map[string]any
			Plugin  string
			Command string
			Params  map[string]any
		}
		if err := json.Unmarshal(body, &a); err != nil {
			reply(w, 400, drpErr(400, err.Error()))
			return
		}
		p.action(w, r, a.Model, a.Plugin, a.Command, a.Params)
	default:
		reply(w, 404, map[string]any{"Model": "", "Key": r.URL.Path, "Type": r.Method, "Messages": nil, "Code": 404})
	}
}

func (p *plugin) action(w http.ResponseWriter, r *http.Request, model map[string]any, plugin, cmd string, params map[string]any) {
	switch cmd {
	case "echo":
		reply(w, 200, map[string]any{"Plugin": plugin, "Params": params, "Model": model})
	case "sleep":
		p.mu.Lock()
		p.active++
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.active--
			p.mu.Unlock()
		}()
		d := 24 * time.Hour
		if s, ok := params["seconds"].(float64); ok {
			d = time.Duration(s * float64(time.Second))
		}
		// "until-file" ends the sleep when that file exists, so a test
		// decides when in-flight actions finish.
		var until <-chan struct{}
		if f, ok := params["until-file"].(string); ok {
			until = waitForFile(r.Context(), f)
		}
		select {
		case <-until:
			reply(w, 200, "slept")
		case <-time.After(d):
			reply(w, 200, "slept")
		case <-r.Context().Done():
			// The host gave up (timeout, cancel): drop the connection.
			// Returning without writing would let net/http send an
			// implicit empty 200 that a racing caller could take as
			// success.
			panic(http.ErrAbortHandler)
		}
	case "callback":
		// Read the machine back through the REST API with RS_TOKEN, as
		// DRP's incrementer does.
		key, _ := model["Uuid"].(string)
		req, _ := http.NewRequest("GET", os.Getenv("RS_ENDPOINT")+"/api/v3/machines/"+key+"/params/fake/step", nil)
		req.Header.Set("Authorization", "Bearer "+os.Getenv("RS_TOKEN"))
		// Like DRP's client, accept the server's self-signed certificate.
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := cl.Do(req)
		if err != nil {
			reply(w, 502, drpErr(502, err.Error()))
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			reply(w, resp.StatusCode, drpErr(resp.StatusCode, "callback: "+string(b)))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	case "publish":
		code, err := p.toHost("/publish", map[string]any{"Type": "fake", "Action": "ping", "Key": plugin, "Object": params})
		if err != nil || code != 200 {
			reply(w, 500, drpErr(500, fmt.Sprintf("publish: %d %v", code, err)))
			return
		}
		reply(w, 200, "published")
	case "leave":
		// params "code" picks the code of the leaving error (default 400;
		// 403 is DRP's licence denial).
		code := 400
		if c, ok := params["code"].(float64); ok {
			code = int(c)
		}
		reply(w, 200, "leaving")
		go p.toHost("/leaving", drpErr(code, "asked to leave"))
	case "fail":
		reply(w, 409, drpErr(409, "fail on purpose"))
	case "status":
		reply(w, 200, "Running")
	case "crash":
		os.Exit(3)
	case "pid":
		reply(w, 200, os.Getpid())
	case "version":
		reply(w, 200, version)
	case "token":
		reply(w, 200, os.Getenv("RS_TOKEN"))
	case "env":
		name, _ := params["name"].(string)
		v, ok := os.LookupEnv(name)
		reply(w, 200, map[string]any{"set": ok, "value": v})
	case "active":
		p.mu.Lock()
		defer p.mu.Unlock()
		reply(w, 200, p.active)
	case "config":
		p.mu.Lock()
		defer p.mu.Unlock()
		reply(w, 200, p.config)
	case "events":
		p.mu.Lock()
		defer p.mu.Unlock()
		reply(w, 200, p.events)
	case "snoop":
		var extra []string
		if list, ok := params["snoop/paths"].([]any); ok {
			for _, v := range list {
				if p, ok := v.(string); ok {
					extra = append(extra, p)
				}
			}
		}
		reply(w, 200, snoop(extra))
	case "measure":
		reply(w, 200, map[string]any{"Id": model["Id"], "Size": model["Size"], "step": params["fake/step"]})
	default:
		reply(w, 404, drpErr(404, "Unknown command: "+cmd+"\n"))
	}
}

// waitForFile returns a channel closed once path exists (checked every
// 10ms) or never when ctx ends first.
func waitForFile(ctx context.Context, path string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if _, err := os.Stat(path); err == nil {
				close(ch)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

func (p *plugin) pluginAPI(w http.ResponseWriter, r *http.Request) {
	// Error answers, for the proxy's handling of them.
	switch {
	case strings.HasSuffix(r.URL.Path, "/missing"):
		// What DRP's plugin library answers for an unknown path.
		reply(w, 404, map[string]any{"Model": "", "Key": r.URL.Path, "Type": r.Method, "Messages": nil, "Code": 404})
		return
	case strings.HasSuffix(r.URL.Path, "/no-messages"):
		reply(w, 500, map[string]any{"Model": "plugin", "Key": name, "Type": r.Method, "Messages": []string{}, "Code": 500})
		return
	case strings.HasSuffix(r.URL.Path, "/with-message"):
		reply(w, 409, drpErr(409, "conflict on purpose"))
		return
	case strings.HasSuffix(r.URL.Path, "/not-an-error"):
		reply(w, 400, map[string]any{"Code": 400, "Messages": nil, "Detail": "a body of the plugin's own shape"})
		return
	}
	if strings.HasSuffix(r.URL.Path, "/stream") {
		// Echo the request body back chunk by chunk as it arrives.
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		fl.Flush()
		buf := make([]byte, 1024)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				fl.Flush()
			}
			if err != nil {
				return
			}
		}
	}
	body, _ := io.ReadAll(r.Body)
	reply(w, 200, map[string]any{"Path": r.URL.Path, "Method": r.Method, "Query": r.URL.RawQuery,
		"Body": string(body), "Auth": r.Header.Get("Authorization")})
}

func listen(to, from string) {
	p := &plugin{host: &http.Client{Transport: &http.Transport{
		Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", from) },
	}, Timeout: 10 * time.Second}}
	if mode == "noready" {
		fmt.Println("starting up, but I will never be ready")
		select {}
	}
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	}
	if mode == "failready" {
		fmt.Println("Failed")
		os.Exit(1)
	}
	if mode == "chatty" {
		line := strings.Repeat("x", 100)
		for i := 0; i < 20000; i++ {
			fmt.Printf("start-up chatter %d %s\n", i, line)
			fmt.Fprintf(os.Stderr, "start-up noise %d %s\n", i, line)
		}
	}
	os.Remove(to)
	ln, err := net.Listen("unix", to)
	if err != nil {
		fmt.Println("Failed")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "fake plugin listening")
	fmt.Println("READY!")
	http.Serve(ln, http.HandlerFunc(p.handle))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fakeplugin define|unpack <dir>|listen <to> <from>")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "define":
		define()
	case "unpack":
		if len(os.Args) != 3 {
			os.Exit(2)
		}
		unpack(os.Args[2])
	case "listen":
		if len(os.Args) != 4 {
			fmt.Println("Failed")
			os.Exit(1)
		}
		listen(os.Args[2], os.Args[3])
	default:
		os.Exit(2)
	}
}
