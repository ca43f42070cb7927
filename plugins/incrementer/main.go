// Command incrementer is Digital Rebar Provision's example plugin provider
// ported onto pluginsdk. It counts in machine params through the REST API:
//
//   - increment (machines): adds incrementer/step (default 1) to the machine
//     param named by incrementer/parameter (default incrementer/default)
//     and bumps incrementer/touched; answers the new value.
//   - reset_count (machines, needs incrementer/touched): removes
//     incrementer/touched; answers "Success".
//   - incrstatus (system): answers "Running".
//
// It also declares two custom object types (cows, typed-cows), ships a
// content bundle (params and a typed cow) and unpacks testFile.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
)

// version is the provider version; set with -ldflags "-X main.version=...".
var version = "v4.8.0"

// contentFS is the content bundle in DRP's directory format. all: keeps
// the ._<Field>.meta files.
//
//go:embed all:content
var contentFS embed.FS

// Param names.
const (
	paramStep      = "incrementer/step"
	paramParameter = "incrementer/parameter"
	paramTouched   = "incrementer/touched"
	defaultParam   = "incrementer/default"
)

// definition is what define prints (Content is added from contentFS).
func definition() *models.PluginProvider {
	return &models.PluginProvider{
		Name:          "incrementer",
		Version:       version,
		PluginVersion: pluginsdk.PluginVersion,
		AvailableActions: []models.AvailableAction{
			{Command: "increment", Model: "machines", OptionalParams: []string{paramStep, paramParameter}},
			{Command: "reset_count", Model: "machines", RequiredParams: []string{paramTouched}},
			{Command: "incrstatus"},
		},
		StoreObjects: map[string]any{
			"cows": map[string]any{},
			// DRP's per-field shorthand; "isrequired" is enforced by the server.
			"typed-cows": map[string]any{
				"CanMilk":  map[string]any{"type": "boolean"},
				"Location": map[string]any{"type": "string"},
				"Spotted":  map[string]any{"type": "boolean", "isrequired": true},
			},
		},
	}
}

// Plugin keeps the API client handed to Config.
type Plugin struct {
	mu sync.Mutex
	c  *client.Client
}

// Config remembers the API client; the incrementer has no settings.
func (p *Plugin) Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error {
	p.mu.Lock()
	p.c = c
	p.mu.Unlock()
	l.Info("configured", "endpoint", c.Endpoint())
	return nil
}

func (p *Plugin) client() *client.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

// pluginError is the error shape DRP's incrementer answers with.
func pluginError(code int, format string, args ...any) *models.Error {
	return &models.Error{Code: code, Model: "plugin", Key: "incrementer", Type: "plugin",
		Messages: []string{fmt.Sprintf(format, args...)}}
}

// Action runs increment, reset_count and incrstatus.
func (p *Plugin) Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	l.Info("action", "command", a.Command, "plugin", a.Plugin)
	switch a.Command {
	case "increment":
		m, err := machineOf(a)
		if err != nil {
			return nil, err
		}
		parameter := defaultParam
		if v, ok := a.Params[paramParameter]; ok && v != nil {
			s, isString := v.(string)
			if !isString || s == "" {
				return nil, pluginError(http.StatusBadRequest, "%s must be a non-empty string, got %T %v", paramParameter, v, v)
			}
			parameter = s
		}
		step := int64(1)
		if v, ok := a.Params[paramStep]; ok && v != nil {
			n, isInt := toInt(v)
			if !isInt {
				return nil, pluginError(http.StatusBadRequest, "%s must be an integer, got %T %v", paramStep, v, v)
			}
			step = n
		}
		val, merr := p.addTo(ctx, m.UUID(), parameter, step)
		if merr != nil {
			return nil, merr
		}
		if _, merr := p.addTo(ctx, m.UUID(), paramTouched, 1); merr != nil {
			return nil, merr
		}
		return val, nil
	case "reset_count":
		m, err := machineOf(a)
		if err != nil {
			return nil, err
		}
		c := p.client()
		if c == nil {
			return nil, pluginError(http.StatusConflict, "not configured yet")
		}
		if err := c.DeleteParam(ctx, "machines", m.UUID(), paramTouched); err != nil {
			return nil, pluginError(http.StatusBadRequest, "%v", err)
		}
		return "Success", nil
	case "incrstatus":
		return "Running", nil
	}
	// Message with its trailing newline as DRP's incrementer sends it.
	return nil, pluginError(http.StatusNotFound, "Unknown command: %s\n", a.Command)
}

// machineOf decodes the action's target machine.
func machineOf(a *models.Action) (*models.Machine, *models.Error) {
	m := &models.Machine{}
	if a.Model == nil {
		return nil, pluginError(http.StatusBadRequest, "action %s needs a machine", a.Command)
	}
	if err := models.Remarshal(a.Model, m); err != nil {
		return nil, pluginError(http.StatusConflict, "%v", err)
	}
	return m, nil
}

// addTo adds step to the machine's param (unset counts as 0) through the
// REST API and returns the new value.
func (p *Plugin) addTo(ctx context.Context, uuid, param string, step int64) (int64, *models.Error) {
	c := p.client()
	if c == nil {
		return 0, pluginError(http.StatusConflict, "not configured yet")
	}
	var cur any
	if err := c.GetParam(ctx, "machines", uuid, param, false, &cur); err != nil {
		return 0, pluginError(http.StatusBadRequest, "%v", err)
	}
	val := step
	if cur != nil {
		n, ok := toInt(cur)
		if !ok {
			return 0, pluginError(http.StatusConflict, "machine param %s holds %T %v, not an integer", param, cur, cur)
		}
		val += n
	}
	if err := c.SetParam(ctx, "machines", uuid, param, val); err != nil {
		return 0, pluginError(http.StatusBadRequest, "%v", err)
	}
	return val, nil
}

// toInt accepts the integer forms a JSON number can take in Go.
func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// Unpack writes testFile, which the host serves under
// /files/plugin_providers/incrementer/.
func (p *Plugin) Unpack(ctx context.Context, l *slog.Logger, dir string) error {
	return os.WriteFile(filepath.Join(dir, "testFile"), []byte("ImaFile"), 0o644)
}

func main() {
	pluginsdk.InitApp("incrementer", "Increments a parameter on a machine", version, definition(), &Plugin{}).
		WithContent(contentFS).
		Main()
}
