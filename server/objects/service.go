package objects

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/events"
	"github.com/provisionhq/provision/server/paramschema"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/store"
)

// Options configures a Service.
type Options struct {
	// Store persists the objects (one bucket per kind prefix). Required.
	Store store.Store
	// Bus receives one event per change. Required.
	Bus *events.Bus
	// Keys seals and opens secure params. Required.
	Keys *secrets.Keeper
	// Schemas validates param values; a fresh one is made when nil.
	Schemas *paramschema.Validator
	// Logger logs load problems; slog.Default() when nil.
	Logger *slog.Logger
	// Limits bound every write; zero fields take DefaultLimits.
	Limits Limits
}

// entry is one cached object. Nothing in an entry is mutated after it is
// built; readers get copies, and internal read-only paths (param lookups,
// token checks) use obj, decoded once, directly.
type entry struct {
	key    string
	obj    models.Model   // stored form, never handed out
	raw    []byte         // stored JSON
	view   []byte         // API JSON: hidden fields removed, secure params sealed
	fields map[string]any // view decoded, for filters and sorting
	etag   string
	rev    int64       // store revision at which the object last changed
	memo   *renderMemo // last slim/params rendering, filled on demand
}

// Service is the object store of provisiond. It keeps every object in
// memory and is safe for concurrent use.
//
// Writes validate against the cache, then commit to the store with a
// transaction conditional on the revisions they validated against (no
// lock is held during the store write, so concurrent writes share an
// fsync and reads never wait for one). The cache is fed only from the
// store's watch stream, in revision order, which also publishes the
// events; a writer answers once its revision is applied, so its caller
// reads its own write. What validation read of other objects is part of
// the transaction's conditions too (see readSet), and a write whose
// validation listed a kind is validated and committed alone, so a
// committed write was valid against everything committed before it.
type Service struct {
	st      store.Store
	bus     *events.Bus
	keys    *secrets.Keeper
	schemas *paramschema.Validator
	log     *slog.Logger
	limits  Limits

	// writer admits one validation at a time, so a write waiting behind
	// others can give up when its context ends (a sync.Mutex cannot be
	// waited for with a deadline). It is released before the store write.
	writer chan struct{}
	// applied is the last store revision applied to the cache; ctl runs
	// functions in the applier goroutine; pending holds entries local
	// writers built, so the applier need not build them again; flight
	// counts validated writes whose commit is not over, for exclusive
	// writes to wait for (see validateWrite).
	applied  appliedClock
	flight   flights
	ctl      chan func()
	pending  sync.Map // pendingKey → *entry
	loadedAt map[string]int64
	mu       sync.RWMutex
	kinds    map[string]*Kind
	data     map[string]map[string]*entry
	uniq     map[string]map[string]map[string]string // prefix → field → value → key
	before   map[string][]BeforeFunc                 // prefix or "*"
	after    map[string][]AfterFunc
}

// New returns a Service with no kinds; call Register for each.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Bus == nil || opts.Keys == nil {
		return nil, errors.New("objects: Store, Bus and Keys are required")
	}
	if opts.Schemas == nil {
		opts.Schemas = paramschema.New()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{
		st: opts.Store, bus: opts.Bus, keys: opts.Keys, schemas: opts.Schemas, log: opts.Logger,
		limits: opts.Limits.withDefaults(),
		writer: make(chan struct{}, 1),
		ctl:    make(chan func()), loadedAt: map[string]int64{},
		kinds: map[string]*Kind{}, data: map[string]map[string]*entry{},
		uniq:   map[string]map[string]map[string]string{},
		before: map[string][]BeforeFunc{}, after: map[string][]AfterFunc{},
	}
	if err := s.startApplier(); err != nil {
		return nil, err
	}
	return s, nil
}

// Schemas returns the param schema validator the service uses.
func (s *Service) Schemas() *paramschema.Validator { return s.schemas }

// Keys returns the secure param key keeper.
func (s *Service) Keys() *secrets.Keeper { return s.keys }

// Unregister removes a kind from the API. Its stored objects stay in the
// store and come back when the kind is registered again.
func (s *Service) Unregister(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kinds, prefix)
	delete(s.data, prefix)
	delete(s.uniq, prefix)
}

// Kind returns a copy of the registered kind for prefix.
func (s *Service) Kind(prefix string) (Kind, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.kinds[prefix]
	if !ok {
		return Kind{}, false
	}
	return *k, true
}

// Prefixes lists the registered kinds, sorted.
func (s *Service) Prefixes() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.kinds))
	for p := range s.kinds {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// OnBeforeChange adds a hook run before every change of prefix ("*" = all
// kinds), after the kind's own validation.
func (s *Service) OnBeforeChange(prefix string, fn BeforeFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before[prefix] = append(s.before[prefix], fn)
}

// OnChange adds a hook run after every committed change of prefix ("*" = all
// kinds). See AfterFunc for its guarantees.
func (s *Service) OnChange(prefix string, fn AfterFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after[prefix] = append(s.after[prefix], fn)
}

// Count returns the number of objects of prefix.
func (s *Service) Count(prefix string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.data[prefix])
}

// --- reading ---

func (s *Service) kindLocked(method, prefix string) (*Kind, error) {
	k, ok := s.kinds[prefix]
	if !ok {
		return nil, &models.Error{Model: prefix, Type: method, Messages: []string{"No route"}, Code: 404}
	}
	return k, nil
}

// lookup finds id (a key or <Index>:<value>) in k; caller holds the lock.
func (s *Service) lookup(k *Kind, id string) (*entry, bool) {
	objs := s.data[k.Prefix]
	key := id
	if k.NormalizeKey != nil {
		if n := k.NormalizeKey(id); n != "" {
			key = n
		}
	}
	if e, ok := objs[key]; ok {
		return e, true
	}
	i := strings.Index(id, ":")
	if i <= 0 {
		return nil, false
	}
	field, value := id[:i], id[i+1:]
	if field == "Key" || field == k.KeyField {
		if k.NormalizeKey != nil {
			if n := k.NormalizeKey(value); n != "" {
				value = n
			}
		}
		e, ok := objs[value]
		return e, ok
	}
	if m, ok := s.uniq[k.Prefix][field]; ok {
		if key, ok := m[value]; ok {
			e, ok := objs[key]
			return e, ok
		}
	}
	return nil, false
}

func notFound(method, prefix, id string) *models.Error {
	return &models.Error{Model: prefix, Key: id, Type: method, Messages: []string{"Not Found"}, Code: 404}
}

func (s *Service) decodeEntry(k *Kind, e *entry) models.Model {
	obj := k.newObject()
	if err := json.Unmarshal(e.raw, obj); err != nil {
		// Cannot happen: raw was produced by json.Marshal of the same type.
		panic(fmt.Sprintf("objects: stored %s/%s does not decode: %v", k.Prefix, e.key, err))
	}
	obj.Fill()
	return obj
}

// Get returns a private copy of the object (stored form: hidden fields and
// sealed secure params included) with key or <Index>:<value> id.
func (s *Service) Get(ctx context.Context, prefix, id string) (models.Model, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.kindLocked("GET", prefix)
	if err != nil {
		return nil, err
	}
	e, ok := s.lookup(k, id)
	if !ok {
		return nil, notFound("GET", prefix, id)
	}
	return s.decodeEntry(k, e), nil
}

// Peek calls fn with the stored object of prefix/key (exact key, no index
// lookup) without copying it, under a read lock; fn must not modify or keep
// it, nor call the Service. It reports whether the object exists. It is the
// cheap read for hot paths such as token checks.
func (s *Service) Peek(prefix, key string, fn func(models.Model)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.data[prefix][key]
	if !ok {
		return false
	}
	fn(e.obj)
	return true
}

// Rendered is an object as the API shows it.
type Rendered struct {
	// Key is the object key.
	Key string
	// JSON is the API form of the object.
	JSON []byte
	// ETag identifies this version of the object.
	ETag string
}

// RenderOptions select how objects are shown.
type RenderOptions struct {
	// Decode shows secure params in plain text.
	Decode bool
	// Slim drops the named fields (Params, Meta) and marks the object Partial.
	Slim []string
	// Params keeps only the named params.
	Params []string
}

func (o RenderOptions) plain() bool { return !o.Decode && len(o.Slim) == 0 && len(o.Params) == 0 }

// GetRendered returns the API form of one object.
func (s *Service) GetRendered(ctx context.Context, method, prefix, id string, ro RenderOptions) (Rendered, error) {
	s.mu.RLock()
	k, err := s.kindLocked(method, prefix)
	if err != nil {
		s.mu.RUnlock()
		return Rendered{}, err
	}
	e, ok := s.lookup(k, id)
	r := s.rendererLocked(k, ro)
	s.mu.RUnlock()
	if !ok {
		return Rendered{}, notFound(method, prefix, id)
	}
	buf, err := r.render(e)
	if err != nil {
		return Rendered{}, err
	}
	return Rendered{Key: e.key, JSON: buf, ETag: e.etag}, nil
}

// decodeParams opens every sealed value in p whose definition is Secure.
func (s *Service) decodeParams(p map[string]any) error {
	for name, v := range p {
		sd, ok := secrets.AsSecureData(v)
		if !ok || !s.isSecureLocked(name) {
			continue
		}
		plain, err := s.keys.Open(sd)
		if err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		p[name] = plain
	}
	return nil
}

// ListResult is one page of a list plus its counts.
type ListResult struct {
	// Items are the rendered objects of the page.
	Items []Rendered
	// Total is the number of objects of the kind.
	Total int
	// Matched is the number matching the filters (before offset/limit).
	Matched int
}

// List returns the rendered objects matching q. The page is selected under
// the read lock; rendering (slim, params, decode) happens after it is
// released, on the immutable entries.
func (s *Service) List(ctx context.Context, prefix string, q ListQuery, ro RenderOptions) (ListResult, error) {
	s.mu.RLock()
	k, err := s.kindLocked("GET", prefix)
	if err != nil {
		s.mu.RUnlock()
		return ListResult{}, err
	}
	ents, total, matched, err := s.selectLocked(ctx, k, q)
	r := s.rendererLocked(k, ro)
	s.mu.RUnlock()
	if err != nil {
		return ListResult{}, err
	}
	res := ListResult{Total: total, Matched: matched, Items: make([]Rendered, 0, len(ents))}
	for _, e := range ents {
		buf, err := r.render(e)
		if err != nil {
			return ListResult{}, err
		}
		res.Items = append(res.Items, Rendered{Key: e.key, JSON: buf, ETag: e.etag})
	}
	return res, nil
}

// ListObjects returns private copies (stored form) of the objects matching q.
func (s *Service) ListObjects(ctx context.Context, prefix string, q ListQuery) ([]models.Model, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.kindLocked("GET", prefix)
	if err != nil {
		return nil, err
	}
	ents, _, _, err := s.selectLocked(ctx, k, q)
	if err != nil {
		return nil, err
	}
	out := make([]models.Model, 0, len(ents))
	for _, e := range ents {
		out = append(out, s.decodeEntry(k, e))
	}
	return out, nil
}

// --- writing ---

// View runs fn with a consistent read-only view of all objects.
func (s *Service) View(fn func(v View)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(lockedView{s: s})
}

func (s *Service) makeEntry(k *Kind, obj models.Model) (*entry, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", k.Prefix, err)
	}
	// The cached object is decoded from the stored bytes, as every read
	// would see it (a writer's object may hold Go values such as an int
	// param that the stored form has as a JSON number). Internal reads
	// (param lookups) use it without decoding again.
	stored := k.newObject()
	if err := json.Unmarshal(raw, stored); err != nil {
		return nil, fmt.Errorf("copy %s: %w", k.Prefix, err)
	}
	stored.Fill()
	obj = stored
	view := raw
	if k.Sanitize != nil {
		c := k.newObject()
		if err := json.Unmarshal(raw, c); err != nil {
			return nil, fmt.Errorf("copy %s: %w", k.Prefix, err)
		}
		c.Fill()
		k.Sanitize(c)
		if view, err = json.Marshal(c); err != nil {
			return nil, fmt.Errorf("encode %s: %w", k.Prefix, err)
		}
	}
	fields := map[string]any{}
	if err := json.Unmarshal(view, &fields); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k.Prefix, err)
	}
	sum := sha256.Sum256(view)
	return &entry{key: obj.Key(), obj: obj, raw: raw, view: view, fields: fields, memo: &renderMemo{},
		etag: `"` + hex.EncodeToString(sum[:16]) + `"`}, nil
}

func fieldString(v any) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", false
	case string:
		return t, t != ""
	default:
		b, _ := json.Marshal(t)
		return string(b), true
	}
}

func (s *Service) indexAdd(k *Kind, e *entry) {
	for f, m := range s.uniq[k.Prefix] {
		if v, ok := fieldString(e.fields[f]); ok {
			m[v] = e.key
		}
	}
}

func (s *Service) indexRemove(k *Kind, e *entry) {
	for f, m := range s.uniq[k.Prefix] {
		if v, ok := fieldString(e.fields[f]); ok && m[v] == e.key {
			delete(m, v)
		}
	}
}

func typeFor(action string) string {
	switch action {
	case ActionCreate:
		return "CREATE"
	case ActionDelete:
		return "DELETE"
	case ActionSave:
		return "SAVE"
	default:
		return "UPDATE"
	}
}

// asModelError converts a hook or validation error into a *models.Error.
func asModelError(err error, typ string, code int, prefix, key string) *models.Error {
	var me *models.Error
	if errors.As(err, &me) {
		out := *me
		if out.Model == "" {
			out.Model = prefix
		}
		if out.Key == "" {
			out.Key = key
		}
		if out.Code == 0 {
			out.Code = code
		}
		if out.Type == "" {
			out.Type = typ
		}
		return &out
	}
	return &models.Error{Model: prefix, Key: key, Type: typ, Code: code, Messages: []string{err.Error()}}
}

func validationError(prefix, key string, err error) *models.Error {
	return asModelError(err, "ValidationError", 422, prefix, key)
}

// setValid marks obj validated and available, as DRP shows stored objects.
func setValid(obj models.Model) {
	if r, ok := obj.(*models.RawModel); ok {
		(*r)["Validated"], (*r)["Available"], (*r)["Errors"] = true, true, []any{}
		return
	}
	rv := reflect.ValueOf(obj)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return
	}
	f := rv.Elem().FieldByName("Validation")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeOf(models.Validation{}) {
		f.Set(reflect.ValueOf(models.Validation{Validated: true, Available: true, Errors: []string{}}))
	}
}

// nameOf returns the Name field of any object ("" when it has none).
func nameOf(obj models.Model) string {
	if r, ok := obj.(*models.RawModel); ok {
		n, _ := (*r)["Name"].(string)
		return n
	}
	rv := reflect.ValueOf(obj)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return ""
	}
	f := rv.Elem().FieldByName("Name")
	if f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

// objectReadOnly reports the ReadOnly field of any object.
func objectReadOnly(obj models.Model) bool {
	if r, ok := obj.(*models.RawModel); ok {
		b, _ := (*r)["ReadOnly"].(bool)
		return b
	}
	rv := reflect.ValueOf(obj)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return false
	}
	f := rv.Elem().FieldByName("ReadOnly")
	return f.IsValid() && f.Kind() == reflect.Bool && f.Bool()
}

// prepared is a validated change ready to commit.
type prepared struct {
	k      *Kind
	action string
	old    *entry
	new    *entry
	change Change
	// reads is what validation read of other objects.
	reads *readSet
}

// prepareWrite runs the write pipeline on obj (a fresh object the caller
// owns) against old (nil on create). Caller holds the writer turn and the read lock.
// Reads of other objects are recorded in rs.
func (s *Service) prepareWrite(ctx context.Context, k *Kind, action, principal string, old *entry, obj models.Model, rs *readSet) (*prepared, error) {
	typ := typeFor(action)
	if r, ok := obj.(*models.RawModel); ok {
		if *r == nil {
			*r = models.RawModel{}
		}
		(*r)["Type"] = k.Prefix
	}
	obj.Fill()
	v := lockedView{s: s, rs: rs}
	var oldObj models.Model
	if old != nil {
		oldObj = s.decodeEntry(k, old)
	}
	// Errors name the object as the client did: a key Prepare generated
	// (a new machine's Uuid) means nothing to the client, its Name does.
	sentKey, blankKey := obj.Key(), k.newObject().Key() // a nil Uuid is not ""
	errKey := func() string {
		if old == nil && (sentKey == "" || sentKey == blankKey) {
			return nameOf(obj)
		}
		return obj.Key()
	}
	if k.Prepare != nil {
		if err := k.Prepare(v, oldObj, obj); err != nil {
			return nil, validationError(k.Prefix, errKey(), err)
		}
	}
	key := obj.Key()
	if key == "" {
		return nil, &models.Error{Model: k.Prefix, Type: typ, Code: 400, Messages: []string{"Empty key not allowed"}}
	}
	if strings.Contains(key, "/") && !k.SlashKeys {
		return nil, &models.Error{Model: k.Prefix, Key: key, Type: "ValidationError", Code: 422,
			Messages: []string{fmt.Sprintf("Key %q must not contain /", key)}}
	}
	if len(key) > s.limits.MaxNameBytes {
		// Before anything else looks at it: bbolt cannot store such a key.
		return nil, s.checkNames(k, key, obj, nil)
	}
	if old != nil && key != old.key {
		return nil, &models.Error{Model: k.Prefix, Key: old.key, Type: typ, Code: 400,
			Messages: []string{fmt.Sprintf("Key change from %s to %s not allowed", old.key, key)}}
	}
	if old == nil {
		if _, exists := s.data[k.Prefix][key]; exists {
			return nil, &models.Error{Model: k.Prefix, Key: key, Type: typ, Code: 409, Messages: []string{"already exists"}}
		}
	}
	if objectReadOnly(obj) && !readOnlyAllowed(ctx) {
		// Only content layers (written by their owner with AllowReadOnly)
		// make ReadOnly objects; otherwise a user could lock an object
		// nobody can change or delete any more.
		return nil, &models.Error{Model: k.Prefix, Key: errKey(), Type: "ValidationError", Code: 422,
			Messages: []string{"ReadOnly cannot be set: only content bundles create read-only objects; send ReadOnly false or leave it out"}}
	}
	if pm, ok := obj.(models.Paramer); ok && !k.NoParams {
		var oldParams map[string]any
		if op, ok := oldObj.(models.Paramer); ok {
			oldParams = op.GetParams()
		}
		params := pm.GetParams()
		if params == nil {
			params = map[string]any{}
		}
		if err := s.checkParams(params, oldParams); err != nil {
			return nil, validationError(k.Prefix, errKey(), err)
		}
		for name := range params {
			s.recordParamDef(rs, name) // its definition (or none) validated it
		}
		pm.SetParams(params)
	}
	if k.Validate != nil {
		if err := k.Validate(v, obj); err != nil {
			return nil, validationError(k.Prefix, errKey(), err)
		}
	}
	ch := &Change{Prefix: k.Prefix, Action: action, Key: key, Principal: principal, Old: oldObj, New: obj}
	for _, fn := range append(append([]BeforeFunc{}, s.before[k.Prefix]...), s.before["*"]...) {
		if err := fn(ctx, v, ch); err != nil {
			return nil, validationError(k.Prefix, errKey(), err)
		}
	}
	obj = ch.New
	if obj == nil || obj.Key() != key {
		return nil, &models.Error{Model: k.Prefix, Key: key, Type: typ, Code: 500, Messages: []string{"a change hook replaced the object key"}}
	}
	setValid(obj)
	e, err := s.makeEntry(k, obj)
	if err != nil {
		return nil, asModelError(err, typ, 500, k.Prefix, key)
	}
	if err := s.checkNames(k, key, obj, e.fields); err != nil {
		return nil, err
	}
	if err := s.checkSize(k, key, old, e); err != nil {
		return nil, err
	}
	for f, m := range s.uniq[k.Prefix] {
		val, ok := fieldString(e.fields[f])
		if !ok {
			continue
		}
		if other, taken := m[val]; taken && other != key {
			// DRP form: CREATE: machines/m1: Name "m1" already used by machines/<uuid>
			return nil, &models.Error{Model: k.Prefix, Key: errKey(), Type: typ, Code: 409,
				Messages: []string{fmt.Sprintf("%s %q already used by %s/%s", f, val, k.Prefix, other)}}
		}
	}
	if old != nil && bytes.Equal(old.raw, e.raw) && action != ActionSave {
		// Nothing changed: still a successful update, no write needed.
		e = old
	}
	return &prepared{k: k, action: action, old: old, new: e, change: *ch, reads: rs}, nil
}

// commitTxn writes p to the store, conditional on what it was validated
// against. A conflict is returned as is (wrapping store.ErrConflict);
// other failures are a 507.
func (s *Service) commitTxn(ctx context.Context, p *prepared) (int64, error) {
	cmps, ops := s.txnFor(p)
	var pk string
	if p.new != nil {
		pk = pendingKey(p.k.Prefix, p.new.key)
		s.pending.Store(pk, p.new)
	}
	rev, err := s.st.Txn(ctx, cmps, ops)
	if err != nil {
		if p.new != nil {
			s.pending.CompareAndDelete(pk, p.new)
		}
		if errors.Is(err, store.ErrConflict) {
			return 0, err
		}
		return 0, &models.Error{Model: p.k.Prefix, Key: p.change.Key, Type: typeFor(p.action), Code: 507,
			Messages: []string{fmt.Sprintf("store: %v", err)}}
	}
	return rev, nil
}

func (s *Service) runAfter(ctx context.Context, hooks []AfterFunc, p *prepared) {
	if len(hooks) == 0 {
		return
	}
	for _, fn := range hooks {
		c := p.change
		if p.old != nil {
			c.Old = s.decodeEntry(p.k, p.old)
		}
		if p.new != nil {
			c.New = s.decodeEntry(p.k, p.new)
		} else {
			c.New = nil
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("change hook panicked", "prefix", c.Prefix, "key", c.Key, "panic", r)
				}
			}()
			fn(ctx, c)
		}()
	}
}

// maxWriteAttempts bounds how often one write is validated again because
// a concurrent write changed what it was validated against. From the
// second attempt on the write keeps the writer turn until it is applied,
// so only writes validated before it can still win, and it cannot starve.
const maxWriteAttempts = 1000

// write is the shared tail of every mutation: fn, under the read lock and
// the writer turn, picks the kind, the old entry and the new object; write
// validates, commits conditionally (validating again after a conflict),
// waits until the cache has applied the commit (which publishes the event),
// runs the after hooks and returns a copy of the result.
func (s *Service) write(ctx context.Context, method, prefix, action, principal string,
	fn func(k *Kind) (old *entry, obj models.Model, err error)) (models.Model, error) {
	for attempt := 1; ; attempt++ {
		hold := attempt > 1
		res, err := s.writeOnce(ctx, method, prefix, action, principal, fn, hold)
		if !errors.Is(err, store.ErrConflict) {
			return res, err
		}
		if attempt >= maxWriteAttempts {
			return nil, &models.Error{Model: prefix, Type: method, Code: 409,
				Messages: []string{fmt.Sprintf("the object kept changing during this write (%d attempts); nothing was changed, retry", attempt)}}
		}
		// Validate again once the cache holds the write that won.
		if err := s.applied.wait(ctx, s.st.Revision()); err != nil {
			return nil, &models.Error{Model: prefix, Type: method, Code: 503, Messages: []string{err.Error()}}
		}
	}
}

// writeOnce is one attempt of write. With hold it keeps the writer turn
// until its commit is applied; so does an exclusive write (see
// validateWrite). A store conflict is returned as is.
func (s *Service) writeOnce(ctx context.Context, method, prefix, action, principal string,
	fn func(k *Kind) (old *entry, obj models.Model, err error), hold bool) (models.Model, error) {
	p, hooks, held, err := s.validateWrite(ctx, method, prefix, action, principal, fn, hold)
	if err != nil {
		return nil, err
	}
	defer func() {
		if held {
			s.releaseWriter()
		}
	}()
	if p.new != nil && p.new == p.old {
		// Nothing changed: a successful update without a store write.
		s.flight.done()
		note := changeNote{Prefix: p.k.Prefix, Key: p.old.key, Action: p.action, Principal: principal}
		s.bus.Publish(changeEvent(time.Now().UTC(), appliedChange{k: p.k, key: p.old.key, old: p.old, new: p.new}, note))
		if held {
			held = false
			s.releaseWriter()
		}
		s.runAfter(ctx, hooks, p)
		return s.decodeEntry(p.k, p.new), nil
	}
	rev, err := func() (int64, error) {
		defer s.flight.done()
		return s.commitTxn(ctx, p)
	}()
	if err != nil {
		return nil, err
	}
	if err := s.applied.wait(ctx, rev); err != nil && ctx.Err() == nil {
		// Durable, but the cache stopped: the store is closing.
		return nil, &models.Error{Model: prefix, Key: p.change.Key, Type: method, Code: 503, Messages: []string{err.Error()}}
	}
	if held {
		held = false
		s.releaseWriter() // before the after hooks: they may write
	}
	s.runAfter(ctx, hooks, p)
	res := p.new
	if res == nil {
		res = p.old
	}
	return s.decodeEntry(p.k, res), nil
}

// validateWrite runs fn and the validation pipeline under the writer turn
// and the read lock (readers are never blocked by it), and returns the
// prepared change, counted in s.flight (the caller ends it with
// s.flight.done once its commit is over), and the after hooks to run.
//
// What validation reads of other objects is recorded (see readSet). When
// it includes a read the store cannot compare (a list, e.g. a profile
// delete looking for machines that use the profile), the write is
// exclusive: keeping the turn, it waits until every write validated
// before it has finished its commit and the cache has applied it, then
// validates again, and the caller keeps the turn until its own commit is
// applied. No other write validates or commits in between, as when one
// lock covered validation and commit.
//
// held reports that the caller holds the writer turn and must release it:
// with hold or for an exclusive write, after a successful validation.
func (s *Service) validateWrite(ctx context.Context, method, prefix, action, principal string,
	fn func(k *Kind) (old *entry, obj models.Model, err error), hold bool) (p *prepared, hooks []AfterFunc, held bool, err error) {
	if err := s.acquireWriter(ctx, method, prefix); err != nil {
		return nil, nil, false, err
	}
	// Released also when a hook or validator panics, so one bad request
	// cannot block every later write.
	defer func() {
		if p == nil {
			s.releaseWriter()
			return
		}
		s.flight.add() // under the turn: an exclusive write waits for it
		held = hold
		if !held {
			s.releaseWriter()
		}
	}()
	exclusive := false
	for {
		rs := &readSet{}
		p, hooks, err = s.validateLocked(ctx, method, prefix, action, principal, fn, rs)
		if err != nil || !rs.exclusive || exclusive {
			if err != nil {
				p = nil
			}
			return p, hooks, held, err
		}
		// Validate again once nothing validated before is in flight.
		p, hooks, exclusive, hold = nil, nil, true, true
		if err := s.flight.wait(ctx); err != nil {
			return nil, nil, false, &models.Error{Model: prefix, Type: method, Code: 503,
				Messages: []string{"gave up waiting for other writes to finish: " + err.Error() + "; nothing was changed, retry"}}
		}
		if err := s.applied.wait(ctx, s.st.Revision()); err != nil {
			return nil, nil, false, &models.Error{Model: prefix, Type: method, Code: 503, Messages: []string{err.Error()}}
		}
	}
}

// validateLocked is one validation of validateWrite, under the read lock;
// rs records its reads of other objects. Caller holds the writer turn.
func (s *Service) validateLocked(ctx context.Context, method, prefix, action, principal string,
	fn func(k *Kind) (old *entry, obj models.Model, err error), rs *readSet) (p *prepared, hooks []AfterFunc, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.kindLocked(method, prefix)
	if err != nil {
		return nil, nil, err
	}
	old, obj, err := fn(k)
	if err != nil {
		return nil, nil, err
	}
	v := lockedView{s: s, rs: rs}
	if obj == nil {
		if old == nil {
			return nil, nil, notFound(method, prefix, "")
		}
		if !readOnlyAllowed(ctx) && readOnly(old.fields) {
			return nil, nil, readOnlyError(method, prefix, old)
		}
		oldObj := s.decodeEntry(k, old)
		if k.ValidateDelete != nil {
			if err := k.ValidateDelete(v, oldObj); err != nil {
				return nil, nil, asModelError(err, method, 409, prefix, old.key)
			}
		}
		ch := &Change{Prefix: prefix, Action: ActionDelete, Key: old.key, Principal: principal, Old: oldObj}
		for _, fn := range append(append([]BeforeFunc{}, s.before[prefix]...), s.before["*"]...) {
			if err := fn(ctx, v, ch); err != nil {
				return nil, nil, asModelError(err, method, 409, prefix, old.key)
			}
		}
		p = &prepared{k: k, action: ActionDelete, old: old, change: *ch, reads: rs}
	} else {
		if old != nil && readOnly(old.fields) && !readOnlyAllowed(ctx) {
			return nil, nil, readOnlyError(method, prefix, old)
		}
		p, err = s.prepareWrite(ctx, k, action, principal, old, obj, rs)
		if err != nil {
			return nil, nil, err
		}
	}
	hooks = append(append([]AfterFunc{}, s.after[k.Prefix]...), s.after["*"]...)
	return p, hooks, nil
}

// acquireWriter waits for the turn to write, at most until ctx ends
// (503: the server is busy; nothing was changed).
func (s *Service) acquireWriter(ctx context.Context, method, prefix string) error {
	if err := ctx.Err(); err != nil {
		return &models.Error{Model: prefix, Type: method, Code: 503, Messages: []string{err.Error()}}
	}
	select {
	case s.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &models.Error{Model: prefix, Type: method, Code: 503,
			Messages: []string{"gave up waiting for other writes to finish: " + ctx.Err().Error() + "; nothing was changed, retry"}}
	}
}

func (s *Service) releaseWriter() { <-s.writer }

type allowReadOnlyKey struct{}

// AllowReadOnly marks ctx so that writes made with it may change and
// delete ReadOnly objects (content layers owned by a subsystem such as the
// plugin host). API requests never carry it.
func AllowReadOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, allowReadOnlyKey{}, true)
}

func readOnlyAllowed(ctx context.Context) bool {
	b, _ := ctx.Value(allowReadOnlyKey{}).(bool)
	return b
}

func readOnly(fields map[string]any) bool {
	b, _ := fields["ReadOnly"].(bool)
	return b
}

// readOnlyError is the 403 for a change of a ReadOnly object, naming the
// content bundle it came from so the user knows where to change it.
func readOnlyError(method, prefix string, e *entry) *models.Error {
	msg := "Object is read only"
	if b, _ := e.fields["Bundle"].(string); b != "" {
		msg += ": it belongs to content bundle " + b
	}
	return &models.Error{Model: prefix, Key: e.key, Type: method, Code: 403, Messages: []string{msg}}
}

// ObjectRef names one stored object.
type ObjectRef struct {
	// Prefix is the object's kind.
	Prefix string
	// Key is its key.
	Key string
	// Bundle is the content bundle it belongs to.
	Bundle string
}

// ReadOnlyObjects lists the ReadOnly objects (content layer objects) of
// every kind whose Bundle satisfies match, sorted by prefix then key. It
// reads the cached fields only, so it is cheap even with many objects.
func (s *Service) ReadOnlyObjects(match func(bundle string) bool) []ObjectRef {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []ObjectRef
	for prefix, objs := range s.data {
		for key, e := range objs {
			if !readOnly(e.fields) {
				continue
			}
			b, _ := e.fields["Bundle"].(string)
			if match(b) {
				out = append(out, ObjectRef{Prefix: prefix, Key: key, Bundle: b})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Prefix != out[j].Prefix {
			return out[i].Prefix < out[j].Prefix
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Create stores a new object. obj must be of the kind's type (e.g.
// *models.Machine); the service owns it afterwards.
func (s *Service) Create(ctx context.Context, principal, prefix string, obj models.Model) (models.Model, error) {
	next := attempts(obj)
	return s.write(ctx, "CREATE", prefix, ActionCreate, principal, func(k *Kind) (*entry, models.Model, error) {
		obj := next(k)
		if reflect.TypeOf(obj) != reflect.TypeOf(k.newObject()) {
			return nil, nil, &models.Error{Model: prefix, Type: "CREATE", Code: 400,
				Messages: []string{fmt.Sprintf("object of type %T cannot be stored in %s", obj, prefix)}}
		}
		return nil, obj, nil
	})
}

// Replace replaces the object with key or <Index>:<value> id by obj (PUT).
// An empty key in obj takes the stored object's key.
func (s *Service) Replace(ctx context.Context, principal, prefix, id string, obj models.Model) (models.Model, error) {
	next := attempts(obj)
	return s.write(ctx, "PUT", prefix, ActionUpdate, principal, func(k *Kind) (*entry, models.Model, error) {
		obj := next(k)
		old, ok := s.lookup(k, id)
		if !ok {
			return nil, nil, notFound("PUT", prefix, id)
		}
		if reflect.TypeOf(obj) != reflect.TypeOf(k.newObject()) {
			return nil, nil, &models.Error{Model: prefix, Key: id, Type: "PUT", Code: 400,
				Messages: []string{fmt.Sprintf("object of type %T cannot be stored in %s", obj, prefix)}}
		}
		if obj.Key() == "" || obj.Key() == uuidZero {
			setKey(k, obj, old.key)
		}
		return old, obj, nil
	})
}

// Update applies fn to a copy of the stored object and saves the result
// (action "update"). fn runs under the writer turn and the read lock and
// must not call the Service; after a store conflict, or when the write is
// validated again exclusively (see validateWrite), it runs again on the
// then current object.
func (s *Service) Update(ctx context.Context, principal, prefix, id string, fn func(obj models.Model) error) (models.Model, error) {
	return s.write(ctx, "UPDATE", prefix, ActionUpdate, principal, func(k *Kind) (*entry, models.Model, error) {
		old, ok := s.lookup(k, id)
		if !ok {
			return nil, nil, notFound("UPDATE", prefix, id)
		}
		obj := s.decodeEntry(k, old)
		if err := fn(obj); err != nil {
			return nil, nil, asModelError(err, "UPDATE", 422, prefix, old.key)
		}
		return old, obj, nil
	})
}

// Save creates or replaces obj (action "save"). It is meant for
// subsystems that own objects, e.g. the plugin host writing a provider.
func (s *Service) Save(ctx context.Context, principal, prefix string, obj models.Model) (models.Model, error) {
	next := attempts(obj)
	return s.write(ctx, "SAVE", prefix, ActionSave, principal, func(k *Kind) (*entry, models.Model, error) {
		obj := next(k)
		if reflect.TypeOf(obj) != reflect.TypeOf(k.newObject()) {
			return nil, nil, &models.Error{Model: prefix, Type: "SAVE", Code: 400,
				Messages: []string{fmt.Sprintf("object of type %T cannot be stored in %s", obj, prefix)}}
		}
		old := s.data[k.Prefix][obj.Key()]
		return old, obj, nil
	})
}

// Delete removes the object with key or <Index>:<value> id and returns it.
func (s *Service) Delete(ctx context.Context, principal, prefix, id string) (models.Model, error) {
	return s.write(ctx, "DELETE", prefix, ActionDelete, principal, func(k *Kind) (*entry, models.Model, error) {
		old, ok := s.lookup(k, id)
		if !ok {
			return nil, nil, notFound("DELETE", prefix, id)
		}
		return old, nil, nil
	})
}

// attempts returns, for each attempt of a write of obj, the object to
// validate: obj itself first, then fresh copies of obj as the caller sent
// it, because validation fills and changes the object it is given (a
// generated key, sealed params).
func attempts(obj models.Model) func(k *Kind) models.Model {
	if obj == nil || reflect.TypeOf(obj).Kind() != reflect.Pointer {
		return func(*Kind) models.Model { return obj }
	}
	sent, err := json.Marshal(obj)
	first := true
	return func(k *Kind) models.Model {
		if first || err != nil {
			first = false
			return obj
		}
		c := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(models.Model)
		if json.Unmarshal(sent, c) != nil {
			return obj
		}
		return c
	}
}

const uuidZero = "00000000-0000-0000-0000-000000000000"

// setKey sets obj's key field through JSON so it works for any kind.
func setKey(k *Kind, obj models.Model, key string) {
	if r, ok := obj.(*models.RawModel); ok {
		(*r)[k.KeyField] = key
		return
	}
	patch, _ := json.Marshal(map[string]string{k.KeyField: key})
	_ = json.Unmarshal(patch, obj)
}

// Render returns the API form of a stored-form object (for example one
// returned by Create), as GET would show it.
func (s *Service) Render(prefix string, obj models.Model, ro RenderOptions) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.kindLocked("GET", prefix)
	if err != nil {
		return nil, err
	}
	c := k.newObject()
	if err := models.Remarshal(obj, c); err != nil {
		return nil, fmt.Errorf("render %s: %w", prefix, err)
	}
	c.Fill()
	e, err := s.makeEntry(k, c)
	if err != nil {
		return nil, err
	}
	return s.rendererLocked(k, ro).render(e)
}
