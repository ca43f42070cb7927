package objects

import (
	"fmt"
	"testing"

	"github.com/provisionhq/provision/models"
)

// TestListPagesMatchAFullSort: a page (offset/limit, any sort, reversed
// or not) is exactly the slice of the fully sorted matches, and an
// equality filter on a unique index finds what a scan finds.
func TestListPagesMatchAFullSort(t *testing.T) {
	s := newTestService(t, Limits{})
	ctx := t.Context()
	for i := 0; i < 30; i++ {
		m := &models.Machine{Name: fmt.Sprintf("n%02d", (i*7)%30), Description: fmt.Sprintf("d%d", i%4)}
		if _, err := s.Create(ctx, "test", "machines", m); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(q ListQuery) []string {
		t.Helper()
		res, err := s.List(ctx, "machines", q, RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(res.Items))
		for i, it := range res.Items {
			out[i] = it.Key
		}
		return out
	}
	for _, sortBy := range []string{"", "Name", "Description"} {
		for _, rev := range []bool{false, true} {
			all := keys(ListQuery{Limit: -1, Sort: sortBy, Reverse: rev})
			for _, off := range []int{0, 1, 5, 29, 31} {
				for _, lim := range []int{0, 1, 3, 10} {
					got := keys(ListQuery{Limit: lim, Offset: off, Sort: sortBy, Reverse: rev})
					lo, hi := min(off, len(all)), min(off+lim, len(all))
					if fmt.Sprint(got) != fmt.Sprint(all[lo:hi]) {
						t.Fatalf("sort %q reverse %v offset %d limit %d: %v, want %v", sortBy, rev, off, lim, got, all[lo:hi])
					}
				}
			}
		}
	}
	eq := ListQuery{Limit: -1, Filters: []Filter{{Field: "Name", Op: "Eq", Args: []string{"n07"}}}}
	got := keys(eq)
	scan := ListQuery{Limit: -1, Filters: []Filter{{Field: "Name", Op: "In", Args: []string{"n07"}}}}
	if want := keys(scan); len(got) != 1 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Name=Eq(n07) by index: %v, by scan: %v", got, want)
	}
	both := ListQuery{Limit: -1, Filters: []Filter{eq.Filters[0], {Field: "Description", Op: "Eq", Args: []string{"nope"}}}}
	if got := keys(both); len(got) != 0 {
		t.Fatalf("index candidate not filtered further: %v", got)
	}
	if got := keys(ListQuery{Limit: -1, Filters: []Filter{{Field: "Name", Op: "Eq", Args: []string{"missing"}}}}); len(got) != 0 {
		t.Fatalf("Name=Eq(missing): %v", got)
	}
	res, err := s.List(ctx, "machines", ListQuery{Limit: 2, Filters: []Filter{{Field: "Description", Op: "Eq", Args: []string{"d1"}}}}, RenderOptions{})
	if err != nil || res.Matched != 8 || res.Total != 30 || len(res.Items) != 2 {
		t.Fatalf("counts with a limit: matched %d total %d items %d (%v)", res.Matched, res.Total, len(res.Items), err)
	}
}
