package objects

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/provisionhq/provision/models"
)

// isReservedQuery reports whether a query parameter is one of DRP's list
// or rendering options rather than a filter.
func isReservedQuery(name string) bool {
	switch name {
	case "offset", "limit", "sort", "reverse", "slim", "params",
		"decode", "aggregate", "force", "token", "compose", "commented",
		"reduced", "expand", "replaceWritable", "exclude-self", "keys":
		return true
	}
	return false
}

// Filter is one field test of a list query.
type Filter struct {
	// Field is an index name or, on kinds with Params, a param name.
	Field string
	// Op is Eq, Ne, Lt, Lte, Gt, Gte, Re, In, Nin, Between or Except.
	Op string
	// Args are the operator's arguments.
	Args []string
	re   *regexp.Regexp
}

// ListQuery selects, orders and pages objects.
type ListQuery struct {
	// Filters are ANDed.
	Filters []Filter
	// Offset skips that many matches.
	Offset int
	// Limit caps the result; negative means no limit.
	Limit int
	// Sort names the index to order by; "" orders by key.
	Sort string
	// Reverse reverses the order.
	Reverse bool
}

// All is the query that selects everything.
func All() ListQuery { return ListQuery{Limit: -1} }

var opRE = regexp.MustCompile(`^(Eq|Ne|Lt|Lte|Gt|Gte|Re|In|Nin|Between|Except)\((.*)\)$`)

func badFilter(prefix, format string, args ...any) *models.Error {
	return &models.Error{Model: prefix, Type: "GET", Code: 400, Messages: []string{fmt.Sprintf(format, args...)}}
}

// ParseListQuery reads DRP's list parameters from q for the kind prefix.
func (s *Service) ParseListQuery(prefix string, q url.Values) (ListQuery, error) {
	s.mu.RLock()
	k, ok := s.kinds[prefix]
	s.mu.RUnlock()
	if !ok {
		return ListQuery{}, &models.Error{Model: prefix, Type: "GET", Messages: []string{"No route"}, Code: 404}
	}
	lq := All()
	var err error
	if v := q.Get("offset"); v != "" {
		if lq.Offset, err = strconv.Atoi(v); err != nil || lq.Offset < 0 {
			return lq, badFilter(prefix, "offset must be a non-negative integer, not %q", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if lq.Limit, err = strconv.Atoi(v); err != nil {
			return lq, badFilter(prefix, "limit must be an integer, not %q", v)
		}
	}
	if v := q.Get("reverse"); v != "" {
		if lq.Reverse, err = strconv.ParseBool(v); err != nil {
			return lq, badFilter(prefix, "reverse must be true or false, not %q", v)
		}
	}
	if v := q.Get("sort"); v != "" {
		if _, ok := k.Indexes[v]; !ok {
			return lq, badFilter(prefix, "Cannot sort on %s: not an index of %s", v, prefix)
		}
		lq.Sort = v
	}
	_, paramer := k.newObject().(models.Paramer)
	paramer = paramer && !k.NoParams
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if isReservedQuery(name) {
			continue
		}
		if _, ok := k.Indexes[name]; !ok && !paramer {
			return lq, badFilter(prefix, "Filter not found: %s", name)
		}
		for _, raw := range q[name] {
			f := Filter{Field: name, Op: "Eq", Args: []string{raw}}
			if m := opRE.FindStringSubmatch(raw); m != nil {
				f.Op = m[1]
				switch f.Op {
				case "In", "Nin":
					f.Args = strings.Split(m[2], ",")
				case "Between", "Except":
					f.Args = strings.Split(m[2], ",")
					if len(f.Args) != 2 {
						return lq, badFilter(prefix, "%s=%s: %s needs two arguments", name, raw, f.Op)
					}
				default:
					f.Args = []string{m[2]}
				}
			}
			if f.Op == "Re" {
				if f.re, err = regexp.Compile(f.Args[0]); err != nil {
					return lq, badFilter(prefix, "%s=%s: bad regular expression: %v", name, raw, err)
				}
			}
			lq.Filters = append(lq.Filters, f)
		}
	}
	return lq, nil
}

// value returns the field's value in e: an index field, or a param.
func fieldValue(k *Kind, e *entry, field string) (any, string) {
	if idx, ok := k.Indexes[field]; ok {
		return e.fields[field], idx.Type
	}
	if p, ok := e.fields["Params"].(map[string]any); ok {
		v := p[field]
		return v, jsonType(v)
	}
	return nil, "string"
}

func jsonType(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case bool:
		return "boolean"
	case string:
		return "string"
	}
	return "json"
}

// compare orders a field value against a filter argument: -1, 0, 1.
func compare(typ string, v any, arg string) (int, error) {
	switch typ {
	case "integer", "number", "int", "float":
		f, _ := v.(float64)
		a, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", arg)
		}
		switch {
		case f < a:
			return -1, nil
		case f > a:
			return 1, nil
		}
		return 0, nil
	case "boolean", "bool":
		b, _ := v.(bool)
		a, err := strconv.ParseBool(arg)
		if err != nil {
			return 0, fmt.Errorf("%q is not true or false", arg)
		}
		switch {
		case b == a:
			return 0, nil
		case !b:
			return -1, nil
		}
		return 1, nil
	case "IP":
		s, _ := v.(string)
		ip, ai := net.ParseIP(s).To16(), net.ParseIP(arg).To16()
		if ai == nil {
			return 0, fmt.Errorf("%q is not an IP address", arg)
		}
		return strings.Compare(string(ip), string(ai)), nil
	case "string", "UUID":
		s, _ := v.(string)
		return strings.Compare(s, arg), nil
	}
	// Arbitrary JSON (a param holding an object or list): compare the JSON
	// text, accepting either the argument as JSON or as a bare string.
	b, _ := json.Marshal(v)
	if v == nil {
		b = nil
	}
	var parsed any
	if err := json.Unmarshal([]byte(arg), &parsed); err == nil {
		ab, _ := json.Marshal(parsed)
		return strings.Compare(string(b), string(ab)), nil
	}
	return strings.Compare(string(b), arg), nil
}

func (f *Filter) match(k *Kind, e *entry) (bool, error) {
	v, typ := fieldValue(k, e, f.Field)
	cmp := func(arg string) (int, error) { return compare(typ, v, arg) }
	switch f.Op {
	case "Re":
		s, ok := v.(string)
		if !ok {
			if v == nil {
				return false, nil
			}
			b, _ := json.Marshal(v)
			s = string(b)
		}
		return f.re.MatchString(s), nil
	case "In", "Nin":
		found := false
		for _, a := range f.Args {
			c, err := cmp(a)
			if err != nil {
				return false, err
			}
			if c == 0 {
				found = true
				break
			}
		}
		return found == (f.Op == "In"), nil
	case "Between", "Except":
		lo, err := cmp(f.Args[0])
		if err != nil {
			return false, err
		}
		hi, err := cmp(f.Args[1])
		if err != nil {
			return false, err
		}
		in := lo >= 0 && hi <= 0
		return in == (f.Op == "Between"), nil
	}
	c, err := cmp(f.Args[0])
	if err != nil {
		return false, err
	}
	switch f.Op {
	case "Eq":
		return c == 0, nil
	case "Ne":
		return c != 0, nil
	case "Lt":
		return c < 0, nil
	case "Lte":
		return c <= 0, nil
	case "Gt":
		return c > 0, nil
	case "Gte":
		return c >= 0, nil
	}
	return false, fmt.Errorf("unknown filter operator %s", f.Op)
}

func (q *ListQuery) matches(k *Kind, e *entry) (bool, error) {
	for i := range q.Filters {
		ok, err := q.Filters[i].match(k, e)
		if err != nil {
			f := q.Filters[i]
			return false, badFilter(k.Prefix, "%s=%s(%s): %v", f.Field, f.Op, strings.Join(f.Args, ","), err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// entryLess is the list order: by the sort index (ties by key) or by key,
// reversed on request. Keys are unique, so it is a total order.
func entryLess(k *Kind, field string, reverse bool) func(a, b *entry) bool {
	less := func(a, b *entry) bool { return a.key < b.key }
	if field != "" && field != k.KeyField {
		typ := k.Indexes[field].Type
		less = func(a, b *entry) bool {
			av, bv := a.fields[field], b.fields[field]
			arg, _ := fieldString(bv)
			if s, ok := bv.(string); ok {
				arg = s
			}
			c, err := compare(typ, av, arg)
			if err != nil || c == 0 {
				return a.key < b.key
			}
			return c < 0
		}
	}
	if reverse {
		return func(a, b *entry) bool { return less(b, a) }
	}
	return less
}

func sortEntries(k *Kind, ents []*entry, field string, reverse bool) {
	less := entryLess(k, field, reverse)
	sort.SliceStable(ents, func(i, j int) bool { return less(ents[i], ents[j]) })
}
