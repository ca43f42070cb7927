package secrets

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpenAndPersistence(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v err %v", st.Mode(), err)
	}
	sd, err := k.Seal(map[string]any{"pw": "x"})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Through the generic JSON form, as stored in Params.
	buf, _ := json.Marshal(ToJSONValue(sd))
	var generic any
	json.Unmarshal(buf, &generic)
	back, ok := AsSecureData(generic)
	if !ok {
		t.Fatal("JSON form not recognised")
	}
	v, err := k2.Open(back)
	if err != nil {
		t.Fatal(err)
	}
	if v.(map[string]any)["pw"] != "x" {
		t.Fatalf("opened %v", v)
	}
	other, _ := LoadOrCreate(t.TempDir())
	if _, err := other.Open(sd); err == nil {
		t.Fatal("another key opened the value")
	}
	if _, ok := AsSecureData(map[string]any{"Key": "!", "Nonce": "", "Payload": ""}); ok {
		t.Fatal("garbage recognised as SecureData")
	}
}
