package objects

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/secrets"
)

// renderer renders cached entries without the Service lock: entries never
// change once built, and the only other state rendering needs (which
// params are secure, for Decode) is captured when the renderer is made.
type renderer struct {
	s      *Service
	k      *Kind
	ro     RenderOptions
	secure map[string]bool
}

// rendererLocked captures what rendering with ro needs; caller holds the
// read lock.
func (s *Service) rendererLocked(k *Kind, ro RenderOptions) *renderer {
	r := &renderer{s: s, k: k, ro: ro}
	if ro.Decode {
		r.secure = map[string]bool{}
		for name, e := range s.data["params"] {
			if sec, _ := e.fields["Secure"].(bool); sec {
				r.secure[name] = true
			}
		}
	}
	return r
}

// renderMemo keeps an entry's last non-plain rendering (never a decoded
// one: that holds secrets in plain text), so repeated slim or params lists
// render each object once. Entries never change, so it never goes stale.
type renderMemo struct{ p atomic.Pointer[memoized] }

type memoized struct {
	key string
	buf []byte
}

func (ro RenderOptions) memoKey() string {
	return strings.Join(ro.Slim, ",") + "|" + strings.Join(ro.Params, ",")
}

// render returns the API form of e.
func (r *renderer) render(e *entry) ([]byte, error) {
	if r.ro.plain() {
		return e.view, nil
	}
	if r.ro.Decode || e.memo == nil {
		return r.build(e)
	}
	key := r.ro.memoKey()
	if m := e.memo.p.Load(); m != nil && m.key == key {
		return m.buf, nil
	}
	buf, err := r.build(e)
	if err == nil {
		e.memo.p.Store(&memoized{key: key, buf: buf})
	}
	return buf, err
}

// build renders e. Only the top level and Params are decoded, into raw
// JSON members, so a slim list does not decode and encode every field.
func (r *renderer) build(e *entry) ([]byte, error) {
	ro, k := r.ro, r.k
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(e.view, &m); err != nil {
		return nil, fmt.Errorf("render %s/%s: %w", k.Prefix, e.key, err)
	}
	if raw, ok := m["Params"]; ok && (len(ro.Params) > 0 || ro.Decode) {
		var p map[string]json.RawMessage
		if err := json.Unmarshal(raw, &p); err == nil && p != nil {
			if len(ro.Params) > 0 {
				keep := map[string]json.RawMessage{}
				for _, n := range ro.Params {
					if v, ok := p[n]; ok {
						keep[n] = v
					}
				}
				p = keep
			}
			if ro.Decode {
				if err := r.decode(p); err != nil {
					return nil, &models.Error{Model: k.Prefix, Key: e.key, Type: "GET", Code: 500, Messages: []string{err.Error()}}
				}
			}
			buf, err := json.Marshal(p)
			if err != nil {
				return nil, fmt.Errorf("render %s/%s: %w", k.Prefix, e.key, err)
			}
			m["Params"] = buf
		}
	}
	if len(ro.Slim) > 0 {
		for _, f := range ro.Slim {
			if _, ok := m[f]; ok && f != k.KeyField {
				delete(m, f)
			}
		}
		m["Partial"] = json.RawMessage("true")
	}
	return json.Marshal(m)
}

// decode opens every sealed value of a secure param in p.
func (r *renderer) decode(p map[string]json.RawMessage) error {
	for name, raw := range p {
		if !r.secure[name] {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			continue
		}
		sd, ok := secrets.AsSecureData(v)
		if !ok {
			continue
		}
		plain, err := r.s.keys.Open(sd)
		if err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		buf, err := json.Marshal(plain)
		if err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		p[name] = buf
	}
	return nil
}
