// The flatline detector: a sensor reporting (nearly) the same value for too
// long, the sign of a stuck or disconnected sensor.
//
// Config keys (profiles.<model>.rules[i], with detector: flatline):
//
//	metric            the reading field to watch
//	detector          flatline
//	window            how long the value must stay flat before raising (required, > 0)
//	tolerance         the largest max-min spread that still counts as flat; default 0 (exactly equal)
//	name              the rule's name in findings; default metric + "/flatline"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// When it fires: the readings from a first one at t0 through one at
// t >= t0+window all lie within a band of width tolerance (max-min <=
// tolerance), and there are at least two of them; that reading raises.
//
// When it clears: at the first reading that widens the band past tolerance
// (the value varies again). That reading also starts the next flat run.
//
// Readings not after the last accepted one, without the metric, or NaN
// are ignored. A gap without readings does not break a flat run.
//
// Example rule: a room temperature sensor that reports exactly the same
// value for 6 hours is stuck.
//
//	- metric: room_temp_c
//	  detector: flatline
//	  window: 6h
//	  tolerance: 0.05
//	  fault: sensor_stuck
//	  severity: minor
//	  remedy: Reseat the room sensor cable; replace the sensor if it stays stuck.
//
// testdata/flatline_example.csv is a trace of this rule.

package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

type flatlineRule struct {
	ruleInfo
	window    time.Duration
	tolerance float64
}

func compileFlatline(r Rule) *flatlineRule {
	f := &flatlineRule{ruleInfo: newRuleInfo(r), window: r.Window}
	if r.Tolerance != nil {
		f.tolerance = *r.Tolerance
	}
	return f
}

func (r Rule) flatlineProblems() []*keyError {
	var ps problemList
	if r.Window <= 0 {
		ps.add("window", "required: a positive duration, e.g. 6h")
	}
	if ps.finite("tolerance", r.Tolerance) && r.Tolerance != nil && *r.Tolerance < 0 {
		ps.add("tolerance", "must not be negative")
	}
	return ps
}

// A Flatline is the flatline detector for one rule on one device. It
// implements Detector; flatline.go's file comment has the semantics.
type Flatline struct {
	rule     *flatlineRule
	clk      clock
	since    int64 // event time of the first reading of the flat run
	min, max float64
	samples  int32
	raised   bool
}

// NewFlatline returns a Flatline for r, a valid rule with detector flatline.
func NewFlatline(r Rule) (*Flatline, error) {
	if err := checkRule(r, DetectorFlatline); err != nil {
		return nil, err
	}
	return &Flatline{rule: compileFlatline(r)}, nil
}

// Observe implements Detector.
func (d *Flatline) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	first := !d.clk.Seen
	v, at, ok := d.clk.value(r, d.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	lo, hi := math.Min(d.min, v), math.Max(d.max, v)
	if first || hi-lo > d.rule.tolerance {
		var f telemetry.Finding
		cleared := d.raised
		if cleared {
			f = d.rule.finding(r.Device, r.Model, r.At, false, telemetry.Evidence{
				Value: v, Limit: d.rule.tolerance, Spread: hi - lo, Window: d.rule.window.String(),
				Since: time.Unix(0, d.since).In(r.At.Location()), Samples: int(d.samples),
				Note: fmt.Sprintf("%s varies again: %s after %s flat readings", d.rule.metric, num(v), num(float64(d.samples))),
			})
		}
		d.since, d.min, d.max, d.samples, d.raised = at, v, v, 1, false
		return f, cleared
	}
	d.min, d.max = lo, hi
	d.samples++
	if d.raised || at-d.since < int64(d.rule.window) {
		return telemetry.Finding{}, false
	}
	d.raised = true
	since := time.Unix(0, d.since).In(r.At.Location())
	return d.rule.finding(r.Device, r.Model, r.At, true, telemetry.Evidence{
		Value: v, Limit: d.rule.tolerance, Spread: hi - lo, Window: d.rule.window.String(), For: d.rule.window.String(),
		Since: since, Samples: int(d.samples),
		Note: fmt.Sprintf("%s stayed within %s..%s for %s (%d readings)", d.rule.metric, num(lo), num(hi), r.At.Sub(since), d.samples),
	}), true
}
