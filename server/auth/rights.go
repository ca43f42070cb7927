package auth

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/objects"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying p, the authenticated caller of an API
// request. Writes of users made with such a context are checked against
// p's rights (see GuardUserRights); writes without one are the server's
// own and are not.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller WithPrincipal put in ctx.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// atoms splits a claim into single scope:action:specific rights, one per
// combination of its comma lists, so a missing right can be named alone
// and a role is covered when each of its rights is, whichever of the
// caller's claims holds it.
func atoms(c models.Claim) []models.Claim {
	split := func(s string) []string {
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	var out []models.Claim
	for _, s := range split(c.Scope) {
		for _, a := range split(c.Action) {
			for _, sp := range split(c.Specific) {
				out = append(out, models.Claim{Scope: s, Action: a, Specific: sp})
			}
		}
	}
	return out
}

// MissingRight returns the first single right (scope:action:specific)
// that roles grant and p's own credentials do not, or "" when p holds
// every right of roles. This is the rule token minting applies: nobody
// hands out a right they do not hold. Superusers hold every right.
func (p *Principal) MissingRight(roles []string) (string, error) {
	claims, err := RoleClaims(roles)
	if err != nil {
		return "", err
	}
	for _, c := range claims {
		for _, a := range atoms(c) {
			if !p.Covers(a) {
				return a.Scope + ":" + a.Action + ":" + a.Specific, nil
			}
		}
	}
	return "", nil
}

// GuardUserRights is the before-change hook of the users kind that keeps
// callers from granting rights they do not hold themselves (issue #9: a
// user allowed only users:update:<self> made itself superuser with a PUT
// of its Roles). On a create or change made by an API caller (ctx from
// WithPrincipal):
//
//   - every role added to Roles must be covered by the caller's own
//     rights (roles kept or removed need nothing: removing is no
//     escalation);
//   - setting a user's PasswordHash hands its password, and so all its
//     rights, to whoever chose it: the caller must hold every right of the
//     user's roles.
//
// A refusal is a 403 naming the missing right. It applies to every route
// that writes users (POST, PUT, PATCH, the password route).
func GuardUserRights(ctx context.Context, _ objects.View, c *objects.Change) error {
	p, ok := PrincipalFrom(ctx)
	if !ok || c.New == nil {
		return nil
	}
	nu, ok := c.New.(*models.User)
	if !ok {
		return nil
	}
	var old *models.User
	if c.Old != nil {
		old, _ = c.Old.(*models.User)
	}
	forbidden := func(msg string) error {
		return &models.Error{Model: "users", Key: nu.Name, Type: "AUTH", Code: http.StatusForbidden, Messages: []string{msg}}
	}
	had := map[string]bool{}
	if old != nil {
		for _, r := range old.Roles {
			had[r] = true
		}
	}
	for _, r := range nu.Roles {
		if had[r] {
			continue
		}
		missing, err := p.MissingRight([]string{r})
		if err != nil {
			return &models.Error{Model: "users", Key: nu.Name, Type: "ValidationError", Code: http.StatusUnprocessableEntity, Messages: []string{err.Error()}}
		}
		if missing != "" {
			return forbidden(fmt.Sprintf("Forbidden: granting role %q to users/%s needs right %s, which %s's own credentials do not have; nobody can grant a right they do not hold",
				r, nu.Name, missing, p.Name))
		}
	}
	if old != nil && !bytes.Equal(old.PasswordHash, nu.PasswordHash) {
		missing, err := p.MissingRight(nu.Roles)
		if err != nil {
			return &models.Error{Model: "users", Key: nu.Name, Type: "ValidationError", Code: http.StatusUnprocessableEntity, Messages: []string{err.Error()}}
		}
		if missing != "" {
			return forbidden(fmt.Sprintf("Forbidden: setting the password of users/%s hands over its rights, and %s's own credentials do not have right %s",
				nu.Name, p.Name, missing))
		}
	}
	return nil
}
