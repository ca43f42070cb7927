// Package auth authenticates API requests and mints tokens. Users are
// objects of the "users" kind with bcrypt password hashes; tokens are JWTs
// (HS256) signed with a key kept in the base directory and carry DRP claims
// {scope, action, specific}. A user's tokens are revoked by changing the
// user's Secret; tokens minted for processes (plugins) are revoked by the
// function MintToken returns and never outlive the server process.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/objects"
	"golang.org/x/crypto/bcrypt"
)

// KeyFileName is the token signing key file inside the base directory.
const KeyFileName = "token.key"

// SuperuserRole grants every right.
const SuperuserRole = "superuser"

// ReadOnlyRole grants get and list on everything.
const ReadOnlyRole = "readonly"

// MaxTTL bounds the lifetime of any token.
const MaxTTL = 1000000 * time.Hour

// DefaultTTL is the lifetime of a user token when none is asked for.
const DefaultTTL = time.Hour

// Principal is an authenticated caller and its rights.
type Principal struct {
	// Name is the user name or the principal a token was minted for.
	Name string
	// User is true when Name is a user (its roles also bound the rights).
	// When false the caller holds a token minted for a process (a plugin
	// instance's RS_TOKEN or a define token, see MintToken), which may
	// never act on users nor mint tokens.
	User bool
	// ViaPassword is true when the request proved the user's password
	// (Basic auth), as opposed to presenting a possibly restricted token.
	ViaPassword bool
	// Claims are the rights of the credentials.
	Claims []models.Claim
	// Expires is when the presented token expires (zero for passwords);
	// tokens minted with it never outlive it.
	Expires time.Time
	// roleClaims are the user's current role rights (users only).
	roleClaims []models.Claim
}

// Allows reports whether the principal may perform action on scope/specific.
func (p *Principal) Allows(scope, action, specific string) bool {
	return p.Denial(scope, action, specific) == ""
}

// Denial returns why the principal may not perform action on
// scope/specific, as a message for a 403 answer, or "" when it may.
func (p *Principal) Denial(scope, action, specific string) string {
	if p == nil {
		return "Forbidden: not authenticated"
	}
	if !p.User && scope == "users" && action != "get" && action != "list" {
		// Process tokens carry broad claims (a plugin manages machines,
		// profiles, params, its own object types...), but users are the
		// root of every right: a plugin that could create users, change
		// passwords or mint user tokens could keep superuser rights
		// after its own token is revoked.
		return fmt.Sprintf("Forbidden: %s on users: %s holds a token minted for a plugin or define, which cannot mint tokens or change users",
			action, p.Name)
	}
	if !anyAllows(p.Claims, scope, action, specific) ||
		(p.User && !anyAllows(p.roleClaims, scope, action, specific)) {
		return fmt.Sprintf("Forbidden: %s on %s", action, scope)
	}
	return ""
}

// Covers reports whether the principal's credentials grant at least
// everything c grants, so a token with claim c would not widen them.
func (p *Principal) Covers(c models.Claim) bool {
	if p == nil {
		return false
	}
	in := func(cs []models.Claim) bool {
		for _, o := range cs {
			if claimContains(o, c) {
				return true
			}
		}
		return false
	}
	return in(p.Claims) && (!p.User || in(p.roleClaims))
}

func anyAllows(cs []models.Claim, scope, action, specific string) bool {
	for _, c := range cs {
		if ClaimAllows(c, scope, action, specific) {
			return true
		}
	}
	return false
}

func listHas(list, v string, prefixOK bool) bool {
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "*" || item == v {
			return true
		}
		// "action" grants "action:<name>", "update" grants "update:/Field".
		if prefixOK && strings.HasPrefix(v, item+":") {
			return true
		}
	}
	return false
}

// ClaimAllows reports whether one claim grants action on scope/specific.
// Each claim field is "*" or a comma list; an action item also grants its
// sub-actions ("action" grants "action:reset").
func ClaimAllows(c models.Claim, scope, action, specific string) bool {
	return listHas(c.Scope, scope, false) && listHas(c.Action, action, true) && listHas(c.Specific, specific, false)
}

// claimContains reports whether outer grants at least everything inner does.
func claimContains(outer, inner models.Claim) bool {
	sub := func(o, i string, prefixOK bool) bool {
		if listHas(o, "*", false) && strings.TrimSpace(o) == "*" {
			return true
		}
		for _, item := range strings.Split(i, ",") {
			item = strings.TrimSpace(item)
			if item == "*" || !listHas(o, item, prefixOK) {
				return false
			}
		}
		return true
	}
	return sub(outer.Scope, inner.Scope, false) && sub(outer.Action, inner.Action, true) && sub(outer.Specific, inner.Specific, false)
}

// RoleClaims returns the rights of roles: "superuser" (everything),
// "readonly" (get and list on everything), or a literal claim written
// "scope:action:specific" (e.g. "machines:get,list:*").
func RoleClaims(roles []string) ([]models.Claim, error) {
	var out []models.Claim
	for _, r := range roles {
		switch r {
		case SuperuserRole:
			out = append(out, models.Claim{Scope: "*", Action: "*", Specific: "*"})
		case ReadOnlyRole:
			out = append(out, models.Claim{Scope: "*", Action: "get,list", Specific: "*"})
		default:
			parts := strings.SplitN(r, ":", 3)
			if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
				return nil, fmt.Errorf("unknown role %q (want superuser, readonly or scope:action:specific)", r)
			}
			out = append(out, models.Claim{Scope: parts[0], Action: parts[1], Specific: parts[2]})
		}
	}
	return out, nil
}

// HashPassword returns the bcrypt hash of password.
func HashPassword(password string) ([]byte, error) {
	if password == "" {
		return nil, errors.New("password must not be empty")
	}
	if len(password) > 72 {
		return nil, errors.New("password must be at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// Service authenticates requests and mints tokens.
type Service struct {
	objs *objects.Service
	key  []byte

	// live holds the ids of minted process tokens still valid (id →
	// struct{}), and parsed the tokens whose signature was verified
	// (token → *tokenClaims), parsedN counting its entries. Every API
	// request reads both, so they are sync.Maps rather than maps under a
	// mutex that all requests would take turns on.
	live    sync.Map
	parsed  sync.Map
	parsedN atomic.Int64

	mu    sync.Mutex // guards basic
	basic map[[32]byte]time.Time
}

// maxParsedCache bounds the cache of verified token signatures.
const maxParsedCache = 4096

// tokenClaims is the JWT payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	// Claims are the DRP rights of the token.
	Claims []models.Claim `json:"claims"`
	// Kind is "user" or "minted".
	Kind string `json:"kind"`
	// Gen binds a user token to the user's Secret.
	Gen string `json:"gen,omitempty"`
}

// New loads (or creates, mode 0600) the signing key in baseDir, and adds
// GuardUserRights to objs' users kind.
func New(baseDir string, objs *objects.Service) (*Service, error) {
	path := filepath.Join(baseDir, KeyFileName)
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate token key: %w", err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, key, 0o600); err != nil {
			return nil, fmt.Errorf("write token key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("install token key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read token key: %w", err)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("token key %s is too short (%d bytes)", path, len(key))
	}
	// No API caller may grant (or take over through a password) rights
	// it does not hold itself.
	objs.OnBeforeChange("users", GuardUserRights)
	return &Service{objs: objs, key: key, basic: map[[32]byte]time.Time{}}, nil
}

func secretGen(name, secret string) string {
	sum := sha256.Sum256([]byte("provision-token-gen\x00" + name + "\x00" + secret))
	return hex.EncodeToString(sum[:12])
}

func randomID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b)
}

func (a *Service) sign(c *tokenClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

func clampTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return DefaultTTL
	}
	if ttl > MaxTTL {
		return MaxTTL
	}
	return ttl
}

func (a *Service) user(ctx context.Context, name string) (*models.User, error) {
	obj, err := a.objs.Get(ctx, "users", name)
	if err != nil {
		return nil, err
	}
	u, ok := obj.(*models.User)
	if !ok {
		return nil, fmt.Errorf("users/%s is not a user", name)
	}
	return u, nil
}

// MintUserToken issues a token for user name on behalf of caller. claims
// restricts it (nil: all the user's role rights); each claim must be
// within the user's rights and within the caller's own, so no credential
// can be turned into a wider one. Process (non-user) callers cannot mint
// tokens at all, and a token minted by a token holder expires no later
// than the caller's token. caller nil is the server itself.
func (a *Service) MintUserToken(ctx context.Context, caller *Principal, name string, claims []models.Claim, ttl time.Duration) (string, error) {
	forbidden := func(msg string) error {
		return &models.Error{Model: "users", Key: name, Type: "GET", Code: 403, Messages: []string{msg}}
	}
	if caller != nil && !caller.User {
		return "", forbidden(fmt.Sprintf("Forbidden: token on users: %s holds a token minted for a plugin or define, which cannot mint tokens", caller.Name))
	}
	u, err := a.user(ctx, name)
	if err != nil {
		return "", err
	}
	rc, err := RoleClaims(u.Roles)
	if err != nil {
		return "", err
	}
	if claims == nil {
		claims = rc
	}
	for _, c := range claims {
		ok := false
		for _, r := range rc {
			if claimContains(r, c) {
				ok = true
				break
			}
		}
		if !ok {
			return "", forbidden(fmt.Sprintf("claim %s:%s:%s exceeds the user's rights", c.Scope, c.Action, c.Specific))
		}
		if caller != nil && !caller.Covers(c) {
			return "", forbidden(fmt.Sprintf("claim %s:%s:%s exceeds the rights of the caller's own credentials; ask for a narrower token (scope, action, specific or roles)",
				c.Scope, c.Action, c.Specific))
		}
	}
	now := time.Now()
	exp := now.Add(clampTTL(ttl))
	if caller != nil && !caller.Expires.IsZero() && caller.Expires.Before(exp) {
		exp = caller.Expires
	}
	return a.sign(&tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: name, IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp), ID: randomID()},
		Claims: claims, Kind: "user", Gen: secretGen(u.Name, u.Secret),
	})
}

// MintToken issues a token for a non-user principal (e.g. a plugin
// instance) with exactly claims. It stays valid until ttl passes, revoke is
// called, or the server process ends, whichever comes first. Whatever its
// claims, such a token can never mint tokens nor create, change or delete
// users (see Principal.Denial): a process cannot launder its token into a
// user token that would outlive the revocation.
func (a *Service) MintToken(ctx context.Context, principal string, claims []models.Claim, ttl time.Duration) (string, func(), error) {
	if principal == "" {
		return "", nil, errors.New("mint token: empty principal")
	}
	id := randomID()
	now := time.Now()
	tok, err := a.sign(&tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: principal, IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(clampTTL(ttl))), ID: id},
		Claims: append([]models.Claim{}, claims...), Kind: "minted",
	})
	if err != nil {
		return "", nil, err
	}
	a.live.Store(id, struct{}{})
	revoke := func() { a.live.Delete(id) }
	return tok, revoke, nil
}

func unauthorized(msg string) *models.Error {
	return &models.Error{Type: "AUTH", Code: 401, Messages: []string{msg}}
}

// VerifyToken checks a bearer token and returns its principal.
// Signatures are verified once per token and cached; expiry and revocation
// are checked on every call.
func (a *Service) VerifyToken(ctx context.Context, tok string) (*Principal, *models.Error) {
	var c *tokenClaims
	v, cached := a.parsed.Load(tok)
	if cached {
		c = v.(*tokenClaims)
	} else {
		c = &tokenClaims{}
		_, err := jwt.ParseWithClaims(tok, c, func(t *jwt.Token) (any, error) { return a.key, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if err != nil {
			return nil, unauthorized("Invalid or expired token")
		}
		if a.parsedN.Load() >= maxParsedCache {
			// Start over, as the map did (the bound is approximate
			// under concurrent stores).
			a.parsed.Clear()
			a.parsedN.Store(0)
		}
		if _, loaded := a.parsed.LoadOrStore(tok, c); !loaded {
			a.parsedN.Add(1)
		}
	}
	if cached && (c.ExpiresAt == nil || !time.Now().Before(c.ExpiresAt.Time)) {
		return nil, unauthorized("Invalid or expired token")
	}
	switch c.Kind {
	case "minted":
		if _, ok := a.live.Load(c.ID); !ok {
			return nil, unauthorized("Token revoked")
		}
		return &Principal{Name: c.Subject, Claims: c.Claims, Expires: c.ExpiresAt.Time}, nil
	case "user":
		var gen string
		var rc []models.Claim
		var rerr error
		found := a.objs.Peek("users", c.Subject, func(obj models.Model) {
			if u, ok := obj.(*models.User); ok {
				gen = secretGen(u.Name, u.Secret)
				rc, rerr = RoleClaims(u.Roles)
			}
		})
		if !found {
			return nil, unauthorized("Token user no longer exists")
		}
		if gen != c.Gen {
			return nil, unauthorized("Token revoked")
		}
		if rerr != nil {
			return nil, unauthorized("User has invalid roles")
		}
		return &Principal{Name: c.Subject, User: true, Claims: c.Claims, Expires: c.ExpiresAt.Time, roleClaims: rc}, nil
	}
	return nil, unauthorized("Invalid token")
}

// maxBasicCache bounds the cache of verified Basic credentials.
const maxBasicCache = 1024

// basicTTL is how long a verified Basic credential skips bcrypt.
const basicTTL = 5 * time.Minute

// VerifyPassword checks name/password and returns the user's principal.
// Successful checks are remembered briefly (keyed by a hash of the
// credentials and the stored hash) so Basic auth does not pay bcrypt on
// every request.
func (a *Service) VerifyPassword(ctx context.Context, name, password string) (*Principal, *models.Error) {
	u, err := a.user(ctx, name)
	if err != nil || len(u.PasswordHash) == 0 {
		// Spend comparable time so user names cannot be probed by timing.
		_ = bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte(password))
		return nil, unauthorized("Bad username or password")
	}
	ck := sha256.Sum256([]byte(name + "\x00" + password + "\x00" + string(u.PasswordHash)))
	a.mu.Lock()
	t, cached := a.basic[ck]
	a.mu.Unlock()
	if !cached || time.Since(t) > basicTTL {
		if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(password)) != nil {
			return nil, unauthorized("Bad username or password")
		}
		a.mu.Lock()
		if len(a.basic) >= maxBasicCache {
			a.basic = map[[32]byte]time.Time{}
		}
		a.basic[ck] = time.Now()
		a.mu.Unlock()
	}
	rc, err := RoleClaims(u.Roles)
	if err != nil {
		return nil, unauthorized("User has invalid roles")
	}
	return &Principal{Name: u.Name, User: true, ViaPassword: true, Claims: rc, roleClaims: rc}, nil
}

// dummyHash is a bcrypt hash (cost bcrypt.DefaultCost) of "not a real
// password", compared against when the user does not exist so that the
// answer takes as long as for a real user. It is a constant rather than
// computed at package init: init runs in every start of this executable,
// including each plugin sandbox helper (a re-exec of provisiond per plugin
// process), where one bcrypt hash was most of the helper's start-up time.
const dummyHash = "$2a$10$cO3yqWU346e4hhLnINvdbe4E3gvH1WucUSbkOH/Dgi9VHsb2GJmYG"

// Authenticate reads the credentials of r: "Authorization: Bearer <token>",
// "Authorization: Basic ...", or, when allowQuery is true (websockets), a
// ?token= query parameter holding a token or "user:password".
func (a *Service) Authenticate(ctx context.Context, r *http.Request, allowQuery bool) (*Principal, *models.Error) {
	h := r.Header.Get("Authorization")
	switch {
	case h != "":
		scheme, rest, _ := strings.Cut(h, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToLower(scheme) {
		case "bearer":
			return a.VerifyToken(ctx, rest)
		case "basic":
			buf, err := base64.StdEncoding.DecodeString(rest)
			if err != nil {
				return nil, unauthorized("Malformed Basic credentials")
			}
			name, pw, ok := strings.Cut(string(buf), ":")
			if !ok {
				return nil, unauthorized("Malformed Basic credentials")
			}
			return a.VerifyPassword(ctx, name, pw)
		}
		return nil, unauthorized("Unsupported Authorization scheme " + scheme)
	case allowQuery && (r.URL.Query().Get("token") != "" || r.URL.Query().Get("Token") != ""):
		tok := r.URL.Query().Get("token")
		if tok == "" {
			tok = r.URL.Query().Get("Token")
		}
		if name, pw, ok := strings.Cut(tok, ":"); ok {
			return a.VerifyPassword(ctx, name, pw)
		}
		return a.VerifyToken(ctx, tok)
	}
	return nil, unauthorized("No authentication")
}

// SetPassword stores a new password for user name.
func (a *Service) SetPassword(ctx context.Context, principal, name, password string) error {
	h, err := HashPassword(password)
	if err != nil {
		return &models.Error{Model: "users", Key: name, Type: "ValidationError", Code: 422, Messages: []string{err.Error()}}
	}
	_, err = a.objs.Update(ctx, principal, "users", name, func(obj models.Model) error {
		obj.(*models.User).PasswordHash = h
		return nil
	})
	return err
}

// UsersKind is the users collection: PasswordHash and Secret are never
// shown and are carried over on updates that leave them empty; a new user
// gets a random Secret.
func UsersKind() objects.Kind {
	return objects.Kind{
		Prefix: "users", KeyField: "Name",
		New:     func() models.Model { return &models.User{} },
		Indexes: map[string]models.Index{"Name": {Type: "string", Unique: true, Regex: true}, "Description": {Type: "string", Regex: true}},
		Prepare: func(v objects.View, old, obj models.Model) error {
			u := obj.(*models.User)
			if old == nil {
				if u.Secret == "" {
					u.Secret = objects.RandomSecret()
				}
				return nil
			}
			o := old.(*models.User)
			if len(u.PasswordHash) == 0 {
				u.PasswordHash = o.PasswordHash
			}
			if u.Secret == "" {
				u.Secret = o.Secret
			}
			return nil
		},
		Validate: func(v objects.View, obj models.Model) error {
			u := obj.(*models.User)
			if !models.NameRE.MatchString(u.Name) {
				return fmt.Errorf("Invalid Name `%s`", u.Name)
			}
			_, err := RoleClaims(u.Roles)
			return err
		},
		Sanitize: func(obj models.Model) {
			u := obj.(*models.User)
			u.PasswordHash = nil
			u.Secret = ""
		},
	}
}
