package api_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/servertest"
)

func TestSecureParams(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	mustStatus(t, call(t, ts, "POST", "/api/v3/params", map[string]any{"Name": "ipmi/password", "Secure": true, "Schema": map[string]any{"type": "string"}}, nil), 201, "secure param")
	m := newMachine(t, ts, map[string]any{"Name": "sec", "Params": map[string]any{"ipmi/password": "hunter2-plain"}})
	base := "/api/v3/machines/" + m.Uuid.String()

	_, body := ts.Do(t, "GET", base, nil)
	if strings.Contains(string(body), "hunter2-plain") {
		t.Fatalf("secure value shown without decode: %s", body)
	}
	var got models.Machine
	json.Unmarshal(body, &got)
	if _, ok := secrets.AsSecureData(got.Params["ipmi/password"]); !ok {
		t.Fatalf("secure value not in SecureData form: %v", got.Params)
	}
	var v any
	call(t, ts, "GET", base+"/params/ipmi/password?decode=true", nil, &v)
	if v != "hunter2-plain" {
		t.Fatalf("decoded value %v", v)
	}
	_, body = ts.Do(t, "GET", base+"?decode=true", nil)
	if !strings.Contains(string(body), "hunter2-plain") {
		t.Fatalf("decode=true on object: %s", body)
	}
	// Schema applies to the plain value of a secure param.
	resp, body := ts.Do(t, "POST", base+"/params/ipmi/password", `42`)
	wantError(t, resp, body, 422, "Expected: string, given: integer")

	// A client may seal the value itself to the object's public key.
	var pub []byte
	mustStatus(t, call(t, ts, "GET", base+"/pubkey", nil, &pub), 200, "pubkey")
	plain, _ := json.Marshal("sealed-by-client")
	sd, err := secrets.SealTo(pub, plain)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, call(t, ts, "POST", base+"/params/ipmi/password", sd, nil), 200, "set sealed")
	call(t, ts, "GET", base+"/params/ipmi/password?decode=true", nil, &v)
	if v != "sealed-by-client" {
		t.Fatalf("client-sealed value decoded to %v", v)
	}
	// A value sealed to another key is refused.
	otherSD, _ := secrets.SealTo(make([]byte, 32), plain)
	resp, body = ts.Do(t, "POST", base+"/params/ipmi/password", otherSD)
	wantError(t, resp, body, 422, "cannot be opened")

	// The internal resolution used by the plugin host decrypts.
	vals, err := ts.Server.Objects().ResolveParams(t.Context(), "machines", m.Uuid.String(), []string{"ipmi/password"})
	if err != nil || vals["ipmi/password"] != "sealed-by-client" {
		t.Fatalf("ResolveParams: %v %v", vals, err)
	}
}

func TestPersistenceKill9AndSecretsOnDisk(t *testing.T) {
	p := servertest.StartProcess(t, servertest.ProcessOptions{})
	do := func(method, path string, body any, out any) int {
		resp, buf := p.Do(t, method, path, body)
		if out != nil {
			json.Unmarshal(buf, out)
		}
		return resp.StatusCode
	}
	const secret = "very-secret-bmc-password-9731"
	if c := do("POST", "/api/v3/params", map[string]any{"Name": "bmc/password", "Secure": true}, nil); c != 201 {
		t.Fatalf("param: %d", c)
	}
	var m models.Machine
	if c := do("POST", "/api/v3/machines", map[string]any{"Name": "durable", "Params": map[string]any{"bmc/password": secret, "plain": "v"}}, &m); c != 201 {
		t.Fatalf("machine: %d", c)
	}
	if c := do("POST", "/api/v3/machines/"+m.Uuid.String()+"/params/bmc/password", `"`+secret+`-2"`, nil); c != 200 {
		t.Fatalf("set param: %d", c)
	}
	if c := do("POST", "/api/v3/profiles", map[string]any{"Name": "kept"}, nil); c != 201 {
		t.Fatalf("profile: %d", c)
	}

	// A second provisiond on the same base dir fails at once.
	p2 := servertest.Binary(t)
	out, err := runFail(p2, "--base-root", p.BaseRoot, "--api-port", "0", "--static-port", "0")
	if err == nil || !strings.Contains(out, "another provisiond is using") {
		t.Fatalf("second provisiond: err=%v out=%s", err, out)
	}

	p.Kill(t)
	db, err := os.ReadFile(filepath.Join(p.BaseRoot, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(secret)) {
		t.Fatal("secure param value found in plain text in the database file")
	}
	if !bytes.Contains(db, []byte("durable")) {
		t.Fatal("database does not contain the machine at all (test would prove nothing)")
	}
	p.Restart(t)
	var got models.Machine
	if c := do("GET", "/api/v3/machines/Name:durable", nil, &got); c != 200 || got.Uuid != m.Uuid {
		t.Fatalf("after kill -9: %d %+v", c, got)
	}
	var v any
	do("GET", "/api/v3/machines/"+m.Uuid.String()+"/params/bmc/password?decode=true", nil, &v)
	if v != secret+"-2" {
		t.Fatalf("secure param after restart decodes to %v", v)
	}
	if c := do("GET", "/api/v3/profiles/kept", nil, nil); c != 200 {
		t.Fatalf("profile after restart: %d", c)
	}
	if err := p.Stop(t); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	logs := p.Logs()
	if strings.Contains(logs, secret) {
		t.Fatal("secure param value appears in the server log")
	}
	if strings.Contains(logs, p.AdminPassword) {
		t.Fatal("admin password (given by env) appears in the server log")
	}
	if !strings.Contains(logs, "provisiond stopped") || !strings.Contains(logs, "/api/v3/machines") {
		t.Fatalf("log does not show the run (test would prove nothing):\n%s", logs)
	}
}
