package hostmodule

import (
	"time"

	"testing"

	"github.com/provisionhq/provision/models"
)

// The plugin host's start-up sweep of orphaned content layers leaves the
// server's own provision-base layer alone, and plugin layers load next to
// it.
func TestBaseContentSurvivesPluginHost(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	var p models.Param
	if code, raw := e.do("GET", "/api/v3/params/machine-plugin", nil, &p); code != 200 || !p.ReadOnly || p.Bundle != "provision-base" {
		t.Fatalf("machine-plugin after the plugin host started: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v3/params/fake/step", nil, &p); code != 200 || p.Bundle != "fake" {
		t.Fatalf("plugin layer param: %d %s", code, raw)
	}
	// Removing a provider removes its layer only.
	if code, raw := e.do("DELETE", "/api/v3/plugin_providers/fake", nil, nil); code != 200 {
		t.Fatalf("delete provider: %d %s", code, raw)
	}
	waitFor(t, 20*time.Second, "fake layer gone", func() bool {
		code, _ := e.do("GET", "/api/v3/params/fake/step", nil, nil)
		return code == 404
	})
	if code, raw := e.do("GET", "/api/v3/params/kernel-console", nil, &p); code != 200 || p.Bundle != "provision-base" {
		t.Fatalf("kernel-console after a provider was removed: %d %s", code, raw)
	}
}
