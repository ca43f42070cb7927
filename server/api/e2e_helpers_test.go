package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

// call sends a request as the admin and decodes a JSON answer into out
// (when not nil); it returns the response.
func call(t *testing.T, ts *servertest.Server, method, path string, body, out any) *http.Response {
	t.Helper()
	resp, buf := ts.Do(t, method, path, body)
	if out != nil && len(buf) > 0 {
		if err := json.Unmarshal(buf, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, buf, err)
		}
	}
	return resp
}

// mustStatus fails unless the response has the wanted status.
func mustStatus(t *testing.T, resp *http.Response, want int, what string) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d", what, resp.StatusCode, want)
	}
}

// wantError checks that body is a models.Error whose Code is the status and
// whose messages contain each of contains.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, contains ...string) *models.Error {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var e models.Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not a models.Error: %v", body, err)
	}
	if e.Code != status {
		t.Fatalf("error Code %d != HTTP status %d", e.Code, status)
	}
	full := e.Error()
	for _, c := range contains {
		if !strings.Contains(full, c) {
			t.Fatalf("error %q does not contain %q", full, c)
		}
	}
	return &e
}
