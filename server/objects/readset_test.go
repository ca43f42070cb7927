package objects

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// newRaceService is newGatedService with the gate off while setup runs
// (no Txn is held), then on for machine writes.
func newRaceService(t *testing.T, setup func(s *Service)) (*Service, *gatedStore) {
	t.Helper()
	s, g, _ := newGatedService(t)
	g.bucket = "-" // no such bucket: setup writes go through
	setup(s)
	g.bucket = "machines" // before any goroutine of the test writes
	return s, g
}

func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func wantCode(err error, code int, text string) bool {
	var me *models.Error
	return errors.As(err, &me) && me.Code == code && strings.Contains(me.Error(), text)
}

// TestProfileDeleteRacesMachineReference: a machine update that adds a
// profile is validated (the profile exists) and its commit is in flight
// when a delete of that profile validates (no machine uses it yet in the
// cache). Both must not commit: the delete lists machines, a read the
// store cannot compare, so it validates again once the machine write is
// applied and refuses with DRP's 409. No machine is left referring to a
// missing profile.
func TestProfileDeleteRacesMachineReference(t *testing.T) {
	var machine string
	validated := make(chan struct{}, 4)
	s, g := newRaceService(t, func(s *Service) {
		ctx := t.Context()
		if _, err := s.Create(ctx, "test", "profiles", &models.Profile{Name: "p1"}); err != nil {
			t.Fatal(err)
		}
		m, err := s.Create(ctx, "test", "machines", &models.Machine{Name: "m1"})
		if err != nil {
			t.Fatal(err)
		}
		machine = m.Key()
		// Tells the test each time the profile delete has been validated.
		s.OnBeforeChange("profiles", func(ctx context.Context, v View, c *Change) error {
			if c.Action == ActionDelete {
				validated <- struct{}{}
			}
			return nil
		})
	})
	ctx := t.Context()
	upd := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, "test", "machines", machine, func(obj models.Model) error {
			obj.(*models.Machine).Profiles = []string{"p1"}
			return nil
		})
		upd <- err
	}()
	waitEntered(t, g) // the update is validated, its commit held
	del := make(chan error, 1)
	go func() {
		_, err := s.Delete(ctx, "test", "profiles", "p1")
		del <- err
	}()
	await(t, validated, "the delete's validation") // against a cache without the update
	close(g.gate)
	updErr, delErr := await(t, upd, "the update"), await(t, del, "the delete")
	switch {
	case updErr == nil && wantCode(delErr, 409, "Profile p1 is in use by machines/"+machine):
	case delErr == nil && wantCode(updErr, 422, "Profile p1 does not exist"):
	default:
		t.Fatalf("update: %v; delete: %v; want exactly one to fail with DRP's error", updErr, delErr)
	}
	m, err := s.Get(ctx, "machines", machine)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.(*models.Machine).Profiles {
		if _, err := s.Get(ctx, "profiles", p); err != nil {
			t.Fatalf("machine refers to missing profile %s", p)
		}
	}
}

// TestParamDefinitionChangeRacesParamWrite: a machine param write is
// validated against the param's definition (or its absence) and its
// commit is in flight when the definition changes. The write conflicts
// (its commit compares the definition it read), is validated again
// against the new definition, and is refused; the machine keeps no value
// its definition rejects.
func TestParamDefinitionChangeRacesParamWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before *models.Param // nil: no definition when the write validates
	}{
		{"changed", &models.Param{Name: "p", Schema: map[string]any{"type": "integer"}}},
		{"created", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var machine string
			s, g := newRaceService(t, func(s *Service) {
				ctx := t.Context()
				if tc.before != nil {
					if _, err := s.Create(ctx, "test", "params", tc.before); err != nil {
						t.Fatal(err)
					}
				}
				m, err := s.Create(ctx, "test", "machines", &models.Machine{Name: "m1"})
				if err != nil {
					t.Fatal(err)
				}
				machine = m.Key()
			})
			ctx := t.Context()
			set := make(chan error, 1)
			go func() {
				_, err := s.SetParam(ctx, "test", "machines", machine, "p", 5)
				set <- err
			}()
			waitEntered(t, g) // validated against the old definition, commit held
			def := &models.Param{Name: "p", Schema: map[string]any{"type": "string"}}
			var err error
			if tc.before != nil {
				_, err = s.Replace(ctx, "test", "params", "p", def)
			} else {
				_, err = s.Create(ctx, "test", "params", def)
			}
			if err != nil {
				t.Fatal(err)
			}
			close(g.gate)
			if err := await(t, set, "the param write"); !wantCode(err, 422, "Invalid Parameter: p") {
				t.Fatalf("param write against a changed definition: %v; want DRP's 422", err)
			}
			params, err := s.GetParams(ctx, "machines", machine, ParamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := params["p"]; ok {
				t.Fatalf("machine holds p=%v, which its definition rejects", v)
			}
		})
	}
}

// TestProfileDeletesAndReferencesStayConsistent races, for each of many
// profiles, its delete against a machine update adding it (no gate: any
// interleaving the scheduler picks). However they interleave, no machine
// ends up referring to a deleted profile.
func TestProfileDeletesAndReferencesStayConsistent(t *testing.T) {
	s := newTestService(t, Limits{})
	ctx := t.Context()
	const n = 24
	machines := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("p%02d", i)
		if _, err := s.Create(ctx, "test", "profiles", &models.Profile{Name: name}); err != nil {
			t.Fatal(err)
		}
		m, err := s.Create(ctx, "test", "machines", &models.Machine{Name: "m" + name})
		if err != nil {
			t.Fatal(err)
		}
		machines[i] = m.Key()
	}
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("p%02d", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.Delete(ctx, "test", "profiles", name)
			if err != nil && !wantCode(err, 409, "is in use by machines/") {
				t.Errorf("delete %s: %v", name, err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx, "test", "machines", machines[i], func(obj models.Model) error {
				obj.(*models.Machine).Profiles = []string{name}
				return nil
			})
			if err != nil && !wantCode(err, 422, "Profile "+name+" does not exist") {
				t.Errorf("update m%s: %v", name, err)
			}
		}()
	}
	wg.Wait()
	for _, key := range machines {
		m, err := s.Get(ctx, "machines", key)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.(*models.Machine).Profiles {
			if _, err := s.Get(ctx, "profiles", p); err != nil {
				t.Fatalf("machine %s refers to missing profile %s", key, p)
			}
		}
	}
}
