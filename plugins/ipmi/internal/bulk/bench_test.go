package bulk

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/provisionhq/provision/plugins/ipmi/internal/actions"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmcsim"
)

// BenchmarkPowerStatus100BMCs polls powerstatus on 100 reference BMCs
// (loopback UDP) through bulk.Run with 16 workers, once with the native
// driver and once with the ipmitool driver per iteration, and reports the
// time per 100-BMC sweep for each and their ratio. native-cold is the very
// first native sweep (every session opened); later native sweeps reuse the
// pooled sessions.
//
//	go test -run '^$' -bench PowerStatus100BMCs -benchtime 3x ./plugins/ipmi/internal/bulk/
func BenchmarkPowerStatus100BMCs(b *testing.B) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		b.Fatalf("ipmitool is needed for the comparison: %v", err)
	}
	const n = 100
	src := &memSource{params: map[string]map[string]any{}}
	for i := range n {
		s, err := bmcsim.Start(bmcsim.Options{PoweredOn: i%2 == 0})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		id := fmt.Sprintf("m%03d", i)
		src.machines = append(src.machines, Machine{UUID: id, Name: id})
		src.params[id] = map[string]any{"ipmi/address": s.Host, "ipmi/port-ipmitool": float64(s.Port),
			"ipmi/username": "ADMIN", "ipmi/password": "ADMIN"}
	}
	d := actions.New(actions.Options{})
	b.Cleanup(d.Close)
	ctx := context.Background()
	sweep := func(mode string) time.Duration {
		start := time.Now()
		sum, merr := Run(ctx, src, d.Run, &Request{Command: "powerstatus", Concurrency: 16, Overrides: map[string]any{"ipmi/mode": mode}})
		if merr != nil || sum.Succeeded != n {
			b.Fatalf("%s sweep: %v %+v", mode, merr, sum.Results[0])
		}
		return time.Since(start)
	}
	cold := sweep("native")
	b.ResetTimer()
	var native, tool time.Duration
	for range b.N {
		native += sweep("native")
		tool += sweep("ipmitool")
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(float64(cold)/float64(time.Millisecond), "native-cold-ms/sweep")
	b.ReportMetric(ms(native), "native-ms/sweep")
	b.ReportMetric(ms(tool), "ipmitool-ms/sweep")
	b.ReportMetric(float64(tool)/float64(native), "ipmitool/native")
	b.ReportMetric(0, "ns/op")
}
