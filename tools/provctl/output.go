package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// print writes v in the selected format: indented JSON (default) or YAML
// with the same field names as the JSON form.
func (a *app) print(v any) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	if a.format == "yaml" {
		var generic any
		if err := json.Unmarshal(buf, &generic); err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return fmt.Errorf("encoding output as YAML: %w", err)
		}
		_, err = a.out.Write(out)
		return err
	}
	buf = append(buf, '\n')
	_, err = a.out.Write(buf)
	return err
}

// readArg returns the bytes an argument stands for: stdin for "-", else
// the argument itself.
func (a *app) readArg(arg string) ([]byte, error) {
	if arg == "-" {
		buf, err := io.ReadAll(io.LimitReader(a.in, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return buf, nil
	}
	return []byte(arg), nil
}

// decodeDoc parses JSON or YAML into generic JSON values (maps with string
// keys, []any, float64, string, bool, nil).
func decodeDoc(buf []byte) (any, error) {
	var v any
	if err := json.Unmarshal(buf, &v); err == nil {
		return v, nil
	}
	var y any
	if err := yaml.Unmarshal(buf, &y); err != nil {
		return nil, fmt.Errorf("not valid JSON or YAML: %w", err)
	}
	y, err := jsonify(y)
	if err != nil {
		return nil, err
	}
	// Round-trip through JSON so numbers become float64 as in JSON input.
	jb, err := json.Marshal(y)
	if err != nil {
		return nil, fmt.Errorf("converting YAML: %w", err)
	}
	if err := json.Unmarshal(jb, &v); err != nil {
		return nil, fmt.Errorf("converting YAML: %w", err)
	}
	return v, nil
}

// jsonify turns YAML's map[any]any into map[string]any recursively.
func jsonify(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonify(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("YAML map key %v is not a string", k)
			}
			c, err := jsonify(e)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []any:
		for i, e := range t {
			c, err := jsonify(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	default:
		return v, nil
	}
}

// decodeObjectArg reads an object argument: "-" (stdin), inline JSON/YAML,
// or the name of a file holding JSON/YAML. bareName, when not empty, is the
// key field used to turn a plain word into {"<bareName>": word}.
func (a *app) decodeObjectArg(arg, bareName string) (map[string]any, error) {
	buf, err := a.readArg(arg)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		return nil, errors.New("empty object: give JSON, YAML, a file name or - for standard input")
	}
	v, derr := decodeDoc(buf)
	if m, ok := v.(map[string]any); ok && derr == nil {
		return m, nil
	}
	if arg != "-" && !strings.ContainsAny(arg, "{}\n") {
		if fb, err := os.ReadFile(arg); err == nil {
			fv, err := decodeDoc(fb)
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", arg, err)
			}
			if m, ok := fv.(map[string]any); ok {
				return m, nil
			}
			return nil, fmt.Errorf("file %s does not hold a JSON/YAML object", arg)
		}
		if bareName != "" {
			return map[string]any{bareName: arg}, nil
		}
	}
	what := fmt.Sprintf("%q", truncate(arg, 60))
	if arg == "-" {
		// Name what was read, not the dash.
		what = fmt.Sprintf("standard input %q", truncate(strings.TrimSpace(string(buf)), 60))
	}
	if derr != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", what, derr)
	}
	return nil, fmt.Errorf("%s is not a JSON/YAML object", what)
}

// parseValue parses a command-line value as JSON, falling back to the
// plain string (so `to foo` and `to '"foo"'` both set the string foo).
func parseValue(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err == nil {
		return v
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// mergeInto merges changes into base the way drpcli's update does (by
// decoding the changes over the typed object): top-level fields are
// replaced, except that object-valued fields such as Params and Meta are
// merged key by key; the values inside them are replaced whole.
func mergeInto(base, changes map[string]any) map[string]any {
	for k, cv := range changes {
		bm, bok := base[k].(map[string]any)
		cm, cok := cv.(map[string]any)
		if bok && cok {
			for ik, iv := range cm {
				bm[ik] = iv
			}
			continue
		}
		base[k] = cv
	}
	return base
}
