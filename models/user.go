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

// Info describes the server (GET /api/v3/info).
type Info struct {
	Arch               string   `json:"arch"`
	Os                 string   `json:"os"`
	Version            string   `json:"version"`
	Id                 string   `json:"id"`
	LocalId            string   `json:"local_id"`
	ApiPort            int      `json:"api_port"`
	FilePort           int      `json:"file_port"`
	DhcpPort           int      `json:"dhcp_port"`
	PxePort            int      `json:"pxe_port"`
	TftpPort           int      `json:"tftp_port"`
	BinlPort           int      `json:"binl_port"`
	TftpEnabled        bool     `json:"tftp_enabled"`
	DhcpEnabled        bool     `json:"dhcp_enabled"`
	PxeEnabled         bool     `json:"pxe_enabled"`
	BinlEnabled        bool     `json:"binl_enabled"`
	ProvisionerEnabled bool     `json:"prov_enabled"`
	Address            string   `json:"address"`
	Manager            bool     `json:"manager"`
	Stats              []Stat   `json:"stats"`
	Features           []string `json:"features"`
	Errors             []string `json:"errors"`
}

// Index describes one indexed field of a collection (GET /indexes).
type Index struct {
	Type      string
	Unique    bool
	Unordered bool
	Regex     bool
}
