// Command benchsummary reads `go test -bench` output on standard input and
// prints the summary table of provision's benchmark figures: for each
// figure, its floor (measured in the same run), ours, their ratio and the
// goal, so `./build.sh bench` ends with one table whatever packages ran.
//
//	go test -run '^$' -bench . ./server/api | go run ./tools/benchsummary
//
// A figure whose benchmarks did not run is listed as "not run"; the exit
// status is 0 either way (a missed goal is news, not a build failure).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

func main() {
	results, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchsummary:", err)
		os.Exit(1)
	}
	if err := summarise(os.Stdout, figures, results); err != nil {
		fmt.Fprintln(os.Stderr, "benchsummary:", err)
		os.Exit(1)
	}
}

// readLines returns r's lines (benchmark lines can be long).
func readLines(r io.Reader) ([]string, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
