package pluginutil

import (
	"context"
	"fmt"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
)

// API is the part of the REST client the bundled plugins call back with.
// *client.Client implements it; tests may pass anything that keeps state the
// same way.
type API interface {
	// List fetches a collection into out with DRP-style filters.
	List(ctx context.Context, prefix string, out any, filters ...string) error
	// Get fetches one object.
	Get(ctx context.Context, prefix, key string, out any) error
	// Create POSTs a new object.
	Create(ctx context.Context, prefix string, obj, out any) error
	// PatchTo updates an object with a generated JSON patch.
	PatchTo(ctx context.Context, prefix, key string, old, new, out any) error
	// Delete removes an object.
	Delete(ctx context.Context, prefix, key string, out any) error
	// GetParams returns an object's (optionally aggregated) params.
	GetParams(ctx context.Context, prefix, key string, aggregate bool) (map[string]any, error)
	// GetParam decodes one (optionally aggregated) param into out.
	GetParam(ctx context.Context, prefix, key, name string, aggregate bool, out any) error
}

var _ API = (*client.Client)(nil)

// GetDrpParam returns the aggregated value of param on <objType>/<key>
// (GET /<objType>/<key>/params/<param>?aggregate=true); nil when unset.
func GetDrpParam(ctx context.Context, c API, objType, key, param string) (any, error) {
	var v any
	if err := c.GetParam(ctx, objType, key, param, true, &v); err != nil {
		return nil, fmt.Errorf("get param %s of %s/%s: %w", param, objType, key, err)
	}
	return v, nil
}

// GetDrpStringParam is GetDrpParam plus ValidateString.
func GetDrpStringParam(ctx context.Context, c API, objType, key, param string) (string, error) {
	v, err := GetDrpParam(ctx, c, objType, key, param)
	if err != nil {
		return "", err
	}
	return ValidateString(param, v)
}

// GetDrpBoolParam is GetDrpParam plus ValidateBool.
func GetDrpBoolParam(ctx context.Context, c API, objType, key, param string) (bool, error) {
	v, err := GetDrpParam(ctx, c, objType, key, param)
	if err != nil {
		return false, err
	}
	return ValidateBool(param, v)
}

// GetDrpIntParam is GetDrpParam plus ValidateInt.
func GetDrpIntParam(ctx context.Context, c API, objType, key, param string) (int, error) {
	v, err := GetDrpParam(ctx, c, objType, key, param)
	if err != nil {
		return 0, err
	}
	return ValidateInt(param, v)
}

// GetDrpMachineByParam returns the first machine whose param equals value
// (GET /machines?<param>=Eq(<value>)), or nil when none does.
func GetDrpMachineByParam(ctx context.Context, c API, param, value string) (*models.Machine, error) {
	var ms []*models.Machine
	if err := c.List(ctx, "machines", &ms, param, "Eq("+value+")"); err != nil {
		return nil, fmt.Errorf("list machines with %s=%s: %w", param, value, err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	return ms[0], nil
}

// DeleteDrpMachine deletes the machine with the given UUID.
func DeleteDrpMachine(ctx context.Context, c API, uuid string) error {
	if err := c.Delete(ctx, "machines", uuid, nil); err != nil {
		return fmt.Errorf("delete machine %s: %w", uuid, err)
	}
	return nil
}
