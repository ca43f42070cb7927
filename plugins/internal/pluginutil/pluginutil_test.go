package pluginutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

func TestMakeError(t *testing.T) {
	e := MakeError("vbox1", 409, "Command failed: %s", "poweron")
	if e.Model != "plugin" || e.Key != "vbox1" || e.Type != "rpc" || e.Code != 409 ||
		len(e.Messages) != 1 || e.Messages[0] != "Command failed: poweron" {
		t.Fatalf("unexpected error %+v", e)
	}
	if got := MakeError("x", 0, "boom").Code; got != 500 {
		t.Fatalf("code 0 must become 500, got %d", got)
	}
}

func TestConvertError(t *testing.T) {
	if ConvertError("k", 400, nil) != nil {
		t.Fatal("nil error must stay nil")
	}
	orig := &models.Error{Model: "machines", Key: "m1", Type: "GET", Code: 404, Messages: []string{"Not Found"}}
	got := ConvertError("k", 409, fmt.Errorf("wrapped: %w", orig))
	if got.Code != 409 || got.Model != "machines" || got.Messages[0] != "Not Found" {
		t.Fatalf("models.Error not kept: %+v", got)
	}
	if orig.Code != 404 {
		t.Fatal("ConvertError must not modify its input")
	}
	got = ConvertError("k", 400, errors.New("disk full"))
	if got.Code != 400 || got.Key != "k" || got.Messages[0] != "Err: disk full" {
		t.Fatalf("plain error: %+v", got)
	}
}

func TestTypedParams(t *testing.T) {
	var params map[string]any
	if err := json.Unmarshal([]byte(`{"n":2048,"f":1.5,"s":"x","b":true,"l":["a","b"],"bad":[1],"null":null}`), &params); err != nil {
		t.Fatal(err)
	}
	if n, err := IntParam(params, "n", 7); err != nil || n != 2048 {
		t.Fatalf("IntParam float64: %d %v", n, err)
	}
	if n, err := IntParam(params, "missing", 7); err != nil || n != 7 {
		t.Fatalf("IntParam default: %d %v", n, err)
	}
	if n, err := IntParam(params, "null", 7); err != nil || n != 7 {
		t.Fatalf("IntParam null: %d %v", n, err)
	}
	if _, err := IntParam(params, "f", 7); err == nil {
		t.Fatal("fractional number accepted as int")
	}
	if _, err := IntParam(params, "s", 7); err == nil || err.Error() != "s must be a number" {
		t.Fatalf("string accepted as int: %v", err)
	}
	if n, err := IntParam(map[string]any{"i": int64(3)}, "i", 0); err != nil || n != 3 {
		t.Fatalf("int64: %d %v", n, err)
	}
	if s, err := StringParam(params, "s", "d"); err != nil || s != "x" {
		t.Fatalf("StringParam: %q %v", s, err)
	}
	if _, err := StringParam(params, "n", "d"); err == nil {
		t.Fatal("number accepted as string")
	}
	if b, err := BoolParam(params, "b", false); err != nil || !b {
		t.Fatalf("BoolParam: %v %v", b, err)
	}
	if l, err := StringListParam(params, "l", nil); err != nil || len(l) != 2 || l[1] != "b" {
		t.Fatalf("StringListParam: %v %v", l, err)
	}
	if _, err := StringListParam(params, "bad", nil); err == nil {
		t.Fatal("list of numbers accepted")
	}
	if _, err := ValidateString("p", nil); err == nil || err.Error() != "Must specify p" {
		t.Fatalf("ValidateString(nil): %v", err)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a finished sleep returned %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled sleep returned %v, want context.Canceled", err)
	}
}
