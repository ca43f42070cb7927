package plugintest

import (
	"testing"

	"github.com/provisionhq/provision/models"
)

func TestParamSchema(t *testing.T) {
	c := &models.Content{Sections: map[string]map[string]any{"params": {
		"a/typed": map[string]any{"Name": "a/typed", "Schema": map[string]any{"type": "string"}},
		"a/bare":  map[string]any{"Name": "a/bare"},
	}}}
	if s := ParamSchema(t, c, "a/typed"); s["type"] != "string" {
		t.Fatalf("schema = %v", s)
	}
	if s := ParamSchema(t, c, "a/bare"); s != nil {
		t.Fatalf("a param without Schema gave %v", s)
	}
}
