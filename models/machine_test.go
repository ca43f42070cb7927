package models

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
)

// TestMachineAcceptsDRPEmptyUUIDs: DRP's client (pborman/uuid) sends an
// unset Uuid/CurrentJob as "", which must decode to the zero UUID; other
// text must still be a valid UUID.
func TestMachineAcceptsDRPEmptyUUIDs(t *testing.T) {
	var m Machine
	if err := json.Unmarshal([]byte(`{"Name":"m1","Uuid":"","CurrentJob":"","Address":""}`), &m); err != nil {
		t.Fatalf("DRP's empty UUIDs rejected: %v", err)
	}
	if m.Name != "m1" || m.Uuid != uuid.Nil || m.CurrentJob != uuid.Nil || m.Address != nil {
		t.Fatalf("decoded %+v", m)
	}
	id := uuid.New()
	if err := json.Unmarshal([]byte(`{"Uuid":"`+id.String()+`"}`), &m); err != nil || m.Uuid != id || m.Name != "m1" {
		t.Fatalf("valid Uuid: %v %+v", err, m)
	}
	if err := json.Unmarshal([]byte(`{"Uuid":"not-a-uuid"}`), &m); err == nil {
		t.Fatal("invalid Uuid accepted")
	}
	buf, _ := json.Marshal(&Machine{Name: "x"})
	var back Machine
	if err := json.Unmarshal(buf, &back); err != nil || back.Name != "x" {
		t.Fatalf("round trip: %v", err)
	}
}
