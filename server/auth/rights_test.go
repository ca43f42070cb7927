package auth

import (
	"testing"

	"github.com/provisionhq/provision/models"
)

func TestMissingRight(t *testing.T) {
	user := func(roles ...string) *Principal {
		rc, err := RoleClaims(roles)
		if err != nil {
			t.Fatal(err)
		}
		return &Principal{Name: "u", User: true, Claims: rc, roleClaims: rc}
	}
	cases := []struct {
		p     *Principal
		roles []string
		want  string
	}{
		{user(SuperuserRole), []string{SuperuserRole, ReadOnlyRole, "machines:get:m1"}, ""},
		{user("users:update:u"), []string{SuperuserRole}, "*:*:*"},
		{user("users:update:u"), []string{ReadOnlyRole}, "*:get:*"},
		// Rights held by separate claims add up.
		{user("machines:get:*", "machines:list:*"), []string{"machines:get,list:*"}, ""},
		{user("machines:get:*"), []string{"machines:get,list:*"}, "machines:list:*"},
		{user("machines:*:m1"), []string{"machines:get:*"}, "machines:get:*"},
		{user(ReadOnlyRole), []string{"profiles:list:p1"}, ""},
		// A restricted token holds only its own claims.
		{&Principal{Name: "t", User: true, Claims: []models.Claim{{Scope: "users", Action: "*", Specific: "*"}},
			roleClaims: []models.Claim{{Scope: "*", Action: "*", Specific: "*"}}}, []string{"machines:get:*"}, "machines:get:*"},
	}
	for i, c := range cases {
		got, err := c.p.MissingRight(c.roles)
		if err != nil || got != c.want {
			t.Errorf("case %d: MissingRight(%v) = %q, %v; want %q", i, c.roles, got, err, c.want)
		}
	}
	if _, err := user().MissingRight([]string{"bogus"}); err == nil {
		t.Error("an unknown role was accepted")
	}
}
