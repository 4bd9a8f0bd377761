// The rate detector: a metric changing faster than a limit per unit time.
//
// Config keys (profiles.<model>.rules[i], with detector: rate):
//
//	metric            the reading field to watch
//	detector          rate
//	above             raise when the change per `per` is > above (a rise faster than above)
//	below             raise when the change per `per` is < below (e.g. -2: a fall faster than 2 per `per`)
//	clear_below       an above rule clears when the rate is <= clear_below; default above
//	clear_above       a below rule clears when the rate is >= clear_above; default below
//	per               the unit of time of the limits; default 1m
//	window            the shortest span a rate is measured over; default 0 (consecutive readings)
//	for               how long the rate must stay past the limit; default 0
//	clear_for         how long the clear condition must hold; default for
//	name              the rule's name in findings; default metric + "/rate"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// How the rate is measured: the detector keeps an anchor reading (t0, v0).
// When a reading (t, v) arrives with t-t0 >= window, the rate is
// (v-v0)/(t-t0) scaled to `per`, and (t, v) becomes the next anchor, so
// rates are measured over consecutive, non-overlapping spans of at least
// window. Readings in between only wait. This keeps two numbers of state
// and makes a gap in the data stretch one span instead of inventing a rate.
//
// When it fires and clears: exactly as the threshold detector, applied to
// the measured rates instead of the values (threshold.go): raise when the
// rate is past the limit for `for`, clear when it is back at or within the
// clear level for clear_for. Readings not after the last accepted one,
// without the metric, or NaN are ignored.
//
// Example rule: raise pressure_drop when boiler pressure falls faster than
// 0.2 bar per 10 minutes, measured over spans of at least 10 minutes.
//
//	- metric: pressure_bar
//	  detector: rate
//	  below: -0.2
//	  clear_above: -0.05
//	  per: 10m
//	  window: 10m
//	  fault: pressure_drop
//	  severity: major
//	  customer_visible: true
//	  remedy: Check the system for leaks; top up to 1.5 bar.
//
// testdata/rate_example.csv is a trace of this rule: 1.5 bar steady, then a
// leak losing 0.3 bar per 10 minutes, raised at the first 10-minute span
// that shows it, cleared once the pressure holds again.

package detectors

import (
	"fmt"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

type rateRule struct {
	thresholdRule
	per    time.Duration
	window time.Duration
}

func compileRate(r Rule) *rateRule {
	t := &rateRule{thresholdRule: thresholdRule{ruleInfo: newRuleInfo(r)}, per: r.Per, window: r.Window}
	if t.per == 0 {
		t.per = time.Minute
	}
	t.setLimits(r)
	return t
}

func (r Rule) rateProblems() []*keyError {
	ps := problemList(r.thresholdProblems())
	ps.nonNegative("per", r.Per)
	ps.nonNegative("window", r.Window)
	return ps
}

// A Rate is the rate detector for one rule on one device. It implements
// Detector; rate.go's file comment has the semantics.
type Rate struct {
	rule     *rateRule
	clk      clock
	run      run
	anchorAt int64
	anchorV  float64
}

// NewRate returns a Rate for r, a valid rule with detector rate.
func NewRate(r Rule) (*Rate, error) {
	if err := checkRule(r, DetectorRate); err != nil {
		return nil, err
	}
	return &Rate{rule: compileRate(r)}, nil
}

// Observe implements Detector.
func (d *Rate) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	first := !d.clk.Seen
	v, at, ok := d.clk.value(r, d.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	if first {
		d.anchorAt, d.anchorV = at, v
		return telemetry.Finding{}, false
	}
	span := at - d.anchorAt
	if span < int64(d.rule.window) {
		return telemetry.Finding{}, false
	}
	rate := (v - d.anchorV) / float64(span) * float64(d.rule.per)
	d.anchorAt, d.anchorV = at, v
	hold, need := d.rule.condition(d.run.Raised, rate)
	if !d.run.step(at, hold, need) {
		return telemetry.Finding{}, false
	}
	f, ok := d.rule.finding(r, &d.run, rate, need, fmt.Sprintf("the change of %s per %s", d.rule.metric, d.rule.per))
	f.Evidence.Score = rate
	f.Evidence.Expected = v
	f.Evidence.Window = time.Duration(span).String()
	return f, ok
}
