package models

import "testing"

// TestErrorStringMatchesDRP pins Error() to the output of DRP's
// models.Error.Error() (digitalrebar/provision models/errors.go) for every
// shape: Model and Key (joined like path.Join), Key only, Model only,
// neither, and zero, one or several messages.
func TestErrorStringMatchesDRP(t *testing.T) {
	for _, c := range []struct {
		name string
		err  Error
		want string
	}{
		{"model and key", Error{Type: "GET", Model: "machines", Key: "m1", Messages: []string{"Not Found"}}, "GET: machines/m1: Not Found"},
		{"slashed key", Error{Type: "GET", Model: "params", Key: "ipmi/address", Messages: []string{"Not Found"}}, "GET: params/ipmi/address: Not Found"},
		{"key with leading slash is cleaned", Error{Type: "GET", Model: "plugin", Key: "/api/v3/x", Messages: []string{"No route"}}, "GET: plugin/api/v3/x: No route"},
		{"key only", Error{Type: "AUTH", Key: "/api/v3/info", Messages: []string{"Bad username or password"}}, "AUTH: /api/v3/info: Bad username or password"},
		{"model only", Error{Type: "CREATE", Model: "machines", Messages: []string{"Empty key not allowed"}}, "CREATE: machines: Empty key not allowed"},
		{"neither", Error{Type: "AUTH", Messages: []string{"Forbidden"}}, "AUTH: Forbidden"},
		{"no message", Error{Type: "DELETE", Model: "machines", Key: "m1"}, "DELETE: machines/m1"},
		{"type only", Error{Type: "plugin"}, "plugin"},
		{"empty", Error{}, ""},
		{"several messages", Error{Type: "ValidationError", Model: "machines", Key: "m1", Messages: []string{"bad Name", "bad Address"}},
			"ValidationError: machines/m1\n  bad Name\n  bad Address"},
		{"several messages, no model", Error{Type: "STORE_ERROR", Messages: []string{"one", "two", "three"}},
			"STORE_ERROR\n  one\n  two\n  three"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%s: Error() = %q, want %q", c.name, got, c.want)
		}
	}
}
