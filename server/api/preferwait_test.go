package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

// TestPreferWaitLongPoll: GET with If-None-Match and "Prefer: wait=" (DRP's
// client WaitFor) answers 304 when nothing changed within the wait, the
// new object as soon as it changes, and 404 when it is deleted meanwhile.
func TestPreferWaitLongPoll(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	var m models.Machine
	mustStatus(t, call(t, ts, "POST", "/api/v3/machines", map[string]any{"Name": "w1"}, &m), 201, "create")
	path := "/api/v3/machines/" + m.Uuid.String()
	get := func(etag, prefer string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Authorization", servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword))
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
		resp, err := servertest.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, _ := get("", "")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" {
		t.Fatalf("plain GET: %d etag %q", resp.StatusCode, etag)
	}
	// Nothing changes: 304 once the wait is over.
	if resp, _ := get(etag, "wait=300ms"); resp.StatusCode != 304 || resp.Header.Get("ETag") != etag {
		t.Fatalf("unchanged long-poll: %d %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	// A stale ETag answers at once with the object.
	if resp, _ := get(`"stale"`, "wait=600"); resp.StatusCode != 200 {
		t.Fatalf("stale ETag: %d", resp.StatusCode)
	}

	// A change during the wait ends it with the new object.
	type result struct {
		resp *http.Response
		body []byte
	}
	waiting := make(chan result, 1)
	go func() {
		r, b := get(etag, "wait=60")
		waiting <- result{r, b}
	}()
	patch := []map[string]any{{"op": "replace", "path": "/Description", "value": "changed"}}
	buf, _ := json.Marshal(patch)
	req, _ := http.NewRequest("PATCH", ts.URL+path, bytes.NewReader(buf))
	req.Header.Set("Authorization", servertest.BasicAuth(servertest.AdminUser, ts.AdminPassword))
	presp, err := servertest.HTTPClient().Do(req)
	if err != nil || presp.StatusCode != 200 {
		t.Fatalf("patch: %v %v", presp, err)
	}
	presp.Body.Close()
	select {
	case r := <-waiting:
		var got models.Machine
		if r.resp.StatusCode != 200 || json.Unmarshal(r.body, &got) != nil || got.Description != "changed" || r.resp.Header.Get("ETag") == etag {
			t.Fatalf("long-poll after a change: %d %s", r.resp.StatusCode, r.body)
		}
		etag = r.resp.Header.Get("ETag")
	case <-time.After(50 * time.Second):
		t.Fatal("long-poll did not end on the change")
	}

	// Deleted while waiting: 404.
	go func() {
		r, b := get(etag, "wait=60")
		waiting <- result{r, b}
	}()
	mustStatus(t, call(t, ts, "DELETE", path, nil, nil), 200, "delete")
	select {
	case r := <-waiting:
		if r.resp.StatusCode != 404 {
			t.Fatalf("long-poll on a deleted object: %d %s", r.resp.StatusCode, r.body)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("long-poll did not end on the delete")
	}
}
