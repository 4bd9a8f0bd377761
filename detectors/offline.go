// The offline detector: a device that stopped reporting, or whose status
// topic says offline (its Last Will).
//
// Config keys (profiles.<model>.rules[i], with detector: offline):
//
//	metric            optional: only readings with this metric count as signs of life; default any reading
//	detector          offline
//	for               how long without a reading means offline; default the profile's offline_after
//	name              the rule's name in findings; default "offline" (metric + "/offline" with a metric)
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// A profile with offline_after and no offline rule gets one implicitly:
// name "offline", fault "offline", severity minor, not customer visible.
//
// When it fires: at event time last+for, where last is the event time of
// the device's last reading, once the detector learns that time has
// passed: live, from Engine.Tick(now) with an injectable clock; in replay
// (and live, when the next reading arrives first), from the next reading's
// time, since the Engine ticks a device's offline rules to a reading's time
// before observing it. Both ways the raised finding carries At = last+for,
// so a replay gives the findings the live run gave. It also fires at once
// when the device's retained status topic (its Last Will) says offline
// (Engine.ObserveStatus).
//
// When it clears: at the next reading (or an online status) after it
// fired.
//
// Readings and statuses not after the last one accepted are ignored; so
// is a tick at or before it.
//
// Example rule: a heat pump that has sent nothing for 30 minutes is
// offline; the owner is told, because it may mean the unit lost power.
//
//	- detector: offline
//	  for: 30m
//	  fault: device_offline
//	  severity: major
//	  customer_visible: true
//	  remedy: Check the unit's power supply and its Wi-Fi connection.
//
// testdata/offline_example.csv is a trace of this rule.

package detectors

import (
	"fmt"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

type offlineRule struct {
	ruleInfo
	after time.Duration
}

func compileOffline(r Rule, offlineAfter time.Duration) *offlineRule {
	o := &offlineRule{ruleInfo: newRuleInfo(r), after: r.For}
	if o.after == 0 {
		o.after = offlineAfter
	}
	return o
}

func (r Rule) offlineProblems() []*keyError {
	var ps problemList
	ps.nonNegative("for", r.For)
	return ps
}

// implicitOffline is the offline rule a profile with offline_after and no
// offline rule gets.
func implicitOffline() Rule {
	return Rule{Name: "offline", Detector: DetectorOffline, Fault: "offline", Severity: telemetry.SeverityMinor}
}

// An Offline is the offline detector for one rule on one device. It
// implements Detector, Ticker and StatusObserver; offline.go's file comment
// has the semantics.
type Offline struct {
	rule   *offlineRule
	clk    clock
	raised bool
}

// NewOffline returns an Offline for r, a valid rule with detector offline
// and a positive for.
func NewOffline(r Rule) (*Offline, error) {
	if err := checkRule(r, DetectorOffline); err != nil {
		return nil, err
	}
	if r.For <= 0 {
		return nil, fmt.Errorf("for: required outside a profile with offline_after")
	}
	return &Offline{rule: compileOffline(r, 0)}, nil
}

// Observe implements Detector: a reading is a sign of life.
func (d *Offline) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	if d.rule.metric != "" {
		if _, ok := r.Field(d.rule.metric); !ok {
			return telemetry.Finding{}, false
		}
	}
	if !validTime(r.At) {
		return telemetry.Finding{}, false
	}
	at := r.At.UnixNano()
	if d.clk.Seen && at <= d.clk.Last {
		return telemetry.Finding{}, false
	}
	prev := d.clk.Last
	d.clk.Seen, d.clk.Last = true, at
	if !d.raised {
		return telemetry.Finding{}, false
	}
	d.raised = false
	return d.rule.finding(r.Device, r.Model, r.At, false, telemetry.Evidence{
		Limit: d.rule.after.Seconds(), For: d.rule.after.String(), Since: time.Unix(0, prev).In(r.At.Location()),
		Note: fmt.Sprintf("a reading arrived after %s of silence", r.At.Sub(time.Unix(0, prev))),
	}), true
}

// Tick implements Ticker: it raises when for has passed since the last
// reading. The finding's At is last+for, not now, and its Device and Model
// are left for the Engine to fill in.
func (d *Offline) Tick(now time.Time) (telemetry.Finding, bool) {
	if d.raised || !d.clk.Seen || !validTime(now) {
		return telemetry.Finding{}, false
	}
	if now.UnixNano()-d.clk.Last < int64(d.rule.after) {
		return telemetry.Finding{}, false
	}
	d.raised = true
	last := time.Unix(0, d.clk.Last).In(now.Location())
	return d.rule.finding("", "", last.Add(d.rule.after), true, telemetry.Evidence{
		Limit: d.rule.after.Seconds(), For: d.rule.after.String(), Since: last,
		Note: fmt.Sprintf("no reading for %s since %s", d.rule.after, last.UTC().Format(time.RFC3339)),
	}), true
}

// ObserveStatus implements StatusObserver: offline raises at once, online
// clears.
func (d *Offline) ObserveStatus(s telemetry.StatusChange) (telemetry.Finding, bool) {
	if !validTime(s.At) {
		return telemetry.Finding{}, false
	}
	at := s.At.UnixNano()
	if d.clk.Seen && at <= d.clk.Last {
		return telemetry.Finding{}, false
	}
	if s.Online == !d.raised {
		if s.Online {
			d.clk.Seen, d.clk.Last = true, at
		}
		return telemetry.Finding{}, false
	}
	d.raised = !s.Online
	note := "the device reported status offline (Last Will or clean disconnect)"
	if s.Online {
		note = "the device reported status online"
		d.clk.Seen, d.clk.Last = true, at
	}
	return d.rule.finding(s.Device, "", s.At, d.raised, telemetry.Evidence{
		Limit: d.rule.after.Seconds(), For: d.rule.after.String(), Note: note,
	}), true
}
