package pluginhost

import (
	"testing"

	"github.com/provisionhq/provision/models"
)

// TestMetricSeriesExistFromStart: once a plugin runs, each of its series
// is exported at zero, before any action, restart or publish.
func TestMetricSeriesExistFromStart(t *testing.T) {
	s, _, _ := runningPlugin(t, "fake", &models.Plugin{Name: "f", Provider: "fake"}, nil)
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{ // family -> series for plugin f
		"provision_plugin_actions_total":           2,
		"provision_plugin_publish_total":           2,
		"provision_plugin_action_duration_seconds": 1,
		"provision_plugin_restarts_total":          1,
		"provision_plugin_publish_dropped_total":   1,
		"provision_plugin_up":                      1,
	}
	got := map[string]int{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "plugin" && l.GetValue() == "f" {
					got[f.GetName()]++
				}
			}
		}
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("%s: %d series for plugin f before any use, want %d (all: %v)", name, got[name], n, got)
		}
	}
}
