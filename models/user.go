package models

// User is an API user.
type User struct {
	Validation
	Access
	Meta Meta
	Owned
	Bundled
	Partialed
	// Name is the key.
	Name string
	// Description is free text.
	Description string
	// PasswordHash is the slow hash of the password; never returned by the API.
	PasswordHash []byte `json:",omitempty"`
	// Secret is mixed into every token of this user; changing it revokes them.
	Secret string
	// Roles names what the user may do; "superuser" may do everything.
	Roles []string
}

// Prefix implements Model.
func (u *User) Prefix() string { return "users" }

// Key implements Model.
func (u *User) Key() string { return u.Name }

// KeyName implements Model.
func (u *User) KeyName() string { return "Name" }

// Fill implements Model.
func (u *User) Fill() {
	u.Validation.fill()
	u.Meta = fillMeta(u.Meta)
	u.Roles = fillStrings(u.Roles)
}

// UserPassword is the body of PUT /users/<name>/password.
type UserPassword struct {
	// Password is the new clear-text password.
	Password string
}

// UserToken is the answer of GET /users/<name>/token.
type UserToken struct {
	// Token is the bearer token.
	Token string
	// Info describes the issuing server.
	Info Info
}

// Claim is one grant in a token: scope (object prefix), action and specific
// key, each possibly "*" or a comma list.
type Claim struct {
	Scope    string `json:"scope"`
	Action   string `json:"action"`
	Specific string `json:"specific"`
}

// Stat is a named count shown in Info.
type Stat struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Info describes the server (GET /api/v3/info). Its JSON names and types
// are those of DRP's models.Info (v4.6+), so DRP's Go client and drpcli
// decode it: every key DRP marks required is present. pxe_* are ours
// (DRP ignores unknown keys); DRP's License and ClusterState are left out
// (absent keys decode to zero values).
type Info struct {
	Arch                     string   `json:"arch"`
	Os                       string   `json:"os"`
	Version                  string   `json:"version"`
	Id                       string   `json:"id"`
	LocalId                  string   `json:"local_id"`
	HaId                     string   `json:"ha_id"`
	ApiPort                  int      `json:"api_port"`
	FilePort                 int      `json:"file_port"`
	SecureFilePort           int      `json:"secure_file_port"`
	DhcpPort                 int      `json:"dhcp_port"`
	PxePort                  int      `json:"pxe_port"`
	TftpPort                 int      `json:"tftp_port"`
	BinlPort                 int      `json:"binl_port"`
	TftpEnabled              bool     `json:"tftp_enabled"`
	DhcpEnabled              bool     `json:"dhcp_enabled"`
	PxeEnabled               bool     `json:"pxe_enabled"`
	BinlEnabled              bool     `json:"binl_enabled"`
	ProvisionerEnabled       bool     `json:"prov_enabled"`
	SecureProvisionerEnabled bool     `json:"secure_prov_enabled"`
	Address                  string   `json:"address"`
	Manager                  bool     `json:"manager"`
	Stats                    []Stat   `json:"stats"`
	Features                 []string `json:"features"`
	// Scopes maps every claim scope (object prefix) to its actions.
	Scopes map[string]map[string]struct{} `json:"scopes"`
	Errors []string                       `json:"errors"`
	// HaEnabled is false: provisiond has no high-availability mode.
	HaEnabled        bool   `json:"ha_enabled"`
	HaVirtualAddress string `json:"ha_virtual_address"`
	// HaIsActive is true and HaStatus "Up": a standalone server is its own
	// active node, which is what DRP reports for one.
	HaIsActive     bool             `json:"ha_is_active"`
	HaStatus       string           `json:"ha_status"`
	HaActiveId     string           `json:"ha_active_id"`
	HaPassiveState []HaPassiveState `json:"ha_passive_state"`
}

// HaPassiveState is DRP's description of a passive HA node; provisiond
// lists none.
type HaPassiveState struct {
	Id        string `json:"id"`
	Address   string `json:"address"`
	State     string `json:"state"`
	Electable bool   `json:"electable"`
}

// Index describes one indexed field of a collection (GET /indexes).
type Index struct {
	Type      string
	Unique    bool
	Unordered bool
	Regex     bool
}
