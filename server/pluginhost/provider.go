package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/schema"
)

// SupportedPluginVersion is the only plugin protocol version DRP v4 and
// provisiond speak.
const SupportedPluginVersion = 4

// maxDefineOutput bounds what `define` may print (content bundles can be
// large, but not unbounded).
const maxDefineOutput = 64 << 20

// provider is one defined provider executable.
type provider struct {
	def     *models.PluginProvider // filled; Content kept for the layer
	content *models.Content
	path    string
	file    string // file name in PluginRoot
	sha256  string
	size    int64
	kinds   map[string]*schema.Validator
	indexes map[string]map[string]models.Index // per kind, from its schema
	errs    []string                           // set on broken entries (define failed)
	loaded  time.Time
}

// view is the API form of p (without Content).
func (p *provider) view() *models.PluginProviderInfo {
	out := &models.PluginProviderInfo{Sha256Sum: p.sha256, Errors: append([]string{}, p.errs...)}
	if p.def != nil {
		cp := *p.def
		cp.Content = ""
		out.PluginProvider = cp
	} else {
		out.PluginProvider = models.PluginProvider{Name: p.file}
		out.Fill()
	}
	return out
}

// hasAction reports the provider's action for (model, command).
func (p *provider) action(model, cmd string) (models.AvailableAction, bool) {
	if p == nil || p.def == nil {
		return models.AvailableAction{}, false
	}
	for _, a := range p.def.AvailableActions {
		if a.Model == model && a.Command == cmd {
			return a, true
		}
	}
	return models.AvailableAction{}, false
}

// providerEnv returns the environment of provider processes: the server's
// environment without any RS_* variable (they may hold the server's own
// secrets, e.g. RS_ADMIN_PASSWORD), plus the §1.2 variables.
func (h *Host) providerEnv(token string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"RS_ENDPOINT="+h.cfg.APIURL,
		"RS_TOKEN="+token,
		"RS_FILESERVER="+h.cfg.FileURL,
		"RS_WEBROOT="+h.cfg.FileRoot,
	)
}

// limitedBuffer keeps at most max bytes and remembers that it overflowed.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

// Write implements io.Writer, dropping what does not fit.
func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room < len(p) {
		l.overflow = true
		if room > 0 {
			l.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return l.buf.Write(p)
}

// newScratch makes a fresh private working directory for one define or
// unpack run, owned by the plugin user.
func (h *Host) newScratch(pattern string) (string, error) {
	dir, err := os.MkdirTemp(h.cfg.ScratchRoot, pattern)
	if err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	if err := h.sb.own(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	return dir, nil
}

// runTool runs `<path> args...` in scratch ("" = a fresh one, removed
// afterwards) with the provider environment, a timeout, its own process
// group (so a timeout kills grandchildren too), the sandbox (confined to
// scratch) and bounded output capture.
func (h *Host) runTool(ctx context.Context, path, scratch string, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DefineTimeout)
	defer cancel()
	base := filepath.Base(path)
	// define gets a short-lived read-only token (DRP: claim *,get,*), so
	// a Validator can check licences etc. without being able to change
	// anything: it expires a minute after the define time limit, is
	// revoked as soon as define returns, and like every process token it
	// can never mint tokens or change users (server/auth).
	token, revoke, err := h.deps.Tokens.MintToken(ctx, "plugin-provider:"+base,
		[]models.Claim{{Scope: "*", Action: "get", Specific: "*"}}, h.cfg.DefineTimeout+time.Minute)
	if err != nil {
		return nil, nil, fmt.Errorf("mint define token: %w", err)
	}
	defer revoke()
	if scratch == "" {
		if scratch, err = h.newScratch("define-"); err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(scratch)
	}
	var out, errOut limitedBuffer
	out.max, errOut.max = maxDefineOutput, 64<<10
	for attempt := 0; ; attempt++ {
		out.buf.Reset()
		errOut.buf.Reset()
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = h.providerEnv(token)
		cmd.Dir = scratch
		cmd.Stdout, cmd.Stderr = &out, &errOut
		setProcAttrs(cmd)
		cmd.Cancel = func() error { return killGroup(cmd, true) }
		cmd.WaitDelay = 2 * time.Second
		var enforced string
		if enforced, err = h.sb.confine(cmd, []string{scratch}, nil); err != nil {
			return nil, nil, fmt.Errorf("plugin sandbox: %w", err)
		}
		if attempt == 0 {
			h.log.Debug("plugin sandbox", "provider", base, "command", args[0], "enforced", enforced)
		}
		err = cmd.Run()
		// Under the sandbox the exec happens in the helper, which
		// reports a busy text file on stderr.
		busy := (err != nil && isTextBusy(err)) || (h.sb.on && err != nil && bytes.Contains(errOut.buf.Bytes(), []byte(syscall.ETXTBSY.Error())))
		if busy && attempt < 20 && ctx.Err() == nil {
			// A freshly written executable can still be open for
			// writing in a child forked concurrently (golang/go#22315);
			// that lasts until the child execs, so retry shortly.
			time.Sleep(25 * time.Millisecond)
			continue
		}
		break
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return out.buf.Bytes(), errOut.buf.Bytes(), fmt.Errorf("timed out after %s", h.cfg.DefineTimeout)
	}
	if err != nil {
		return out.buf.Bytes(), errOut.buf.Bytes(), fmt.Errorf("%w%s", err, stderrSuffix(errOut.buf.Bytes()))
	}
	if out.overflow {
		return nil, nil, fmt.Errorf("output exceeds %d bytes", maxDefineOutput)
	}
	return out.buf.Bytes(), errOut.buf.Bytes(), nil
}

func stderrSuffix(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return ": " + s
}

// define runs `<path> define` and parses and checks its output. Unlike DRP
// (which reads combined stdout+stderr) only stdout is parsed, so a
// provider that logs to stderr still works; stderr goes to the log.
func (h *Host) define(ctx context.Context, path string) (*provider, error) {
	stdout, stderr, err := h.runTool(ctx, path, "", "define")
	if len(bytes.TrimSpace(stderr)) > 0 {
		h.log.Info("define stderr", "provider", filepath.Base(path), "output", strings.TrimSpace(string(stderr)))
	}
	if err != nil {
		return nil, fmt.Errorf("define failed: %w", err)
	}
	def := &models.PluginProvider{}
	dec := json.NewDecoder(bytes.NewReader(stdout))
	if err := dec.Decode(def); err != nil {
		snippet := strings.TrimSpace(string(stdout))
		if len(snippet) > 200 {
			snippet = snippet[:200] + "..."
		}
		return nil, fmt.Errorf("define printed invalid JSON (%v): %q", err, snippet)
	}
	if dec.More() {
		return nil, errors.New("define printed more than one JSON document")
	}
	p, err := h.checkDefinition(def)
	if err != nil {
		return nil, fmt.Errorf("bad plugin: %w", err)
	}
	p.path = path
	p.file = filepath.Base(path)
	return p, nil
}

// checkDefinition validates a define answer and derives the provider's
// content layer and kind validators.
func (h *Host) checkDefinition(def *models.PluginProvider) (*provider, error) {
	if def.PluginVersion != SupportedPluginVersion {
		return nil, fmt.Errorf("unsupported PluginVersion %d, need %d", def.PluginVersion, SupportedPluginVersion)
	}
	if !models.NameRE.MatchString(def.Name) {
		return nil, fmt.Errorf("invalid provider Name %q", def.Name)
	}
	def.Fill()
	seen := map[string]bool{}
	for i := range def.AvailableActions {
		a := &def.AvailableActions[i]
		a.Provider = def.Name
		if a.Command == "" {
			return nil, fmt.Errorf("action %d has no Command", i)
		}
		if seen[a.Model+"\x00"+a.Command] {
			return nil, fmt.Errorf("action %s on %q declared twice", a.Command, a.Model)
		}
		seen[a.Model+"\x00"+a.Command] = true
		for _, pn := range append(append([]string{}, a.RequiredParams...), a.OptionalParams...) {
			if !models.ParamNameRE.MatchString(pn) {
				return nil, fmt.Errorf("action %s: invalid param name %q", a.Command, pn)
			}
		}
	}
	for _, pn := range append(append([]string{}, def.RequiredParams...), def.OptionalParams...) {
		if !models.ParamNameRE.MatchString(pn) {
			return nil, fmt.Errorf("invalid param name %q", pn)
		}
	}
	p := &provider{def: def, kinds: map[string]*schema.Validator{}, indexes: map[string]map[string]models.Index{}, loaded: time.Now()}
	for prefix, doc := range def.StoreObjects {
		if !models.NameRE.MatchString(prefix) {
			return nil, fmt.Errorf("invalid StoreObjects prefix %q", prefix)
		}
		v, err := schema.CompileStoreObject(doc)
		if err != nil {
			return nil, fmt.Errorf("StoreObjects %s: %w", prefix, err)
		}
		p.kinds[prefix] = v
		p.indexes[prefix] = storeIndexes(doc)
	}
	content, err := buildContent(def)
	if err != nil {
		return nil, fmt.Errorf("bad store: %w", err)
	}
	p.content = content
	return p, nil
}

// deniedContentSection says why a provider's content bundle may not carry
// section prefix (ok false when it may). Plugins are untrusted code, and
// content layers are written by the server itself (no caller's rights
// apply), so a provider that shipped a user with a password hash it chose
// would hold that user's rights beyond its own revocable token. DRP lets
// plugin content carry any section; we refuse these and say so in the
// provider's Errors.
func deniedContentSection(prefix string) (why string, denied bool) {
	if prefix == "users" {
		return "a plugin provider may not create users (users are the root of every right)", true
	}
	return "", false
}

// buildContent decodes the provider's embedded content bundle and applies
// DRP's forced metadata (§1.7): Name/Version from the provider, Type
// "plugin", default Description and Source. It also sets def.Meta.
func buildContent(def *models.PluginProvider) (*models.Content, error) {
	c := &models.Content{}
	if strings.TrimSpace(def.Content) != "" {
		if err := yaml.Unmarshal([]byte(def.Content), c); err != nil {
			return nil, fmt.Errorf("content bundle: %w", err)
		}
	}
	if c.Sections == nil {
		c.Sections = map[string]map[string]any{}
	}
	for prefix := range c.Sections {
		if why, denied := deniedContentSection(prefix); denied {
			return nil, fmt.Errorf("content section %s: %s", prefix, why)
		}
	}
	for prefix, objs := range c.Sections {
		for key, obj := range objs {
			norm, err := normaliseYAML(obj)
			if err != nil {
				return nil, fmt.Errorf("content %s/%s: %w", prefix, key, err)
			}
			objs[key] = norm
		}
	}
	c.Meta.Name = def.Name
	c.Meta.Version = def.Version
	if c.Meta.Description == "" || c.Meta.Description == "Unspecified" {
		c.Meta.Description = "Content layer for " + def.Name + " plugin provider"
	}
	if c.Meta.Source == "" {
		c.Meta.Source = "FromPluginProvider"
	}
	c.Meta.Type = "plugin"
	m := c.Meta
	def.Meta = models.Meta{
		"Name": m.Name, "Version": m.Version, "Description": m.Description, "Source": m.Source,
		"Type": m.Type, "Documentation": m.Documentation, "RequiredFeatures": m.RequiredFeatures,
		"Color": m.Color, "Icon": m.Icon, "Author": m.Author, "DisplayName": m.DisplayName,
		"License": m.License, "Copyright": m.Copyright, "CodeSource": m.CodeSource, "Order": m.Order,
		"Tags": m.Tags, "DocUrl": m.DocUrl, "Prerequisites": m.Prerequisites,
		"color": m.Color, "icon": m.Icon,
	}
	return c, nil
}

// normaliseYAML turns yaml.v3's decoded values into plain JSON values.
func normaliseYAML(v any) (any, error) {
	buf, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(buf, &out)
	return out, err
}

// unpack runs `<path> unpack <dir>` with <dir> in a scratch directory
// of the plugin user, checks what it left there and copies it into a
// staging directory next to the provider's final unpack directory, which
// it returns. The copy refuses symlinks, hard links, devices, sockets and
// pipes: the files are served to anybody by the static file server, so
// an unpack that links e.g. /etc/shadow or the server's token.key into
// its directory must not publish them. Modes are copied without setuid,
// setgid and group/other write bits, and everything belongs to the host.
func (h *Host) unpack(ctx context.Context, p *provider) (string, error) {
	work, err := h.newScratch("unpack-")
	if err != nil {
		return "", fmt.Errorf("unpack for %s failed: %w", p.def.Name, err)
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "files")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", fmt.Errorf("unpack for %s failed: %w", p.def.Name, err)
	}
	if err := h.sb.own(out); err != nil {
		return "", fmt.Errorf("unpack for %s failed: %w", p.def.Name, err)
	}
	_, stderr, err := h.runTool(ctx, p.path, work, "unpack", out)
	if err != nil {
		return "", fmt.Errorf("unpack for %s failed: %w", p.def.Name, err)
	}
	if len(bytes.TrimSpace(stderr)) > 0 {
		h.log.Info("unpack stderr", "provider", p.def.Name, "output", strings.TrimSpace(string(stderr)))
	}
	parent := filepath.Join(h.cfg.FileRoot, "files", "plugin_providers")
	staging, err := os.MkdirTemp(parent, "."+p.def.Name+".unpack-")
	if err != nil {
		return "", fmt.Errorf("unpack staging directory: %w", err)
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		os.RemoveAll(staging)
		return "", fmt.Errorf("unpack staging directory: %w", err)
	}
	if err := copyUnpacked(out, staging); err != nil {
		os.RemoveAll(staging)
		h.log.Error("unpack output refused", "provider", p.def.Name, "err", err)
		return "", fmt.Errorf("unpack for %s refused: %w", p.def.Name, err)
	}
	return staging, nil
}

// maxUnpackBytes bounds what one unpack may leave behind.
const maxUnpackBytes = 4 << 30

// copyUnpacked copies the tree src into the existing directory dst,
// refusing anything but plain directories and singly linked regular
// files. Everything is read through an os.Root on src, so nothing
// outside src is ever opened whatever the tree contains or how it
// changes meanwhile.
func copyUnpacked(src, dst string) error {
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	var total int64
	return fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			link, _ := root.Readlink(name)
			return fmt.Errorf("%s is a symlink (to %s); unpack may only leave files and directories", name, link)
		case t.IsDir():
			return os.Mkdir(target, 0o755)
		case t.IsRegular():
			n, err := copyUnpackedFile(root, name, target)
			total += n
			if err == nil && total > maxUnpackBytes {
				err = fmt.Errorf("unpacked files exceed %d bytes", int64(maxUnpackBytes))
			}
			return err
		default:
			return fmt.Errorf("%s is a %s; unpack may only leave files and directories", name, t.Type().String())
		}
	})
}

// copyUnpackedFile copies the regular file name of root to target.
func copyUnpackedFile(root *os.Root, name, target string) (int64, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file", name)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return 0, fmt.Errorf("%s is a hard link (%d names); unpack may only leave files of its own", name, st.Nlink)
	}
	mode := fi.Mode().Perm() &^ 0o022
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o200)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, io.LimitReader(f, maxUnpackBytes+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(target, mode)
	}
	return n, err
}

// swapUnpacked replaces the provider's unpack directory with staging.
func (h *Host) swapUnpacked(name, staging string) error {
	final := filepath.Join(h.cfg.FileRoot, "files", "plugin_providers", name)
	old := final + ".old-" + fmt.Sprint(time.Now().UnixNano())
	if err := os.Rename(final, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("move old unpacked files: %w", err)
	}
	if err := os.Rename(staging, final); err != nil {
		_ = os.Rename(old, final)
		return fmt.Errorf("install unpacked files: %w", err)
	}
	return os.RemoveAll(old)
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	hs := sha256.New()
	n, err := io.Copy(hs, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(hs.Sum(nil)), n, nil
}

// discoveryParallelism bounds how many `define` runs one discovery has
// in flight, so one hanging provider (up to DefineTimeout) does not hold
// up the others.
const discoveryParallelism = 4

// providerFile is an executable in PluginRoot that discovery must define.
type providerFile struct {
	file, path, sum string
	size            int64
}

// definedFile is the outcome of running define on a providerFile.
type definedFile struct {
	providerFile
	p   *provider
	err error
}

// Reload runs define (and unpack) on every executable in PluginRoot,
// installs new and changed providers, and removes providers whose file is
// gone. It is what SIGHUP triggers. Failures are reported per provider (log,
// event, plugin_providers entry) and never stop the others.
//
// define runs for up to discoveryParallelism files at once, started in
// file name order, and each provider is installed as soon as its define
// succeeds, so a provider that hangs in define delays nobody else. The
// outcome does not depend on which define finishes first: when two files
// define the same provider name, the file whose name sorts first wins, as
// if they had been defined one by one in order.
func (h *Host) Reload(ctx context.Context) {
	defer h.discoveryDone()
	h.provMu.Lock()
	defer h.provMu.Unlock()
	entries, err := os.ReadDir(h.cfg.PluginRoot)
	if err != nil {
		h.log.Error("read plugin root", "dir", h.cfg.PluginRoot, "err", err)
		return
	}
	claim := map[string]string{} // provider name → file providing it now
	sums := map[string]string{}  // file → sha256
	broken := map[string]*provider{}
	var todo []providerFile
	for _, e := range entries { // sorted by file name
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		path := filepath.Join(h.cfg.PluginRoot, name)
		sum, size, err := fileSHA256(path)
		sums[name] = sum
		if err != nil {
			broken[name] = h.brokenProvider(name, sum, fmt.Errorf("read: %w", err))
			continue
		}
		if cur := h.providerByFile(name); cur != nil && cur.sha256 == sum {
			claim[cur.def.Name] = name
			continue
		}
		todo = append(todo, providerFile{file: name, path: path, sum: sum, size: size})
	}

	results := make(chan definedFile)
	go func() {
		sem := make(chan struct{}, discoveryParallelism)
		var wg sync.WaitGroup
		for _, c := range todo {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				p, err := h.define(ctx, c.path)
				results <- definedFile{providerFile: c, p: p, err: err}
			}()
		}
		wg.Wait()
		close(results)
	}()
	for r := range results {
		h.settleDefined(ctx, r, claim, sums, broken)
	}

	present := map[string]bool{}
	for name := range claim {
		present[name] = true
	}
	h.mu.Lock()
	var fixed []string
	for file := range h.broken {
		if _, still := broken[file]; !still {
			if _, ok := h.providers[file]; !ok {
				fixed = append(fixed, file)
			}
		}
	}
	h.broken = broken
	var gone []*provider
	for name, p := range h.providers {
		if !present[name] {
			gone = append(gone, p)
		}
	}
	h.mu.Unlock()
	sort.Slice(gone, func(i, j int) bool { return gone[i].def.Name < gone[j].def.Name })
	for _, p := range gone {
		h.uninstall(ctx, p)
	}
	sort.Strings(fixed)
	for _, file := range fixed {
		if h.provider(file) == nil {
			h.deleteRecord(file)
		}
	}
}

// settleDefined installs the provider r defined unless a file sorting
// before r's already provides that name; when r's file sorts first it
// takes the name over and the other file is reported broken. claim maps
// provider names to the file providing them in this discovery.
func (h *Host) settleDefined(ctx context.Context, r definedFile, claim, sums map[string]string, broken map[string]*provider) {
	if r.err != nil {
		broken[r.file] = h.brokenProvider(r.file, r.sum, r.err)
		return
	}
	p := r.p
	p.sha256, p.size = r.sum, r.size
	name := p.def.Name
	other, taken := claim[name]
	if taken && other < r.file {
		broken[r.file] = h.brokenProvider(r.file, r.sum, fmt.Errorf("provider %s is already defined by %s", name, other))
		return
	}
	if err := h.install(ctx, p, true, nil); err != nil {
		broken[r.file] = h.brokenProvider(r.file, r.sum, err)
		return
	}
	if taken && other != r.file {
		broken[other] = h.brokenProvider(other, sums[other], fmt.Errorf("provider %s is already defined by %s", name, r.file))
	}
	claim[name] = r.file
}

func (h *Host) brokenProvider(file, sum string, err error) *provider {
	msg := fmt.Sprintf("Skipping %s: %v", file, err)
	h.log.Error("plugin provider failed", "file", file, "err", err)
	p := &provider{file: file, sha256: sum, errs: []string{msg}, path: filepath.Join(h.cfg.PluginRoot, file)}
	h.publish("plugin_providers", "error", file, p.view())
	h.saveRecord(p)
	return p
}

func (h *Host) provider(name string) *provider {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.providers[name]
}

func (h *Host) providerByFile(file string) *provider {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, p := range h.providers {
		if p.file == file {
			return p
		}
	}
	return nil
}

// install makes p the provider of its name: unpacks it, registers its
// kinds and content layer (rolling back on failure), records it, creates
// its AutoStart plugin and restarts its instances. replaceWritable is
// passed to the content layer.
//
// commit, when not nil, runs after the content layer is in place and
// before the provider is recorded (uploads rename the temp file there); if
// it fails, the layer and kinds are rolled back.
func (h *Host) install(ctx context.Context, p *provider, replaceWritable bool, commit func() error) error {
	staging, err := h.unpack(ctx, p)
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	old := h.provider(p.def.Name)
	if err := h.registerKinds(ctx, p, old); err != nil {
		return err
	}
	if h.deps.Content != nil {
		if err := h.deps.Content.AddPluginLayer(ctx, p.def.Name, p.content, replaceWritable); err != nil {
			h.rollbackKinds(ctx, p, old)
			var me *models.Error
			if errors.As(err, &me) {
				return me
			}
			return fmt.Errorf("bad store: %w", err)
		}
	}
	if commit != nil {
		if err := commit(); err != nil {
			h.rollbackKinds(ctx, p, old)
			if h.deps.Content != nil {
				if old != nil {
					_ = h.deps.Content.AddPluginLayer(ctx, old.def.Name, old.content, true)
				} else {
					_ = h.deps.Content.RemovePluginLayer(ctx, p.def.Name)
				}
			}
			return err
		}
	}
	h.dropStaleKinds(ctx, p, old)
	if err := h.swapUnpacked(p.def.Name, staging); err != nil {
		h.log.Error("install unpacked files", "provider", p.def.Name, "err", err)
	}
	h.mu.Lock()
	h.providers[p.def.Name] = p
	delete(h.removed, p.def.Name)
	h.mu.Unlock()
	action := "create"
	if old != nil {
		action = "update"
	}
	h.saveRecord(p)
	h.log.Info("plugin provider loaded", "provider", p.def.Name, "version", p.def.Version, "sha256", p.sha256)
	h.publish("plugin_providers", action, p.def.Name, p.view())
	if p.def.AutoStart {
		ap := &models.Plugin{Name: p.def.Name, Provider: p.def.Name, Meta: p.def.Meta}
		ap.Fill()
		if err := h.deps.Plugins.CreatePlugin(ctx, ap); err != nil {
			h.log.Error("create AutoStart plugin", "provider", p.def.Name, "err", err)
		}
	}
	h.providerChanged(p.def.Name)
	return nil
}

func (h *Host) registerKinds(ctx context.Context, p, old *provider) error {
	if len(p.kinds) == 0 {
		return nil
	}
	if h.deps.Kinds == nil {
		return errors.New("bad store: this server does not support StoreObjects")
	}
	prefixes := make([]string, 0, len(p.kinds))
	for prefix := range p.kinds {
		prefixes = append(prefixes, prefix)
	}
	sort.Strings(prefixes)
	var done []string
	for _, prefix := range prefixes {
		v := p.kinds[prefix]
		pf := prefix
		validate := func(obj models.RawModel) error { return validateRaw(pf, v, obj) }
		if err := h.deps.Kinds.RegisterKind(ctx, prefix, p.def.Name, p.indexes[prefix], validate); err != nil {
			for _, d := range done {
				if old == nil || old.kinds[d] == nil {
					_ = h.deps.Kinds.UnregisterKind(ctx, d, p.def.Name)
				}
			}
			return fmt.Errorf("bad store: StoreObjects %s: %w", prefix, err)
		}
		done = append(done, prefix)
	}
	return nil
}

// rollbackKinds undoes registerKinds after a later failure: new kinds are
// dropped, replaced ones get the old validator back.
func (h *Host) rollbackKinds(ctx context.Context, p, old *provider) {
	if h.deps.Kinds == nil {
		return
	}
	for prefix := range p.kinds {
		if old != nil && old.kinds != nil {
			if _, had := old.kinds[prefix]; had {
				v := old.kinds[prefix]
				pf := prefix
				_ = h.deps.Kinds.RegisterKind(ctx, prefix, old.def.Name, old.indexes[prefix], func(obj models.RawModel) error { return validateRaw(pf, v, obj) })
				continue
			}
		}
		_ = h.deps.Kinds.UnregisterKind(ctx, prefix, p.def.Name)
	}
}

// dropStaleKinds unregisters kinds old declared that p no longer does.
func (h *Host) dropStaleKinds(ctx context.Context, p, old *provider) {
	if old == nil || h.deps.Kinds == nil {
		return
	}
	for prefix := range old.kinds {
		if _, still := p.kinds[prefix]; !still {
			_ = h.deps.Kinds.UnregisterKind(ctx, prefix, old.def.Name)
		}
	}
}

// storeIndexes derives the indexes of a StoreObjects kind from its
// schema, as DRP shows them for typed objects: string fields are Regex
// indexes, booleans Unordered, numbers ordered.
func storeIndexes(doc any) map[string]models.Index {
	out := map[string]models.Index{}
	for field, typ := range schema.StoreObjectFields(doc) {
		switch typ {
		case "string":
			out[field] = models.Index{Type: "string", Regex: true}
		case "boolean":
			out[field] = models.Index{Type: "boolean", Unordered: true}
		case "integer", "number":
			out[field] = models.Index{Type: typ}
		}
	}
	return out
}

// validateRaw checks a custom object against its StoreObjects schema,
// ignoring the common fields every object carries.
func validateRaw(prefix string, v *schema.Validator, obj models.RawModel) error {
	if v == nil {
		return nil
	}
	if err := v.Validate(map[string]any(obj)); err != nil {
		return fmt.Errorf("Error in value: %w", err)
	}
	return nil
}

// uninstall removes p: its content layer, kinds, unpacked files and
// registry entry; its instances stop and report the missing provider.
func (h *Host) uninstall(ctx context.Context, p *provider) {
	name := p.def.Name
	h.mu.Lock()
	if h.providers[name] == p {
		delete(h.providers, name)
	}
	h.mu.Unlock()
	if h.deps.Content != nil {
		if err := h.deps.Content.RemovePluginLayer(ctx, name); err != nil {
			h.log.Error("remove content layer", "provider", name, "err", err)
		}
	}
	if h.deps.Kinds != nil {
		for prefix := range p.kinds {
			_ = h.deps.Kinds.UnregisterKind(ctx, prefix, name)
		}
	}
	_ = os.RemoveAll(filepath.Join(h.cfg.FileRoot, "files", "plugin_providers", name))
	h.deleteRecord(name)
	h.log.Info("plugin provider removed", "provider", name)
	h.publish("plugin_providers", "delete", name, p.view())
	h.providerChanged(name)
}

// removeProviderFor takes prov out of service because one of its
// instances left, or refused /config, with 403 (DRP: a licence denial
// removes the provider). Its
// content layer, kinds and unpacked files go, every instance stops with
// the reason in PluginErrors, and the provider's record shows the reason
// in Errors. The executable stays in PluginRoot: a reload (SIGHUP, server
// restart) or a new upload tries it again, e.g. once the licence is fixed.
// Nothing happens when prov has been replaced meanwhile.
func (h *Host) removeProviderFor(prov *provider, why string) {
	h.provMu.Lock()
	defer h.provMu.Unlock()
	name := prov.def.Name
	if h.provider(name) != prov {
		return
	}
	h.log.Error("removing plugin provider", "provider", name, "reason", why)
	h.mu.Lock()
	h.removed[name] = why
	h.mu.Unlock()
	h.uninstall(h.ctx, prov)
	b := &provider{file: prov.file, sha256: prov.sha256, path: prov.path,
		errs: []string{fmt.Sprintf("Plugin provider %s removed: %s", name, why)}}
	h.mu.Lock()
	h.broken[prov.file] = b
	h.mu.Unlock()
	h.saveRecord(b)
}

// brokenErrors returns the errors of the provider file named name when
// its define or install failed.
func (h *Host) brokenErrors(name string) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if b, ok := h.broken[name]; ok {
		return append([]string{}, b.errs...)
	}
	return nil
}

// removedWhy says why the host removed provider name, "" if it did not.
func (h *Host) removedWhy(name string) string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if why, ok := h.removed[name]; ok {
		return "Plugin provider " + name + " removed: " + why
	}
	return ""
}

// Providers returns the API view of every provider, broken ones included,
// sorted by name.
func (h *Host) Providers() []*models.PluginProviderInfo {
	h.mu.RLock()
	out := make([]*models.PluginProviderInfo, 0, len(h.providers)+len(h.broken))
	for _, p := range h.providers {
		out = append(out, p.view())
	}
	for file, p := range h.broken {
		if _, ok := h.providers[file]; ok {
			continue
		}
		out = append(out, p.view())
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Provider returns the API view of one provider (or broken file entry).
func (h *Host) Provider(name string) (*models.PluginProviderInfo, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if p, ok := h.providers[name]; ok {
		return p.view(), true
	}
	if p, ok := h.broken[name]; ok {
		return p.view(), true
	}
	return nil, false
}

// saveRecord mirrors p into the plugin_providers collection, if any.
func (h *Host) saveRecord(p *provider) {
	if h.deps.Records == nil {
		return
	}
	if !models.NameRE.MatchString(p.view().Name) {
		return // not storable; it is in the log and the event
	}
	// Detached from h.ctx: a record of a provider defined while the
	// server stops is still right (and the database still open).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 10*time.Second)
	defer cancel()
	if err := h.deps.Records.SaveProvider(ctx, p.view()); err != nil {
		h.log.Error("record plugin provider", "provider", p.view().Name, "err", err)
	}
}

func (h *Host) deleteRecord(name string) {
	if h.deps.Records == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 10*time.Second)
	defer cancel()
	if err := h.deps.Records.DeleteProviderRecord(ctx, name); err != nil {
		h.log.Error("remove plugin provider record", "provider", name, "err", err)
	}
}
