package auth

import (
	"testing"

	"github.com/provisionhq/provision/models"
)

func TestClaimMatching(t *testing.T) {
	c := models.Claim{Scope: "machines,profiles", Action: "get,action", Specific: "*"}
	cases := []struct {
		scope, action, specific string
		want                    bool
	}{
		{"machines", "get", "abc", true},
		{"profiles", "get", "global", true},
		{"users", "get", "x", false},
		{"machines", "delete", "abc", false},
		{"machines", "action:reset", "abc", true},
		{"machines", "actionx", "abc", false},
	}
	for _, tc := range cases {
		if got := ClaimAllows(c, tc.scope, tc.action, tc.specific); got != tc.want {
			t.Errorf("%v allows %s/%s/%s = %v, want %v", c, tc.scope, tc.action, tc.specific, got, tc.want)
		}
	}
	if !claimContains(models.Claim{Scope: "*", Action: "*", Specific: "*"}, c) {
		t.Error("superuser claim does not contain a narrower one")
	}
	if claimContains(models.Claim{Scope: "machines", Action: "get", Specific: "*"}, c) {
		t.Error("narrow claim contains a wider one")
	}
	if claimContains(models.Claim{Scope: "machines", Action: "*", Specific: "a"}, models.Claim{Scope: "machines", Action: "get", Specific: "*"}) {
		t.Error("specific a contains *")
	}
}

func TestRoles(t *testing.T) {
	cs, err := RoleClaims([]string{"readonly", "machines:update:*"})
	if err != nil {
		t.Fatal(err)
	}
	p := &Principal{Claims: cs}
	if !p.Allows("users", "list", "*") || !p.Allows("machines", "update", "m") || p.Allows("machines", "delete", "m") {
		t.Fatalf("role rights wrong: %v", cs)
	}
	if _, err := RoleClaims([]string{"wizard"}); err == nil {
		t.Fatal("unknown role accepted")
	}
	var nilP *Principal
	if nilP.Allows("a", "b", "c") {
		t.Fatal("nil principal allowed")
	}
}
