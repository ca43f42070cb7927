package pluginhost

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFakePluginStallNeverAnswers200 pins the fake provider's "sleep"
// action: when the host gives up on it, the fake must drop the connection
// rather than return from its handler without writing, which lets net/http
// send an implicit empty 200 that a racing caller could read as success
// (audit 2 FLAKY-1, latent here). A client that half-closes its side ends
// the request's context on the server while it can still read, so it sees
// exactly what the fake sends after giving up.
func TestFakePluginStallNeverAnswers200(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "to.sock")
	cmd := exec.Command(installBinary(t, t.TempDir(), "fake", "fake"), "listen", sock, filepath.Join(dir, "from.sock"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY!" {
				ready <- true
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the fake plugin exited without printing READY!")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fake plugin did not print READY! within 30s")
	}

	conn, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"Command":"sleep","Params":{}}`
	req := "POST /api-plugin/v4/action HTTP/1.1\r\nHost: unix\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the fake neither answered nor closed the connection: %v", err)
	}
	if strings.HasPrefix(string(got), "HTTP/1.1 200") {
		t.Fatalf("a stalled action that was given up answered %q: an implicit 200 a caller could take as success", got)
	}
}
