package replay

import (
	"math"
	"slices"
	"strings"

	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/telemetry"
)

// A RowResult is what the engine decided at one input row, from that row
// and the rows before it only.
type RowResult struct {
	Score  float64  // anomaly score in [0, 1]: nonzero only on rows that raise a finding
	Level  float64  // the detectors' anomaly score of the row, whether or not it raised
	Raised []string // faults raised at this row
	Open   bool     // some fault of the device is raised after this row
}

// A Result is a replay of one table.
type Result struct {
	Rows     []RowResult
	Findings []telemetry.Finding
}

// Run replays t through engine as device id of model, row by row: each
// row becomes one reading with a field per metric that has a number.
//
// A row's Level is the highest anomaly score of the device's Scorer rules
// after the row (anomaly: |z|/(|z|+k); context: 0.5 at its novelty limit,
// 0.75 when every context is new; 0.5 is the raise level), or, without
// any, 1 while a fault is open and 0 otherwise. Its Score is the
// Level on rows that raise a finding and 0 elsewhere: a fault is reported
// once, at its onset, as a ticket is opened once. (NAB counts every row at
// or above its threshold as a detection, so a score that stays high for
// the length of a fault would be charged as a string of false positives.)
// The engine must be fresh for id (Run does not reset it).
func Run(t *Table, engine *detectors.Engine, id telemetry.DeviceID, model string) Result {
	res := Result{Rows: make([]RowResult, len(t.Rows))}
	open := map[string]bool{}
	// Reading.Fields are sorted by name.
	order := make([]int, len(t.Metrics))
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(t.Metrics[a], t.Metrics[b]) })
	fields := make([]telemetry.Field, 0, len(t.Metrics))
	for i, row := range t.Rows {
		fields = fields[:0]
		for _, j := range order {
			if v := row.Values[j]; !math.IsNaN(v) {
				fields = append(fields, telemetry.Field{Name: t.Metrics[j], Value: v})
			}
		}
		r := telemetry.Reading{Device: id, Model: model, At: row.At, Fields: fields}
		rr := &res.Rows[i]
		for _, f := range engine.Observe(r) {
			res.Findings = append(res.Findings, f)
			switch f.State {
			case telemetry.Raised:
				open[f.Rule] = true
				rr.Raised = append(rr.Raised, f.Fault)
			case telemetry.Cleared:
				delete(open, f.Rule)
			}
		}
		rr.Open = len(open) > 0
		if s, ok := engine.Score(id); ok {
			rr.Level = s
		} else if rr.Open {
			rr.Level = 1
		}
		if len(rr.Raised) > 0 {
			rr.Score = max(rr.Level, 0.5) // a raise is at least the raise level
		}
	}
	return res
}
