package objects

import (
	"container/heap"
	"context"
	"sort"
)

// candidatesLocked returns the entries a query has to test: the one entry
// an equality filter on the key or a unique string index names (an index
// lookup instead of a scan), else every entry. Caller holds the read lock.
func (s *Service) candidatesLocked(k *Kind, q ListQuery) ([]*entry, bool) {
	objs := s.data[k.Prefix]
	for _, f := range q.Filters {
		if f.Op != "Eq" || len(f.Args) != 1 || f.Args[0] == "" {
			continue
		}
		idx, ok := k.Indexes[f.Field]
		if !ok || !idx.Unique || (idx.Type != "string" && idx.Type != "UUID") {
			continue
		}
		key := f.Args[0]
		if f.Field != k.KeyField {
			if key, ok = s.uniq[k.Prefix][f.Field][f.Args[0]]; !ok {
				return nil, true
			}
		}
		if e, ok := objs[key]; ok {
			return []*entry{e}, true
		}
		return nil, true
	}
	out := make([]*entry, 0, len(objs))
	for _, e := range objs {
		out = append(out, e)
	}
	return out, false
}

// selectLocked returns the page of entries q selects, the number of
// objects of the kind and the number matching. A page (limit) keeps only
// the first offset+limit matches in order, instead of sorting them all.
func (s *Service) selectLocked(ctx context.Context, k *Kind, q ListQuery) ([]*entry, int, int, error) {
	total := len(s.data[k.Prefix])
	cands, _ := s.candidatesLocked(k, q)
	sel := cands[:0]
	for _, e := range cands {
		ok, err := q.matches(k, e)
		if err != nil {
			return nil, 0, 0, err
		}
		if ok {
			sel = append(sel, e)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, err
	}
	matched := len(sel)
	if q.Limit >= 0 && q.Offset+q.Limit < matched {
		sel = firstN(sel, q.Offset+q.Limit, entryLess(k, q.Sort, q.Reverse))
	} else {
		sortEntries(k, sel, q.Sort, q.Reverse)
	}
	if q.Offset > 0 {
		if q.Offset >= len(sel) {
			sel = sel[:0]
		} else {
			sel = sel[q.Offset:]
		}
	}
	if q.Limit >= 0 && q.Limit < len(sel) {
		sel = sel[:q.Limit]
	}
	return sel, total, matched, nil
}

// firstN returns the n smallest entries of ents by less, in order, in
// O(len·log n) with a bounded max-heap.
func firstN(ents []*entry, n int, less func(a, b *entry) bool) []*entry {
	if n <= 0 {
		return ents[:0]
	}
	h := &entryHeap{less: less}
	for _, e := range ents {
		if len(h.ents) < n {
			heap.Push(h, e)
		} else if less(e, h.ents[0]) {
			h.ents[0] = e
			heap.Fix(h, 0)
		}
	}
	out := h.ents
	sort.Slice(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}

// entryHeap is a max-heap by less (the root is the largest kept).
type entryHeap struct {
	ents []*entry
	less func(a, b *entry) bool
}

func (h *entryHeap) Len() int           { return len(h.ents) }
func (h *entryHeap) Less(i, j int) bool { return h.less(h.ents[j], h.ents[i]) }
func (h *entryHeap) Swap(i, j int)      { h.ents[i], h.ents[j] = h.ents[j], h.ents[i] }
func (h *entryHeap) Push(x any)         { h.ents = append(h.ents, x.(*entry)) }
func (h *entryHeap) Pop() any {
	last := h.ents[len(h.ents)-1]
	h.ents = h.ents[:len(h.ents)-1]
	return last
}
