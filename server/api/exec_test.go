package api_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"time"
)

// runFail runs a command expected to exit quickly and returns its output.
func runFail(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func jsonUnmarshal(buf []byte, v any) error { return json.Unmarshal(buf, v) }
