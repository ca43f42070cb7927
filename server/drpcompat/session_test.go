package drpcompat

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// drpInfo mirrors DRP's models.Info at the newest version in the index
// (models/info.go with ClusterState, v4.6+): the JSON names and Go types
// DRP's client decodes /api/v3/info and UserToken.Info into. A field of
// another JSON type than these would make Client.Info() fail.
type drpInfo struct {
	Arch                     string `json:"arch"`
	Os                       string `json:"os"`
	Version                  string `json:"version"`
	Id                       string `json:"id"`
	LocalId                  string `json:"local_id"`
	HaId                     string `json:"ha_id"`
	ApiPort                  int    `json:"api_port"`
	FilePort                 int    `json:"file_port"`
	SecureFilePort           int    `json:"secure_file_port"`
	DhcpPort                 int    `json:"dhcp_port"`
	BinlPort                 int    `json:"binl_port"`
	TftpPort                 int    `json:"tftp_port"`
	TftpEnabled              bool   `json:"tftp_enabled"`
	DhcpEnabled              bool   `json:"dhcp_enabled"`
	BinlEnabled              bool   `json:"binl_enabled"`
	ProvisionerEnabled       bool   `json:"prov_enabled"`
	SecureProvisionerEnabled bool   `json:"secure_prov_enabled"`
	Address                  net.IP `json:"address"`
	Manager                  bool   `json:"manager"`
	Stats                    []struct {
		Name  string
		Count int
	} `json:"stats"`
	Features         []string                       `json:"features"`
	Scopes           map[string]map[string]struct{} `json:"scopes"`
	License          json.RawMessage                // LicenseBundle: a struct
	Errors           []string                       `json:"errors"`
	HaEnabled        bool                           `json:"ha_enabled"`
	HaVirtualAddress string                         `json:"ha_virtual_address"`
	HaIsActive       bool                           `json:"ha_is_active"`
	HaStatus         string                         `json:"ha_status"`
	HaActiveId       string                         `json:"ha_active_id"`
	HaPassiveState   []*struct {
		Id        string `json:"id"`
		Address   string `json:"address"`
		State     string `json:"state"`
		Electable bool   `json:"electable"`
	} `json:"ha_passive_state"`
	ClusterState json.RawMessage // ClusterState: a struct
}

// drpInfoRequired lists the keys DRP's models.Info marks "required: true"
// (plus features and scopes, which its Fill always sets).
func drpInfoRequired() []string {
	return []string{"arch", "os", "version", "id", "local_id", "ha_id", "api_port", "file_port", "secure_file_port",
		"dhcp_port", "binl_port", "tftp_port", "tftp_enabled", "dhcp_enabled", "binl_enabled", "prov_enabled",
		"secure_prov_enabled", "address", "manager", "stats", "features", "scopes", "errors", "ha_is_active", "ha_status"}
}

// checkDRPInfo decodes raw like DRP's client and checks every required key
// is present and the values a DRP client uses make sense.
func checkDRPInfo(t *testing.T, raw []byte, apiPort, filePort int) drpInfo {
	t.Helper()
	var info drpInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("DRP's models.Info cannot decode our info %s: %v", raw, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range drpInfoRequired() {
		if _, ok := keys[k]; !ok {
			t.Errorf("info lacks DRP's required key %q: %s", k, raw)
		}
	}
	if info.Version == "" || info.Id == "" || info.LocalId == "" || info.Arch == "" || info.Os == "" {
		t.Errorf("info identity fields empty: %+v", info)
	}
	if info.ApiPort != apiPort || info.FilePort != filePort {
		t.Errorf("info ports api %d file %d, want %d %d", info.ApiPort, info.FilePort, apiPort, filePort)
	}
	// Client.File builds http://<address>:<file_port>/... from these.
	if info.Address == nil || info.Address.IsUnspecified() {
		t.Errorf("info address %q is not an address DRP's Client.File can dial", info.Address)
	}
	if !info.HaIsActive || info.HaStatus != "Up" {
		t.Errorf("a standalone server is its own active node: ha_is_active %v ha_status %q", info.HaIsActive, info.HaStatus)
	}
	if info.Stats == nil || info.Features == nil || info.Errors == nil || info.Scopes == nil {
		t.Errorf("info lists must be [] / {} as DRP's Fill makes them, not null: %s", raw)
	}
	return info
}

// TestSessionSetup mirrors api.UserSession/UserSessionToken (api/client.go):
// one GET /api/v3/users/<user>/token with an explicit Basic header and no
// query, the UserToken decoded, then Bearer on every request; the refresh
// (Client.reauth: ?ttl=600 with the bearer token); TokenSession (a token
// and no request); the headers R.Do adds; and Client.Info().
func TestSessionSetup(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c, err := userSession(t, ts.URL, servertest.AdminUser, ts.AdminPassword)
	if err != nil {
		t.Fatalf("UserSession: %v", err)
	}
	first := c.exchanges()[0]
	if first.Method != "GET" || first.URL != ts.URL+"/api/v3/users/rocketskates/token" {
		t.Fatalf("UserSession sent %s %s", first.Method, first.URL)
	}
	if !strings.HasPrefix(first.ReqHeader.Get("Authorization"), "Basic ") || first.ReqHeader.Get("Accept") != "application/json" {
		t.Fatalf("UserSession headers %v", first.ReqHeader)
	}
	if first.Status != 200 || c.token == "" {
		t.Fatalf("token answer %d %s", first.Status, first.Body)
	}
	var ut struct {
		Token string
		Info  json.RawMessage
	}
	_ = json.Unmarshal(first.Body, &ut)
	apiPort := ts.Server.Info(t.Context()).ApiPort
	filePort := ts.Server.Info(t.Context()).FilePort
	checkDRPInfo(t, ut.Info, apiPort, filePort)

	// Client.Info(): GET /api/v3/info with the bearer token, traced the
	// way Client.Trace/TraceToken make R.Do send X-Log-Request and
	// X-Log-Token.
	c.traceLvl, c.traceToken = "debug", "trace-123"
	var info drpInfo
	c.req().urlFor("info").mustDo(t, &info)
	last := c.last()
	if last.ReqHeader.Get("Authorization") != "Bearer "+c.token || last.ReqHeader.Get("X-Log-Request") != "debug" ||
		last.ReqHeader.Get("X-Log-Token") != "trace-123" {
		t.Fatalf("R.Do headers %v", last.ReqHeader)
	}
	checkDRPInfo(t, last.Body, apiPort, filePort)
	c.traceLvl, c.traceToken = "", ""

	// The 300 s refresh asks for a 600 s token with the current token.
	// Deliberate difference from DRP: a token minted with a token expires
	// no later than the token that minted it (see readme-server-notes), so
	// the refresh succeeds but cannot stretch the session beyond the first
	// token's hour; when it finally fails, DRP's client falls back to Basic
	// auth, which we honour (next step).
	tok2, err := c.reauth()
	if err != nil || tok2 == "" {
		t.Fatalf("reauth: %v", err)
	}
	if q := c.last().URL; !strings.HasSuffix(q, "/api/v3/users/rocketskates/token?ttl=600") {
		t.Fatalf("reauth URL %s", q)
	}
	if _, err := userSession(t, ts.URL, servertest.AdminUser, ts.AdminPassword); err != nil {
		t.Fatalf("Basic fallback of the refresh: %v", err)
	}

	// TokenSession with the refreshed token works for any call.
	tc := tokenSession(t, ts.URL, tok2)
	var list []map[string]any
	tc.req().urlFor("machines").mustDo(t, &list)
	if list == nil {
		t.Fatal("machines list decoded as null")
	}

	// Wrong credentials: a models.Error DRP's client can decode (JSON
	// content type), for both session kinds.
	if _, err := userSession(t, ts.URL, servertest.AdminUser, "wrong"); err == nil {
		t.Fatal("UserSession with a wrong password succeeded")
	} else if e := asDRPError(t, err, http.StatusUnauthorized); e.Type != "AUTH" {
		t.Fatalf("bad password error %+v", e)
	}
	bad := tokenSession(t, ts.URL, "not-a-token")
	err = bad.req().urlFor("machines").do(&list)
	asDRPError(t, err, http.StatusUnauthorized)
}

// TestErrorDecoding mirrors how R.Do decodes failures (api/client.go):
// status >= 400 with a JSON content type becomes a models.Error whose
// Error() is what drpcli prints (models/errors.go). The recorded DRP
// strings come from drp-protocol §5 (golden CLI output).
func TestErrorDecoding(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	var m map[string]any
	err := c.req().urlFor("machines", "nope").do(&m)
	e := asDRPError(t, err, 404)
	if got := e.Error(); got != "GET: machines/nope: Not Found" {
		t.Fatalf("drpcli would print %q", got)
	}
	err = c.req().urlFor("plugins", "john").do(&m)
	if got := asDRPError(t, err, 404).Error(); got != "GET: plugins/john: Not Found" {
		t.Fatalf("drpcli would print %q", got)
	}
	err = c.req().del().urlFor("plugins", "i-woman").do(&m)
	if got := asDRPError(t, err, 404).Error(); got != "DELETE: plugins/i-woman: Not Found" {
		t.Fatalf("drpcli would print %q", got)
	}
	// Unknown object type: DRP answers "No route" with the URL as Key.
	err = c.req().urlFor("freds", "john").do(&m)
	if got := asDRPError(t, err, 404).Error(); got != "GET: /api/v3/freds/john: No route" {
		t.Fatalf("drpcli would print %q", got)
	}
	// Create without a key, and a duplicate (drp-protocol §5.1).
	err = c.req().post(map[string]any{"Provider": "x"}).urlFor("plugins").do(&m)
	if got := asDRPError(t, err, 400).Error(); got != "CREATE: plugins: Empty key not allowed" {
		t.Fatalf("create without name: %q", got)
	}
	c.req().post(map[string]any{"Name": "i-woman", "Provider": "incrementer"}).urlFor("plugins").mustDo(t, &m)
	err = c.req().post(map[string]any{"Name": "i-woman", "Provider": "incrementer"}).urlFor("plugins").do(&m)
	if got := asDRPError(t, err, 409).Error(); got != "CREATE: plugins/i-woman: already exists" {
		t.Fatalf("duplicate create: %q", got)
	}
}

// adminToken mints a token for the admin the way UserSession does.
func adminToken(t *testing.T, ts *servertest.Server) string {
	t.Helper()
	c, err := userSession(t, ts.URL, servertest.AdminUser, ts.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return c.token
}

// TestInfoAddressOfWildcardBind: with the API bound to 0.0.0.0, /info
// still reports a dialable IP (DRP reports the default route's source
// address), because DRP's Client.File builds its static URLs from it.
func TestInfoAddressOfWildcardBind(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.APIAddr = "0.0.0.0" }})
	url := strings.Replace(ts.URL, "0.0.0.0", "127.0.0.1", 1)
	c := tokenSession(t, url, adminToken(t, &servertest.Server{URL: url, AdminPassword: ts.AdminPassword}))
	var raw json.RawMessage
	c.req().urlFor("info").mustDo(t, &raw)
	info := ts.Server.Info(t.Context())
	checkDRPInfo(t, raw, info.ApiPort, info.FilePort)
}
