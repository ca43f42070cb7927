package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// ref names one metric of one benchmark.
type ref struct {
	Bench, Unit string
}

// figure is one row of the summary: Ours against Floor, both from the same
// run. Ratio is ours/floor. Goal is the bound the ratio should meet: when
// HigherIsBetter the ratio should be at least Goal (a throughput share),
// otherwise at most Goal (a slowdown); Goal 0 means none is set.
type figure struct {
	Name           string
	Floor, Ours    ref
	HigherIsBetter bool
	Goal           float64
	// Scale multiplies the ratio before it is compared and shown (e.g.
	// deliveries per post, where the floor is one subscriber's rate).
	Scale float64
}

func (r results) get(x ref) (float64, bool) {
	v, ok := r[x.Bench][x.Unit]
	return v, ok
}

// summarise writes the table: figure, floor, ours, ratio, goal, verdict.
func summarise(w io.Writer, figs []figure, r results) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tFLOOR\tOURS\tRATIO\tGOAL\tVERDICT\t")
	for _, f := range figs {
		floor, okF := r.get(f.Floor)
		ours, okO := r.get(f.Ours)
		if !okF || !okO || floor == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t%s\tnot run\t\n", f.Name, show(floor, f.Floor.Unit, okF), show(ours, f.Ours.Unit, okO), goal(f))
			continue
		}
		ratio := ours / floor
		if f.Scale != 0 {
			ratio *= f.Scale
		}
		verdict := ""
		switch {
		case f.Goal == 0:
		case f.HigherIsBetter && ratio >= f.Goal, !f.HigherIsBetter && ratio <= f.Goal:
			verdict = "met"
		default:
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Name, show(floor, f.Floor.Unit, true), show(ours, f.Ours.Unit, true),
			ratioText(ratio), goal(f), verdict)
	}
	return tw.Flush()
}

// ratioText prints a ratio with three significant digits, without
// e-notation for large ones.
func ratioText(r float64) string {
	if r >= 1000 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.3g×", r)
}

func goal(f figure) string {
	switch {
	case f.Goal == 0:
		return "-"
	case f.HigherIsBetter:
		return fmt.Sprintf("≥ %g×", f.Goal)
	default:
		return fmt.Sprintf("≤ %g×", f.Goal)
	}
}

func show(v float64, unit string, ok bool) string {
	if !ok {
		return "not run"
	}
	if unit == "ns/op" {
		switch {
		case v >= 1e9:
			return fmt.Sprintf("%.3g s/op", v/1e9)
		case v >= 1e6:
			return fmt.Sprintf("%.3g ms/op", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.3g µs/op", v/1e3)
		}
	}
	if math.Abs(v) >= 1e6 {
		return fmt.Sprintf("%.3gM %s", v/1e6, unit)
	}
	if math.Abs(v) >= 1e4 {
		return fmt.Sprintf("%.3gk %s", v/1e3, unit)
	}
	if math.Abs(v) >= 1e3 {
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}
