package pluginutil

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// ValidateString checks a required string param value: nil gives
// "Must specify <name>", another type "<name> must be a string".
func ValidateString(name string, v any) (string, error) {
	if v == nil {
		return "", fmt.Errorf("Must specify %s", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a string", name)
	}
	return s, nil
}

// ValidateBool checks a required boolean param value.
func ValidateBool(name string, v any) (bool, error) {
	if v == nil {
		return false, fmt.Errorf("Must specify %s", name)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s must be a boolean", name)
	}
	return b, nil
}

// ValidateInt checks a required integer param value. Every Go integer type,
// integral float64/float32 (what JSON decoding yields) and json.Number are
// accepted; fractions and other types are rejected.
func ValidateInt(name string, v any) (int, error) {
	if v == nil {
		return 0, fmt.Errorf("Must specify %s", name)
	}
	n, ok := toInt(v)
	if !ok {
		return 0, fmt.Errorf("%s must be a number", name)
	}
	return n, nil
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint:
		return int(x), x <= math.MaxInt
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	case uint64:
		return int(x), x <= math.MaxInt
	case float32:
		return floatToInt(float64(x))
	case float64:
		return floatToInt(x)
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 0); err == nil {
			return int(i), true
		}
		f, err := x.Float64()
		if err != nil {
			return 0, false
		}
		return floatToInt(f)
	}
	return 0, false
}

func floatToInt(f float64) (int, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || f > math.MaxInt || f < math.MinInt {
		return 0, false
	}
	return int(f), true
}

// StringParam returns params[name] as a string, def when it is absent or
// null, and an error when it has another type.
func StringParam(params map[string]any, name, def string) (string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return def, nil
	}
	return ValidateString(name, v)
}

// IntParam returns params[name] as an int (see ValidateInt), def when it is
// absent or null, and an error when it is not an integer.
func IntParam(params map[string]any, name string, def int) (int, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return def, nil
	}
	return ValidateInt(name, v)
}

// BoolParam returns params[name] as a bool, def when it is absent or null,
// and an error when it has another type.
func BoolParam(params map[string]any, name string, def bool) (bool, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return def, nil
	}
	return ValidateBool(name, v)
}

// StringListParam returns params[name] as a []string (a JSON array of
// strings), def when it is absent or null, and an error otherwise.
func StringListParam(params map[string]any, name string, def []string) ([]string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case []string:
		return append([]string(nil), x...), nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d] must be a string", name, i)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s must be a list of strings", name)
}
