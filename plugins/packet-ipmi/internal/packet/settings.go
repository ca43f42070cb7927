package packet

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// settings are the validated Config params of one plugin instance.
type settings struct {
	name           string
	apiKey         string
	apiURL         string
	projectID      string
	importExisting bool
	deleteMissing  bool
	pollInterval   time.Duration
	createTimeout  time.Duration
	apiTimeout     time.Duration
}

// paramSource looks a param up in the Config body first and then, when the
// body does not carry it, in the plugin object's aggregated params (global
// profile included), as DRP's GetDrpStringParam did.
type paramSource struct {
	ctx    context.Context
	l      *slog.Logger
	api    pluginutil.API
	name   string
	config map[string]any
}

func (s paramSource) get(param string) any {
	if v, ok := s.config[param]; ok && v != nil {
		return v
	}
	if s.api == nil || s.name == "" {
		return nil
	}
	v, err := pluginutil.GetDrpParam(s.ctx, s.api, "plugins", s.name, param)
	if err != nil {
		s.l.Debug("aggregated param lookup failed; treating the param as unset", "param", param, "err", err)
		return nil
	}
	return v
}

// parseSettings validates the Config params. Errors say which param to fix.
func parseSettings(src paramSource) (*settings, error) {
	st := &settings{name: src.name}
	key := src.get(ParamAPIKey)
	switch k := key.(type) {
	case nil:
		return nil, fmt.Errorf("Must specify %s", ParamAPIKey)
	case string:
		if k == "" {
			return nil, fmt.Errorf("Must specify %s: it is empty", ParamAPIKey)
		}
		st.apiKey = k
	case map[string]any:
		// A secure param that reached us still sealed.
		return nil, fmt.Errorf("%s arrived encrypted; the host must send plugins decrypted secure params", ParamAPIKey)
	default:
		return nil, fmt.Errorf("%s must be a string", ParamAPIKey)
	}
	var err error
	if st.apiURL, err = pluginutil.ValidateString(ParamAPIURL, orDefault(src.get(ParamAPIURL), metal.DefaultURL)); err != nil {
		return nil, err
	}
	if v := src.get(ParamProjectID); v != nil {
		if st.projectID, err = pluginutil.ValidateString(ParamProjectID, v); err != nil {
			return nil, err
		}
	}
	if st.importExisting, err = pluginutil.ValidateBool(ParamImportExisting, orDefault(src.get(ParamImportExisting), false)); err != nil {
		return nil, err
	}
	if st.deleteMissing, err = pluginutil.ValidateBool(ParamDeleteMissing, orDefault(src.get(ParamDeleteMissing), false)); err != nil {
		return nil, err
	}
	if st.pollInterval, err = seconds(ParamPollInterval, src.get(ParamPollInterval), DefaultPollSeconds); err != nil {
		return nil, err
	}
	if st.createTimeout, err = seconds(ParamCreateTimeout, src.get(ParamCreateTimeout), DefaultCreateSeconds); err != nil {
		return nil, err
	}
	if st.apiTimeout, err = seconds(ParamAPITimeout, src.get(ParamAPITimeout), DefaultAPISeconds); err != nil {
		return nil, err
	}
	return st, nil
}

func orDefault(v, def any) any {
	if v == nil {
		return def
	}
	return v
}

// seconds converts a positive number of seconds (int or float, as JSON
// decoding gives) into a duration.
func seconds(param string, v any, def float64) (time.Duration, error) {
	f := def
	switch x := v.(type) {
	case nil:
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	default:
		return 0, fmt.Errorf("%s must be a number of seconds", param)
	}
	if math.IsNaN(f) || f <= 0 || f > 7*24*3600 {
		return 0, fmt.Errorf("%s must be more than 0 and at most 604800 seconds, got %v", param, f)
	}
	return time.Duration(f * float64(time.Second)), nil
}
