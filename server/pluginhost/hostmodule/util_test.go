package hostmodule

import (
	"bytes"
	"crypto/tls"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"testing"

	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
	"github.com/provisionhq/provision/server/servertest"
)

func insecure() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
}

func multipartUpload(t *testing.T, e *env, name, variant, query string) (int, []byte) {
	t.Helper()
	bin, err := os.ReadFile(testplugins.Path(t, variant))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(bin)
	mw.Close()
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v3/plugin_providers/"+name+query, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", servertest.BasicAuth(servertest.AdminUser, e.ts.AdminPassword))
	resp, err := servertest.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}
