// Package bulk runs one ipmi machine action over every machine matching a
// filter, in parallel with a concurrency limit, and reports per-machine
// results and errors: operators power-cycle racks, not machines.
package bulk

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/ipmi/internal/bmc"
)

// Param names of the system action.
const (
	Command            = "bulkAction"
	ParamCommand       = "ipmi/bulk-command"
	ParamFilter        = "ipmi/bulk-filter"
	ParamConcurrency   = "ipmi/bulk-concurrency"
	ParamAllowEmpty    = "ipmi/bulk-allow-empty"
	DefaultConcurrency = 16
	MaxConcurrency     = 256
)

// Action is the AvailableAction of the system action.
func Action() models.AvailableAction {
	return models.AvailableAction{Model: "", Command: Command,
		RequiredParams: []string{ParamCommand, ParamFilter},
		OptionalParams: []string{ParamConcurrency, ParamAllowEmpty}}
}

// Machine identifies one selected machine.
type Machine struct {
	// UUID and Name are the machine's key and name.
	UUID, Name string
}

// Source lists machines and reads their params; ClientSource is the
// provisiond-backed one.
type Source interface {
	// Machines lists the machines matching DRP list filter pairs.
	Machines(ctx context.Context, filters []string) ([]Machine, error)
	// Params returns one machine's aggregated params.
	Params(ctx context.Context, uuid string) (map[string]any, error)
}

// Runner runs one machine action (actions.Dispatcher.Run).
type Runner func(ctx context.Context, command string, params map[string]any) (any, *models.Error)

// Result is one machine's outcome.
type Result struct {
	// Machine is the machine's UUID.
	Machine string `json:"Machine"`
	// Name is the machine's name.
	Name string `json:"Name"`
	// Result is what the action returned, when it succeeded.
	Result any `json:"Result,omitempty"`
	// Error is why the action failed or was not started.
	Error *models.Error `json:"Error,omitempty"`
}

// Summary is the answer of the system action.
type Summary struct {
	// Command is the machine action that was run.
	Command string `json:"Command"`
	// Filter is the ipmi/bulk-filter as given.
	Filter string `json:"Filter"`
	// Total is how many machines the filter selected.
	Total int `json:"Total"`
	// Succeeded counts the Results without an Error.
	Succeeded int `json:"Succeeded"`
	// Failed counts the Results with an Error.
	Failed int `json:"Failed"`
	// Results has one entry per selected machine, sorted by name.
	Results []Result `json:"Results"`
}

// Request is the validated system action.
type Request struct {
	// Command is the machine action to run (ipmi/bulk-command).
	Command string
	// Filter is ipmi/bulk-filter as given, for the Summary.
	Filter string
	// Filters are Filter parsed into DRP list filter pairs (ParseFilter).
	Filters []string
	// Concurrency is how many machines run at once (1 to MaxConcurrency).
	Concurrency int
	// Overrides are the action's other params, applied over each machine's.
	Overrides map[string]any
	// AllowEmpty makes a filter that selects no machine an empty Summary
	// instead of a 404 (ipmi/bulk-allow-empty).
	AllowEmpty bool
}

// ParseFilter turns "rack=Eq(r12)&Name=Re(^node)" into DRP list filter
// pairs (sorted by key for determinism). A param is filtered on by its own
// name: the server falls back to the param for a name that is not a field.
func ParseFilter(s string) ([]string, error) {
	q, err := url.ParseQuery(strings.TrimPrefix(strings.TrimSpace(s), "?"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a query string like rack=Eq(r12)&Name=Re(^node): %w", ParamFilter, err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		for _, v := range q[k] {
			if k == "" || v == "" {
				return nil, fmt.Errorf("%s term %q=%q needs both a field and a test", ParamFilter, k, v)
			}
			out = append(out, k, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s must select machines, e.g. rack=Eq(r12)", ParamFilter)
	}
	return out, nil
}

// Run executes req over the machines src selects. A failure to list
// machines, or (unless req.AllowEmpty) a filter that selects none, is the
// action's error; per-machine failures are in the Summary.
func Run(ctx context.Context, src Source, run Runner, req *Request) (*Summary, *models.Error) {
	ms, err := src.Machines(ctx, req.Filters)
	if err != nil {
		return nil, bmc.Error(502, "listing machines with %s %q failed: %v", ParamFilter, req.Filter, err)
	}
	if len(ms) == 0 && !req.AllowEmpty {
		return nil, noMatch(req)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	sum := &Summary{Command: req.Command, Filter: req.Filter, Total: len(ms), Results: make([]Result, len(ms))}
	conc := min(max(req.Concurrency, 1), MaxConcurrency)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, m := range ms {
		sum.Results[i] = Result{Machine: m.UUID, Name: m.Name}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			sum.Results[i].Error = bmc.Error(504, "not started: %v", ctx.Err())
			continue
		}
		wg.Add(1)
		go func(r *Result) {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					r.Error = bmc.Error(500, "ipmi %s on %s failed internally: %v", req.Command, r.Name, p)
				}
			}()
			params, err := src.Params(ctx, r.Machine)
			if err != nil {
				r.Error = bmc.Error(502, "reading the params of machine %s failed: %v", r.Name, err)
				return
			}
			for k, v := range req.Overrides {
				params[k] = v
			}
			r.Result, r.Error = run(ctx, req.Command, params)
		}(&sum.Results[i])
	}
	wg.Wait()
	for _, r := range sum.Results {
		if r.Error != nil {
			sum.Failed++
		} else {
			sum.Succeeded++
		}
	}
	return sum, nil
}

// noMatch is the 404 for a filter that selects no machine, with a hint
// when a term names a param as Params.<name> (which matches nothing).
func noMatch(req *Request) *models.Error {
	hint := ""
	for i := 0; i < len(req.Filters); i += 2 {
		if name, ok := strings.CutPrefix(req.Filters[i], "Params."); ok && name != "" {
			hint = fmt.Sprintf("; filter on a param by its own name (%s=...), not %s", name, req.Filters[i])
			break
		}
	}
	return bmc.Error(404, "no machine matches %s (%s)%s; set %s to true to allow an empty selection",
		req.Filter, ParamFilter, hint, ParamAllowEmpty)
}

// ClientSource reads machines from provisiond with the plugin's API client.
type ClientSource struct {
	// C is the plugin's provisiond API client.
	C *client.Client
}

// Machines lists machines matching filters (only Uuid and Name are kept).
func (s ClientSource) Machines(ctx context.Context, filters []string) ([]Machine, error) {
	var ms []models.Machine
	if err := s.C.List(ctx, "machines", &ms, filters...); err != nil {
		return nil, err
	}
	out := make([]Machine, len(ms))
	for i, m := range ms {
		out[i] = Machine{UUID: m.Uuid.String(), Name: m.Name}
	}
	return out, nil
}

// Params returns the machine's aggregated params with secure params
// decrypted (GET machines/<uuid>/params?aggregate=true&decode=true).
func (s ClientSource) Params(ctx context.Context, uuid string) (map[string]any, error) {
	out := map[string]any{}
	q := url.Values{"aggregate": {"true"}, "decode": {"true"}}
	if err := s.C.Do(ctx, "GET", "machines/"+url.PathEscape(uuid)+"/params", q, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}
