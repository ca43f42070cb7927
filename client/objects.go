package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/models"
)

// objPath joins a collection prefix and an object key.
func objPath(prefix, key string) string { return prefix + "/" + key }

// Info fetches GET /api/v3/info.
func (c *Client) Info(ctx context.Context) (*models.Info, error) {
	info := &models.Info{}
	if err := c.Do(ctx, http.MethodGet, "info", nil, nil, info); err != nil {
		return nil, err
	}
	return info, nil
}

// FilterQuery turns DRP-style filter pairs ("Name", "Eq(foo)", "limit",
// "10") into query values. An odd number of arguments is an error.
func FilterQuery(filters ...string) (url.Values, error) {
	if len(filters)%2 != 0 {
		return nil, fmt.Errorf("client: filters must be key/value pairs, got %d values", len(filters))
	}
	q := url.Values{}
	for i := 0; i < len(filters); i += 2 {
		if filters[i] == "" {
			return nil, errors.New("client: empty filter name")
		}
		q.Add(filters[i], filters[i+1])
	}
	return q, nil
}

// List fetches a collection into out (a pointer to a slice). filters are
// key/value pairs in DRP's syntax, e.g. "Name", "Eq(foo)", "limit", "10".
func (c *Client) List(ctx context.Context, prefix string, out any, filters ...string) error {
	q, err := FilterQuery(filters...)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodGet, prefix, q, nil, out)
}

// Get fetches one object by key or <Index>:<value>.
func (c *Client) Get(ctx context.Context, prefix, key string, out any) error {
	return c.Do(ctx, http.MethodGet, objPath(prefix, key), nil, nil, out)
}

// Exists reports whether an object exists (HEAD).
func (c *Client) Exists(ctx context.Context, prefix, key string) (bool, error) {
	err := c.Do(ctx, http.MethodHead, objPath(prefix, key), nil, nil, nil)
	if err == nil {
		return true, nil
	}
	var me *models.Error
	if errors.As(err, &me) && me.Code == http.StatusNotFound {
		return false, nil
	}
	return false, err
}

// Create POSTs obj to the collection; out receives the created object.
func (c *Client) Create(ctx context.Context, prefix string, obj, out any) error {
	return c.Do(ctx, http.MethodPost, prefix, nil, obj, out)
}

// Put replaces an object.
func (c *Client) Put(ctx context.Context, prefix, key string, obj, out any) error {
	return c.Do(ctx, http.MethodPut, objPath(prefix, key), nil, obj, out)
}

// Patch applies an RFC 6902 patch to an object.
func (c *Client) Patch(ctx context.Context, prefix, key string, patch jsonpatch2.Patch, out any) error {
	if patch == nil {
		patch = jsonpatch2.Patch{}
	}
	return c.Do(ctx, http.MethodPatch, objPath(prefix, key), nil, patch, out)
}

// GeneratePatch returns the JSON Patch that turns old into new the way DRP's
// client builds it: a test of the old value before every replace/remove and,
// when paranoid, a leading test of the whole original document.
func GeneratePatch(old, new any, paranoid bool) (jsonpatch2.Patch, error) {
	oldBuf, err := json.Marshal(old)
	if err != nil {
		return nil, fmt.Errorf("client: encoding original object: %w", err)
	}
	newBuf, err := json.Marshal(new)
	if err != nil {
		return nil, fmt.Errorf("client: encoding updated object: %w", err)
	}
	p, err := jsonpatch2.GenerateFull(oldBuf, newBuf, true, paranoid)
	if err != nil {
		return nil, fmt.Errorf("client: generating patch: %w", err)
	}
	return p, nil
}

// PatchTo generates a patch (with test ops) from old to new and applies it,
// as DRP's client does for updates.
func (c *Client) PatchTo(ctx context.Context, prefix, key string, old, new, out any) error {
	p, err := GeneratePatch(old, new, c.opts.ParanoidPatch)
	if err != nil {
		return err
	}
	if len(p) == 0 {
		// Nothing changed: report the current object without a write.
		if out == nil {
			return nil
		}
		return c.Get(ctx, prefix, key, out)
	}
	return c.Patch(ctx, prefix, key, p, out)
}

// Delete removes an object; out, when not nil, receives the deleted object.
func (c *Client) Delete(ctx context.Context, prefix, key string, out any) error {
	return c.Do(ctx, http.MethodDelete, objPath(prefix, key), nil, nil, out)
}

func paramQuery(aggregate bool) url.Values {
	if !aggregate {
		return nil
	}
	return url.Values{"aggregate": {"true"}}
}

// GetParams returns an object's params, aggregated over profiles and global
// when aggregate is true.
func (c *Client) GetParams(ctx context.Context, prefix, key string, aggregate bool) (map[string]any, error) {
	return c.GetParamsWith(ctx, prefix, key, paramQuery(aggregate))
}

// GetParamsWith is GetParams with arbitrary query options (aggregate,
// decode, params=a,b, compose) passed through to the server.
func (c *Client) GetParamsWith(ctx context.Context, prefix, key string, query url.Values) (map[string]any, error) {
	res := map[string]any{}
	if err := c.Do(ctx, http.MethodGet, objPath(prefix, key)+"/params", query, nil, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// SetParams replaces an object's whole Params map (POST .../params) and
// returns the stored map.
func (c *Client) SetParams(ctx context.Context, prefix, key string, params map[string]any) (map[string]any, error) {
	if params == nil {
		params = map[string]any{}
	}
	res := map[string]any{}
	if err := c.Do(ctx, http.MethodPost, objPath(prefix, key)+"/params", nil, params, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// GetParam decodes one param value into out (JSON null when unset).
func (c *Client) GetParam(ctx context.Context, prefix, key, name string, aggregate bool, out any) error {
	return c.GetParamWith(ctx, prefix, key, name, paramQuery(aggregate), out)
}

// GetParamWith is GetParam with arbitrary query options (aggregate,
// decode, compose).
func (c *Client) GetParamWith(ctx context.Context, prefix, key, name string, query url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, objPath(prefix, key)+"/params/"+name, query, nil, out)
}

// SetParam sets one param on an object.
func (c *Client) SetParam(ctx context.Context, prefix, key, name string, value any) error {
	if value == nil {
		value = json.RawMessage("null")
	}
	return c.Do(ctx, http.MethodPost, objPath(prefix, key)+"/params/"+name, nil, value, nil)
}

// DeleteParam removes one param from an object.
func (c *Client) DeleteParam(ctx context.Context, prefix, key, name string) error {
	return c.Do(ctx, http.MethodDelete, objPath(prefix, key)+"/params/"+name, nil, nil, nil)
}

// actionsPath is the actions collection of an object, or of the system when
// prefix is "system" and key is "".
func actionsPath(prefix, key string) string {
	if prefix == "system" && key == "" {
		return "system/actions"
	}
	return objPath(prefix, key) + "/actions"
}

func pluginQuery(plugin string) url.Values {
	if plugin == "" {
		return nil
	}
	return url.Values{"plugin": {plugin}}
}

// Actions lists the plugin actions currently available on an object
// (prefix "system" with key "" for system actions), optionally only those
// of one plugin instance.
func (c *Client) Actions(ctx context.Context, prefix, key, plugin string) ([]models.AvailableAction, error) {
	res := []models.AvailableAction{}
	if err := c.Do(ctx, http.MethodGet, actionsPath(prefix, key), pluginQuery(plugin), nil, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// Action shows one plugin action of an object (GET
// /<prefix>/<key>/actions/<cmd>[?plugin=]; prefix "system" with key "" for
// system actions) with its params resolved, decoded into out.
func (c *Client) Action(ctx context.Context, prefix, key, cmd, plugin string, out any) error {
	if cmd == "" {
		return errors.New("client: Action needs a command")
	}
	return c.Do(ctx, http.MethodGet, actionsPath(prefix, key)+"/"+cmd, pluginQuery(plugin), nil, out)
}

// RunAction POSTs /<prefix>/<key>/actions/<cmd>[?plugin=] (prefix "system"
// with key "" for system actions) and decodes the result into out.
func (c *Client) RunAction(ctx context.Context, prefix, key, cmd, plugin string, params map[string]any, out any) error {
	return c.RunActionWithTimeout(ctx, prefix, key, cmd, plugin, 0, params, out)
}

// RunActionWithTimeout is RunAction with the server-side time limit of the
// action (?timeout=, whole seconds, at least 1); 0 leaves the server's
// default (provisiond's --action-timeout). The client's own RequestTimeout
// still bounds the call: see WithRequestTimeout for longer actions.
func (c *Client) RunActionWithTimeout(ctx context.Context, prefix, key, cmd, plugin string, timeout time.Duration, params map[string]any, out any) error {
	if cmd == "" {
		return errors.New("client: RunAction needs a command")
	}
	if timeout < 0 {
		return fmt.Errorf("client: RunAction timeout must not be negative, got %s", timeout)
	}
	if params == nil {
		params = map[string]any{}
	}
	q := pluginQuery(plugin)
	if timeout > 0 {
		if q == nil {
			q = url.Values{}
		}
		q.Set("timeout", strconv.FormatInt(int64(max(timeout.Round(time.Second), time.Second)/time.Second), 10))
	}
	return c.Do(ctx, http.MethodPost, actionsPath(prefix, key)+"/"+cmd, q, params, out)
}

// PostEvent publishes an event through POST /api/v3/events.
func (c *Client) PostEvent(ctx context.Context, e *models.Event) error {
	if e == nil {
		return errors.New("client: PostEvent needs an event")
	}
	return c.Do(ctx, http.MethodPost, "events", nil, e, nil)
}

// UserToken asks for a token of user (GET /users/<name>/token); ttl 0 lets
// the server choose the lifetime.
func (c *Client) UserToken(ctx context.Context, user string, ttl time.Duration) (*models.UserToken, error) {
	var q url.Values
	if ttl > 0 {
		q = url.Values{"ttl": {strconv.FormatInt(int64(ttl/time.Second), 10)}}
	}
	res := &models.UserToken{}
	if err := c.Do(ctx, http.MethodGet, objPath("users", user)+"/token", q, nil, res); err != nil {
		return nil, err
	}
	return res, nil
}

// SetPassword changes a user's password (PUT /users/<name>/password) and
// returns the updated user.
func (c *Client) SetPassword(ctx context.Context, user, password string) (*models.User, error) {
	res := &models.User{}
	if err := c.Do(ctx, http.MethodPut, objPath("users", user)+"/password", nil, &models.UserPassword{Password: password}, res); err != nil {
		return nil, err
	}
	return res, nil
}

// UploadPluginProvider uploads a provider executable under name (POST
// /plugin_providers/<name>, octet-stream). A seekable body (such as an
// *os.File) is retried on transport errors.
func (c *Client) UploadPluginProvider(ctx context.Context, name string, body io.Reader) (*models.PluginProviderUploadInfo, error) {
	if name == "" {
		return nil, errors.New("client: UploadPluginProvider needs a name")
	}
	res := &models.PluginProviderUploadInfo{}
	if err := c.Do(ctx, http.MethodPost, objPath("plugin_providers", name), nil, body, res); err != nil {
		return nil, err
	}
	return res, nil
}

// DownloadPluginProvider writes a provider's executable to w (GET
// /plugin_providers/<name>/binary).
func (c *Client) DownloadPluginProvider(ctx context.Context, name string, w io.Writer) error {
	return c.Do(ctx, http.MethodGet, objPath("plugin_providers", name)+"/binary", nil, nil, w)
}
