package plugintest

import (
	"testing"

	"github.com/provisionhq/provision/models"
)

// ParamSchema returns the JSON Schema of param name in content pack c (nil
// when the param has none), failing the test when the pack does not define
// the param: the lookup content-pack tests make for every param they check.
func ParamSchema(t testing.TB, c *models.Content, name string) map[string]any {
	t.Helper()
	p, ok := c.Sections["params"][name].(map[string]any)
	if !ok {
		t.Fatalf("param %s missing from the content pack", name)
	}
	s, _ := p["Schema"].(map[string]any)
	return s
}
