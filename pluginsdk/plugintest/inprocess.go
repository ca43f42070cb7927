package plugintest

import (
	"context"
	"io"
	"testing"

	"github.com/provisionhq/provision/pluginsdk"
)

// StartApp runs app's listen command inside the test process (no build),
// against a fake Host, exactly as Start does for a binary. The App's
// output and exit function are redirected; the exit code passed to it
// becomes the Plugin's exit status. Use it for fast tests of plugin logic
// under the race detector; env supplies RS_ENDPOINT/RS_TOKEN (nil: the
// FromPackage defaults). When the test ends the App's context is
// cancelled; if listen has not returned within 30 s after that, the test
// fails with every goroutine's stack.
func StartApp(t testing.TB, app *pluginsdk.App, env map[string]string) *Plugin {
	t.Helper()
	if env == nil {
		env = FromBinary("").Env
	}
	dir := SocketDir(t)
	to, from := socketPaths(t, dir)
	host := NewHost(t, from)
	pl := newPlugin(t, to, host)
	outR, outW := io.Pipe()
	exitCode := make(chan int, 1)
	app.WithOutput(outW, &pl.stderr).
		WithGetenv(func(k string) string { return env[k] }).
		WithExitFunc(func(code int) {
			select {
			case exitCode <- code:
			default:
			}
		})
	app.Command().SetArgs([]string{"listen", to, from})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	read := make(chan struct{})
	go func() { pl.readStdout(outR, ready); close(read) }()
	go func() {
		err := app.ExecuteContext(ctx)
		res := &exitResult{err: err}
		select {
		case res.code = <-exitCode:
		default:
			if err != nil {
				res.code = 1
			}
		}
		outW.Close()
		<-read // Stdout is complete once the plugin counts as exited
		pl.exitErr.Store(res)
		close(pl.exited)
	}()
	t.Cleanup(func() {
		cancel()
		pl.awaitExit(t)
		pl.close()
	})
	pl.waitReady(t, ready, DefaultWait)
	return pl
}
