package objects

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/VictorLowther/jsonpatch2/utils"
	"github.com/provisionhq/provision/models"
)

// applyPatch applies patch to base, turning failures into DRP-style errors:
// a failing test op is a 409 conflict, any other failure a 422.
//
// It applies the operations one at a time (with jsonpatch2's pointer
// operations, as jsonpatch2's Patch.Apply does) and keeps a running
// estimate of the document's JSON size: an operation that would take the
// document past lim.MaxObjectBytes, or a patch that inserts and removes
// more than patchWorkFactor times that in all, is refused before it is
// applied, so a patch of copy operations that doubles the document per
// operation stops at the limit instead of allocating gigabytes.
func applyPatch(prefix, key string, patch jsonpatch2.Patch, base []byte, lim Limits) ([]byte, *models.Error) {
	fail := func(loc int, code int, msg string) *models.Error {
		op := ""
		if loc >= 0 && loc < len(patch) {
			op = fmt.Sprintf(" (%s %s)", patch[loc].Op, patch[loc].Path)
		}
		return &models.Error{Model: prefix, Key: shortKey(key), Type: "PATCH", Code: code,
			Messages: []string{fmt.Sprintf("Patch error at line %d%s: %s", loc, op, msg)}}
	}
	libErr := func(loc int, err error) *models.Error {
		msg := err.Error()
		code := 422
		if loc >= 0 && loc < len(patch) && patch[loc].Op == "test" {
			code = 409
		}
		if strings.HasPrefix(msg, "Selector ") || strings.Contains(msg, "not a member") {
			msg = "path does not exist"
		}
		return fail(loc, code, msg)
	}
	if len(patch) > lim.MaxPatchOps {
		return nil, &models.Error{Model: prefix, Key: shortKey(key), Type: "PATCH", Code: 422,
			Messages: []string{fmt.Sprintf("the patch has %d operations, more than the limit of %d (%s); split it; nothing was stored",
				len(patch), lim.MaxPatchOps, patchOpsFlag)}}
	}
	var doc any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, libErr(0, err)
	}
	size := int64(len(base))
	maxWork := patchWorkFactor * lim.MaxObjectBytes
	var work int64
	tooBig := func(loc int) *models.Error {
		return fail(loc, 422, fmt.Sprintf("the result would be more than %d bytes, the limit on a stored object (%s); nothing was stored",
			lim.MaxObjectBytes, objectBytesFlag))
	}
	// measure returns the JSON size of v, or budget+1 once it is known
	// to exceed budget; what it measures counts as work.
	measure := func(v any, budget int64) int64 {
		n := jsonSize(v, budget)
		work += n
		return n
	}
	for i := range patch {
		op := &patch[i]
		path, err := jsonpatch2.NewPointer(op.Path)
		if err != nil {
			return nil, libErr(i, err)
		}
		var from jsonpatch2.Pointer
		if op.Op == "copy" || op.Op == "move" {
			if from, err = jsonpatch2.NewPointer(op.From); err != nil {
				return nil, libErr(i, err)
			}
		}
		// The size of what the op inserts and of what it overwrites.
		var add, drop int64
		budget := lim.MaxObjectBytes - size
		switch op.Op {
		case "add":
			drop = measure(memberAt(doc, path), lim.MaxObjectBytes)
			add = measure(op.Value, budget+drop)
		case "replace":
			if old, gerr := path.Get(doc); gerr == nil {
				drop = measure(old, lim.MaxObjectBytes)
			}
			add = measure(op.Value, budget+drop)
		case "copy":
			if v, gerr := from.Get(doc); gerr == nil {
				drop = measure(memberAt(doc, path), lim.MaxObjectBytes)
				add = measure(v, budget+drop)
			}
		case "remove":
			if old, gerr := path.Get(doc); gerr == nil {
				drop = measure(old, lim.MaxObjectBytes)
			}
		}
		if size+add-drop > lim.MaxObjectBytes {
			return nil, tooBig(i)
		}
		if work > maxWork {
			return nil, fail(i, 422, fmt.Sprintf("the patch inserts and removes more than %d bytes in all (%d times the limit on a stored object, %s); send the result with PUT instead; nothing was stored",
				maxWork, patchWorkFactor, objectBytesFlag))
		}
		switch op.Op {
		case "test":
			err = path.Test(doc, op.Value)
		case "replace":
			doc, err = path.Replace(doc, utils.Clone(op.Value))
		case "add":
			doc, err = path.Put(doc, utils.Clone(op.Value))
		case "remove":
			doc, err = path.Remove(doc)
		case "move":
			doc, err = from.Move(doc, path)
		case "copy":
			doc, err = from.Copy(doc, path)
		default:
			err = fmt.Errorf("Invalid op %v", op.Op)
		}
		if err != nil {
			return nil, libErr(i, err)
		}
		size += add - drop
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, libErr(len(patch), err)
	}
	if int64(len(out)) > lim.MaxObjectBytes {
		// The estimate is close but not exact (string escapes).
		return nil, tooBig(len(patch) - 1)
	}
	return out, nil
}

// memberAt returns the value an add at path would overwrite: the existing
// member of an object (an add into an array inserts, overwriting nothing),
// or nil.
func memberAt(doc any, path jsonpatch2.Pointer) any {
	if len(path) == 0 {
		return doc
	}
	last, parent := path.Chop()
	p, err := parent.Get(doc)
	if err != nil {
		return nil
	}
	if m, ok := p.(map[string]any); ok {
		return m[last]
	}
	return nil
}

// jsonSize returns the length of the JSON encoding of v (a value decoded
// by encoding/json into any), as json.Marshal writes it, or a number above
// budget as soon as the length is known to exceed budget. A nil v (absent)
// counts as 0.
func jsonSize(v any, budget int64) int64 {
	if v == nil {
		return 0
	}
	var n int64
	var walk func(v any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case nil:
			n += 4
		case bool:
			if t {
				n += 4
			} else {
				n += 5
			}
		case float64:
			n += floatSize(t)
		case json.Number:
			n += int64(len(t))
		case string:
			n += stringSize(t)
		case []any:
			n += 2
			if len(t) > 1 {
				n += int64(len(t) - 1)
			}
			for _, e := range t {
				if !walk(e) {
					return false
				}
			}
		case map[string]any:
			n += 2
			if len(t) > 1 {
				n += int64(len(t) - 1)
			}
			for k, e := range t {
				n += stringSize(k) + 1
				if n > budget || !walk(e) {
					return false
				}
			}
		default:
			// Not produced by encoding/json; measure it exactly.
			buf, err := json.Marshal(t)
			if err != nil {
				n = budget + 1
				return false
			}
			n += int64(len(buf))
		}
		return n <= budget
	}
	if !walk(v) {
		return max(n, budget+1)
	}
	return n
}

// floatSize is the length of f as json.Marshal writes it.
func floatSize(f float64) int64 {
	var buf [32]byte
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(buf[:0], f, format, -1, 64)
	n := int64(len(b))
	if format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		n-- // json writes e-7, not e-07
	}
	return n
}

// stringSize is the length of s as a JSON string written by json.Marshal
// (quotes, escapes, HTML-safe escapes).
func stringSize(s string) int64 {
	n := int64(2)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += int64(w)
		}
		i += w
	}
	return n
}
