package pluginsdk_test

import (
	"os"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
)

func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }

// TestBinaryHandshake drives a real provider process like the host does.
func TestBinaryHandshake(t *testing.T) {
	p := plugintest.FromPackage(t, "./internal/testprovider")
	if def := p.Define(t); def.Name != "testprovider" || def.PluginVersion != 4 || def.Content != "" {
		t.Errorf("define: %+v", def)
	}
	out, err := p.UnpackOutput(t.TempDir())
	if err != nil || len(out) != 0 {
		t.Errorf("unpack without Unpacker: %v %q", err, out)
	}

	pl := p.Start(t)
	if pl.Stdout() != "READY!\n" {
		t.Errorf("stdout before config: %q", pl.Stdout())
	}
	expect(t, pl.Config(t, map[string]any{"a": 1}), 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	expect(t, pl.Action(t, &models.Action{Command: "ping"}), 200, `"ping"`)
	pl.Host.WaitForMessage(t, 0, "configured")
	expect(t, pl.Stop(t), 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	pl.Host.WaitForMessage(t, 0, "stopper called")
	pl.Host.WaitForMessage(t, 0, "STOPPING")
	if _, err := os.Stat(pl.ToPath); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if s := pl.Stderr(); strings.TrimSpace(s) != "" {
		t.Errorf("unexpected stderr: %q", s)
	}
}
