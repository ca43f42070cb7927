package api_test

import (
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/auth"
	"github.com/provisionhq/provision/server/servertest"
)

// newUser creates a user with roles and a password (as the admin) and
// returns its Basic credentials.
func newUser(t *testing.T, ts *servertest.Server, name string, roles ...string) string {
	t.Helper()
	mustStatus(t, call(t, ts, "POST", "/api/v3/users", map[string]any{"Name": name, "Roles": roles}, nil), 201, "create user "+name)
	mustStatus(t, call(t, ts, "PUT", "/api/v3/users/"+name+"/password", map[string]any{"Password": name + "-pw"}, nil), 200, "password of "+name)
	return servertest.BasicAuth(name, name+"-pw")
}

// rolesOf returns the stored roles of user name.
func rolesOf(t *testing.T, ts *servertest.Server, name string) []string {
	t.Helper()
	var u models.User
	mustStatus(t, call(t, ts, "GET", "/api/v3/users/"+name, nil, &u), 200, "get user "+name)
	return u.Roles
}

// Issue #9, item 2: a user whose only rights are users:update / patch on
// itself PUT {"Roles":["superuser"]} on itself and got 200. Granting a
// role needs every right of the role, on every route that writes users.
func TestNoSelfGrantedRoles(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	self := newUser(t, ts, "selfish", "users:get,update,patch:selfish")
	want := []string{"users:get,update,patch:selfish"}
	as := func(method, path string, body any, status int, contains ...string) {
		t.Helper()
		resp, raw := servertest.DoAs(t, ts.URL, self, method, path, body)
		wantError(t, resp, raw, status, contains...)
		if got := rolesOf(t, ts, "selfish"); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s %s changed the roles to %v", method, path, got)
		}
	}
	as("PUT", "/api/v3/users/selfish", map[string]any{"Name": "selfish", "Roles": []string{"superuser"}},
		403, `granting role "superuser"`, "needs right *:*:*", "selfish's own credentials do not have")
	as("PUT", "/api/v3/users/selfish", map[string]any{"Name": "selfish", "Roles": append(want, "machines:get,list:*")},
		403, "needs right machines:get:*")
	as("PATCH", "/api/v3/users/selfish", []map[string]any{{"op": "add", "path": "/Roles/-", "value": "superuser"}},
		403, "needs right *:*:*")
	as("PATCH", "/api/v3/users/selfish", []map[string]any{{"op": "replace", "path": "/Roles", "value": []string{"readonly"}}},
		403, `granting role "readonly"`, "needs right")
	// Users have no params: the params routes cannot carry roles.
	as("POST", "/api/v3/users/selfish/params", map[string]any{"Roles": []string{"superuser"}}, 404, "do not have params")
	as("PATCH", "/api/v3/users/selfish/params", []map[string]any{{"op": "add", "path": "/Roles", "value": []string{"superuser"}}}, 404)
	as("POST", "/api/v3/users/selfish/params/Roles", `["superuser"]`, 404)
	// Meta patches are rooted at /Meta.
	as("PATCH", "/api/v3/meta/users/selfish", []map[string]any{{"op": "add", "path": "/../Roles/-", "value": "superuser"}}, 422)
	// Still no machines for selfish.
	resp, raw := servertest.DoAs(t, ts.URL, self, "GET", "/api/v3/machines", nil)
	wantError(t, resp, raw, 403)

	// Changing what grants nothing new still works, and removing roles is
	// no escalation.
	resp, raw = servertest.DoAs(t, ts.URL, self, "PATCH", "/api/v3/users/selfish",
		[]map[string]any{{"op": "replace", "path": "/Description", "value": "mine"}})
	mustStatus(t, resp, 200, "description: "+string(raw))
	mustStatus(t, call(t, ts, "PUT", "/api/v3/users/selfish", map[string]any{"Name": "selfish",
		"Roles": []string{"users:get,update,patch:selfish", "machines:list:*"}}, nil), 200, "admin grants")
	resp, raw = servertest.DoAs(t, ts.URL, self, "PUT", "/api/v3/users/selfish",
		map[string]any{"Name": "selfish", "Roles": want})
	mustStatus(t, resp, 200, "drop a role: "+string(raw))
	if got := rolesOf(t, ts, "selfish"); !reflect.DeepEqual(got, want) {
		t.Fatalf("roles after dropping one: %v", got)
	}

	// The superuser grants anything.
	mustStatus(t, call(t, ts, "PUT", "/api/v3/users/selfish", map[string]any{"Name": "selfish", "Roles": []string{auth.SuperuserRole}}, nil), 200, "admin grants superuser")
	resp, _ = servertest.DoAs(t, ts.URL, self, "GET", "/api/v3/machines", nil)
	mustStatus(t, resp, 200, "selfish as superuser")
}

// A user allowed to create users can only create users within its own
// rights; a restricted token of the superuser grants only what the token
// holds.
func TestCreateAndTokenGrantWithinOwnRights(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	creator := newUser(t, ts, "creator", "users:create,get:*", "machines:get,list:*")
	resp, raw := servertest.DoAs(t, ts.URL, creator, "POST", "/api/v3/users", map[string]any{"Name": "boss", "Roles": []string{"superuser"}})
	wantError(t, resp, raw, 403, `granting role "superuser" to users/boss needs right *:*:*`)
	resp, raw = servertest.DoAs(t, ts.URL, creator, "POST", "/api/v3/users", map[string]any{"Name": "boss", "Roles": []string{"machines:get,list,update:*"}})
	wantError(t, resp, raw, 403, "needs right machines:update:*")
	resp, _ = ts.Do(t, "GET", "/api/v3/users/boss", nil)
	mustStatus(t, resp, 404, "refused user stored")
	resp, raw = servertest.DoAs(t, ts.URL, creator, "POST", "/api/v3/users", map[string]any{"Name": "viewer", "Roles": []string{"machines:list:*"}})
	mustStatus(t, resp, 201, "create within own rights: "+string(raw))

	// A superuser token restricted to users:*:* holds no machine rights,
	// so it cannot hand them out either.
	admin := servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword)
	usersOnly := token(t, ts, admin, servertest.AdminUser, "?scope=users&action=*&specific=*")
	resp, raw = servertest.DoAs(t, ts.URL, servertest.Bearer(usersOnly), "PUT", "/api/v3/users/viewer",
		map[string]any{"Name": "viewer", "Roles": []string{"machines:list:*", "superuser"}})
	wantError(t, resp, raw, 403, "needs right *:*:*", "rocketskates's own credentials")
	if got := rolesOf(t, ts, "viewer"); !reflect.DeepEqual(got, []string{"machines:list:*"}) {
		t.Fatalf("viewer roles %v", got)
	}
}

// Setting a user's password hands over its rights: through PUT/PATCH of
// PasswordHash or the password route, the caller must hold every right of
// that user.
func TestPasswordTakeoverNeedsTheUsersRights(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	helpdesk := newUser(t, ts, "helpdesk", "users:get,update,patch,password:*")
	hash, err := auth.HashPassword("taken-over")
	if err != nil {
		t.Fatal(err)
	}
	resp, raw := servertest.DoAs(t, ts.URL, helpdesk, "PUT", "/api/v3/users/rocketskates",
		map[string]any{"Name": "rocketskates", "Roles": []string{"superuser"}, "PasswordHash": hash})
	wantError(t, resp, raw, 403, "setting the password of users/rocketskates", "right *:*:*")
	resp, raw = servertest.DoAs(t, ts.URL, helpdesk, "PATCH", "/api/v3/users/rocketskates",
		[]map[string]any{{"op": "add", "path": "/PasswordHash", "value": base64.StdEncoding.EncodeToString(hash)}})
	wantError(t, resp, raw, 403, "setting the password of users/rocketskates")
	resp, raw = servertest.DoAs(t, ts.URL, helpdesk, "PUT", "/api/v3/users/rocketskates/password", map[string]any{"Password": "taken-over"})
	wantError(t, resp, raw, 403, "setting the password of users/rocketskates")
	resp, _ = servertest.DoAs(t, ts.URL, servertest.BasicAuth(servertest.AdminUser, "taken-over"), "GET", "/api/v3/info", nil)
	mustStatus(t, resp, 401, "taken-over password")
	resp, _ = ts.Do(t, "GET", "/api/v3/info", nil)
	mustStatus(t, resp, 200, "admin password unchanged")

	// Within its rights the helpdesk still resets passwords, and users
	// still change their own.
	newUser(t, ts, "clerk", "users:get:clerk")
	resp, raw = servertest.DoAs(t, ts.URL, helpdesk, "PUT", "/api/v3/users/clerk/password", map[string]any{"Password": "reset-pw"})
	mustStatus(t, resp, 200, "helpdesk resets a narrower user: "+string(raw))
	clerk := servertest.BasicAuth("clerk", "reset-pw")
	resp, raw = servertest.DoAs(t, ts.URL, clerk, "PUT", "/api/v3/users/clerk/password", map[string]any{"Password": "own-pw"})
	mustStatus(t, resp, 200, "own password: "+string(raw))
}
