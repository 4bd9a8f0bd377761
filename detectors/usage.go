// The usage detector: a consumable (filter, descaler, salt, ink) whose
// remaining life is forecast to run out within a horizon, so a replacement
// can be shipped before it does (auto-replenishment).
//
// Config keys (profiles.<model>.rules[i], with detector: usage):
//
//	metric            the remaining life (falling, the default: percent, grams, days) or
//	                  the amount used (rising, towards limit = the capacity)
//	detector          usage
//	limit             the level at which the consumable is used up; default 0
//	direction         falling (remaining life; default) or rising (amount used)
//	window            how much recent history the consumption rate is fitted over (required)
//	horizon           raise when it will run out within this time (required)
//	tolerance         a move away from limit larger than this means the consumable was
//	                  replaced (refilled); default 0 (any move away from limit)
//	name              the rule's name in findings; default metric + "/usage"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// The consumption rate is fitted as the forecast detector fits its trend
// (forecast.go: weighted least squares over window, judged after 5
// readings spanning window/2), but the fit restarts at each replacement,
// so the rate is that of the current consumable.
//
// When it fires: the consumable is forecast to reach limit within horizon
// with confidence >= 0.9, or has reached it. It stays raised while the
// consumable is used (a slower rate does not clear it: the order is
// placed). When it clears: the consumable is replaced, i.e. a reading
// moves away from limit by more than tolerance.
//
// Readings not after the last accepted one, without the metric, or NaN are
// ignored.
//
// Example rule: order water-softener salt a week before it runs out.
//
//	- metric: salt_remaining_pct
//	  detector: usage
//	  limit: 5
//	  window: 168h
//	  horizon: 168h
//	  tolerance: 10
//	  fault: salt_low
//	  severity: info
//	  customer_visible: true
//	  remedy: We are shipping a salt refill; pour it in when it arrives.
//
// testdata/usage_example.csv is a trace of this rule.

package detectors

import (
	"fmt"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// usageConfidence is the confidence a usage rule needs to raise.
const usageConfidence = 0.9

type usageRule struct {
	ruleInfo
	limit, tolerance float64
	rising           bool
	window, horizon  time.Duration
}

func compileUsage(r Rule) *usageRule {
	u := &usageRule{ruleInfo: newRuleInfo(r), rising: r.Direction == DirectionRising, window: r.Window, horizon: r.Horizon}
	if r.Limit != nil {
		u.limit = *r.Limit
	}
	if r.Tolerance != nil {
		u.tolerance = *r.Tolerance
	}
	return u
}

func (r Rule) usageProblems() []*keyError {
	var ps problemList
	ps.trend(r, false)
	if ps.finite("tolerance", r.Tolerance) && r.Tolerance != nil && *r.Tolerance < 0 {
		ps.add("tolerance", "must not be negative")
	}
	return ps
}

// A Usage is the usage detector for one rule on one device. It implements
// Detector; usage.go's file comment has the semantics.
type Usage struct {
	rule   *usageRule
	clk    clock
	tr     trend
	prev   float64 // the last accepted value
	raised bool
}

// NewUsage returns a Usage for r, a valid rule with detector usage.
func NewUsage(r Rule) (*Usage, error) {
	if err := checkRule(r, DetectorUsage); err != nil {
		return nil, err
	}
	return &Usage{rule: compileUsage(r)}, nil
}

// Observe implements Detector.
func (d *Usage) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	first := !d.clk.Seen
	v, at, ok := d.clk.value(r, d.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	rule := d.rule
	away := v - d.prev // a move away from the limit
	if rule.rising {
		away = -away
	}
	prev := d.prev
	d.prev = v
	if !first && away > rule.tolerance {
		d.tr = trend{}
		d.tr.add(at, v, rule.window.Seconds()/3)
		if !d.raised {
			return telemetry.Finding{}, false
		}
		d.raised = false
		return rule.finding(r.Device, r.Model, r.At, false, telemetry.Evidence{
			Value: v, Limit: rule.limit, Window: rule.window.String(),
			Note: fmt.Sprintf("%s went from %s to %s: replaced", rule.metric, num(prev), num(v)),
		}), true
	}
	d.tr.add(at, v, rule.window.Seconds()/3)
	if d.raised || d.tr.N < trendMinSamples || d.tr.span() < rule.window.Seconds()/2 {
		return telemetry.Finding{}, false
	}
	c := judge(&d.tr, rule.limit, !rule.rising, rule.horizon, usageConfidence)
	if !c.crosses {
		return telemetry.Finding{}, false
	}
	d.raised = true
	ev := trendEvidence(rule.metric, r.At, v, rule.limit, !rule.rising, rule.window, rule.horizon, c, time.Unix(0, d.tr.Origin).In(r.At.Location()), int(d.tr.N))
	return rule.finding(r.Device, r.Model, r.At, true, ev), true
}
