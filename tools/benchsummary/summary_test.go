package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkHTTPSGet-2        	   13840	     86700 ns/op	    9000 B/op	     100 allocs/op
BenchmarkInProcessGet-2    	  150000	      7800 ns/op
BenchmarkInProcessGet-2    	  150000	      8200 ns/op
BenchmarkInProcessGet-2    	  150000	      9000 ns/op
BenchmarkPluginActions/direct/callers=1-2  	5000	 200000 ns/op	 5977 ops/s	 162.0 p50-µs	 320.0 p99-µs
BenchmarkPluginActions/provisiond/callers=1-2  	5000	 400000 ns/op	 2394 ops/s	 375.0 p50-µs	 1370 p99-µs
PASS
`

func TestSummary(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := r["BenchmarkInProcessGet"]["ns/op"]; got != 8200 {
		t.Fatalf("median of three runs = %v, want 8200", got)
	}
	var out bytes.Buffer
	figs := []figure{
		{Name: "get", Floor: ref{"BenchmarkInProcessGet", "ns/op"}, Ours: ref{"BenchmarkHTTPSGet", "ns/op"}, Goal: 5},
		{Name: "p50", Floor: ref{"BenchmarkPluginActions/direct/callers=1", "p50-µs"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=1", "p50-µs"}, Goal: 3},
		{Name: "rate", Floor: ref{"BenchmarkPluginActions/direct/callers=1", "ops/s"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=1", "ops/s"}, HigherIsBetter: true, Goal: 0.5},
		{Name: "absent", Floor: ref{"BenchmarkNope", "ns/op"}, Ours: ref{"BenchmarkHTTPSGet", "ns/op"}},
	}
	if err := summarise(&out, figs, r); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"get ", "8.2 µs/op", "86.7 µs/op", "10.6×", "≤ 5×", "MISSED",
		"p50 ", "162 p50-µs", "375 p50-µs", "2.31×", "≤ 3×", "met",
		"rate ", "0.401×", "≥ 0.5×",
		"absent ", "not run",
	}
	if got := show(1.6e6, "deliveries/s", true); got != "1.6M deliveries/s" {
		t.Errorf("show(1.6e6) = %q", got)
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, out.String())
		}
	}
}
