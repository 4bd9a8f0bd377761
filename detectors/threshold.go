// The threshold detector: a metric above (or below) a limit for a duration.
//
// Config keys (profiles.<model>.rules[i], with detector: threshold):
//
//	metric            the reading field to watch (a boolean is 0 or 1)
//	detector          threshold
//	above             raise when the value is > above (set exactly one of above and below)
//	below             raise when the value is < below
//	clear_below       an above rule clears when the value is <= clear_below; default above
//	clear_above       a below rule clears when the value is >= clear_above; default below
//	for               how long the raise condition must hold; default 0 (the first breaching reading raises)
//	clear_for         how long the clear condition must hold; default for
//	name              the rule's name in findings; default metric + "/threshold"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// When it fires: the condition (value > above, or value < below) holds from a
// first breaching reading at t0 through a reading at t >= t0+for; that reading
// raises. Every reading of the metric in between must breach: one that does
// not resets t0 to the next breaching reading. The detector sees only
// readings, so a gap without readings does not break a run (missing data is
// the offline detector's business).
//
// When it clears: once raised, the clear condition (value <= clear_below, or
// value >= clear_above) must hold the same way for clear_for. A value between
// the clear level and the limit (the hysteresis band), or past the limit
// again, keeps the fault raised and resets the clear run. Raise is strict and
// clear is not, so with no hysteresis (clear level = limit) every value is
// either breaching or clearing.
//
// Time is event time, Reading.At; the detector never reads a clock. A reading
// whose At is not after that of the last reading the detector accepted (out
// of order or a duplicate timestamp) is ignored: no state change, no finding.
// So is a reading without the rule's metric, a NaN value, and a reading
// outside the years 1678 to 2262 (At must fit int64 nanoseconds).
//
// Example rule: raise supply_overheat when supply_temp_c stays above 65 for
// 10 minutes; clear it when it has stayed at or below 60 for 5 minutes.
//
//	- metric: supply_temp_c
//	  detector: threshold
//	  above: 65
//	  clear_below: 60
//	  for: 10m
//	  clear_for: 5m
//	  fault: supply_overheat
//	  severity: major
//	  customer_visible: true
//	  remedy: Check the circulation pump and the flow valve.
//
// Readings every 5 minutes of 70, 71.2, 68 raise it at 10m (above 65 from 0m
// through 10m); 62, 61 keep it raised (between 60 and 65); 59, 58 clear it at
// 30m (at or below 60 from 25m through 30m). testdata/threshold_example.csv
// is this trace.

package detectors

import (
	"fmt"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// thresholdRule is a validated threshold Rule with its defaults applied,
// shared by every device's Threshold.
type thresholdRule struct {
	ruleInfo
	below    bool    // a below rule; otherwise above
	limit    float64 // above or below
	clear    float64 // clear_below or clear_above
	forDur   time.Duration
	clearFor time.Duration
}

func compileThreshold(r Rule) *thresholdRule {
	t := &thresholdRule{ruleInfo: newRuleInfo(r)}
	t.setLimits(r)
	return t
}

// setLimits applies above/below, clear_below/clear_above, for and
// clear_for with their defaults (shared with the rate detector).
func (t *thresholdRule) setLimits(r Rule) {
	t.forDur, t.clearFor = r.For, r.For
	if r.ClearFor != nil {
		t.clearFor = *r.ClearFor
	}
	if r.Above != nil {
		t.limit, t.clear = *r.Above, *r.Above
		if r.ClearBelow != nil {
			t.clear = *r.ClearBelow
		}
	} else {
		t.below = true
		t.limit, t.clear = *r.Below, *r.Below
		if r.ClearAbove != nil {
			t.clear = *r.ClearAbove
		}
	}
}

func (t *thresholdRule) breaches(v float64) bool {
	if t.below {
		return v < t.limit
	}
	return v > t.limit
}

func (t *thresholdRule) clears(v float64) bool {
	if t.below {
		return v >= t.clear
	}
	return v <= t.clear
}

func (t *thresholdRule) op() string {
	if t.below {
		return "below"
	}
	return "above"
}

// condition returns whether the condition of the current phase holds for
// v and how long it must hold.
func (t *thresholdRule) condition(raised bool, v float64) (bool, time.Duration) {
	if raised {
		return t.clears(v), t.clearFor
	}
	return t.breaches(v), t.forDur
}

// A Threshold is the threshold detector for one rule on one device. It
// implements Detector. An above rule raises when every reading of the metric
// from t0 through t >= t0+For has been > Above, and then clears when every
// reading from t1 through t >= t1+ClearFor has been <= ClearBelow; a below
// rule mirrors it (< Below, >= ClearAbove). Readings not after the last one
// it accepted are ignored. threshold.go's file comment has the details and
// an example. Its zero value is not usable: get one from NewThreshold.
type Threshold struct {
	rule *thresholdRule
	clk  clock
	run  run
}

var _ Detector = (*Threshold)(nil)

// NewThreshold returns a Threshold for r, which must be a valid rule with
// detector threshold. The Engine builds its Thresholds itself; NewThreshold
// is for running one rule on its own, as forewarn replay and tests do.
func NewThreshold(r Rule) (*Threshold, error) {
	if err := checkRule(r, DetectorThreshold); err != nil {
		return nil, err
	}
	return &Threshold{rule: compileThreshold(r)}, nil
}

// checkRule validates r and checks it is a rule of detector want.
func checkRule(r Rule, want string) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Detector != want {
		return fmt.Errorf("detector: %q is not %s", r.Detector, want)
	}
	return nil
}

// Observe implements Detector. It returns a Raised or Cleared finding when r
// decides one.
func (t *Threshold) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	v, at, ok := t.clk.value(r, t.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	hold, need := t.rule.condition(t.run.Raised, v)
	if !t.run.step(at, hold, need) {
		return telemetry.Finding{}, false
	}
	return t.rule.finding(r, &t.run, v, need, "")
}

// finding builds the Finding for the run that just completed; run.raised
// already holds the new state. what names the watched quantity in the note
// (the metric when empty).
func (t *thresholdRule) finding(r telemetry.Reading, run *run, v float64, need time.Duration, what string) (telemetry.Finding, bool) {
	if what == "" {
		what = t.metric
	}
	since := run.sinceTime(r.At.Location())
	held := r.At.Sub(since)
	limit, cond := t.limit, t.op()
	if !run.Raised {
		limit = t.clear
		cond = "at or below"
		if t.below {
			cond = "at or above"
		}
	}
	var note string
	if held > 0 {
		note = fmt.Sprintf("%s was %s %s for %s (last %s)", what, cond, num(limit), held, num(v))
	} else {
		note = fmt.Sprintf("%s was %s, %s %s", what, num(v), cond, num(limit))
	}
	return t.ruleInfo.finding(r.Device, r.Model, r.At, run.Raised, telemetry.Evidence{
		Value:   v,
		Limit:   limit,
		Op:      t.op(),
		For:     need.String(),
		Since:   since,
		Samples: int(run.Samples),
		Note:    note,
	}), true
}
