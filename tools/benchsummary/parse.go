package main

import (
	"io"
	"regexp"
	"strconv"
	"strings"
)

// results maps a benchmark name (without the -GOMAXPROCS suffix) to its
// metrics by unit ("ns/op", "ops/s", "p50-µs", ...). A benchmark seen more
// than once (-count) keeps the median of its values per unit.
type results map[string]map[string]float64

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output: lines "BenchmarkX-2  N  v unit  v
// unit ...". Other lines are ignored.
func parse(r io.Reader) (results, error) {
	lines, err := readLines(r)
	if err != nil {
		return nil, err
	}
	all := map[string]map[string][]float64{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		if all[name] == nil {
			all[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			all[name][f[i+1]] = append(all[name][f[i+1]], v)
		}
	}
	out := results{}
	for name, units := range all {
		out[name] = map[string]float64{}
		for u, vs := range units {
			out[name][u] = median(vs)
		}
	}
	return out, nil
}

func median(vs []float64) float64 {
	s := append([]float64(nil), vs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
