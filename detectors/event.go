// The event detector: a device reports a fault code on
// {prefix}/{device_id}/events.
//
// Config keys (profiles.<model>.rules[i], with detector: event):
//
//	detector          event
//	codes             the event codes that raise the fault (required, e.g. [E42, E43])
//	clear_codes       the event codes that clear it (e.g. [E00]); default none (cleared by hand on the ticket)
//	name              the rule's name in findings; default "event"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// When it fires: an event whose code is one of codes (matched exactly,
// case-sensitively) while the fault is not raised. A repeat while raised
// gives nothing. When it clears: an event whose code is one of clear_codes
// while raised. Events not after the last accepted one are ignored. Events
// do not carry a model, so the Engine uses the device's last known one; an
// event of a device it has never seen a reading from gives nothing.
//
// Example rule: the compressor's overcurrent codes open a ticket; the
// firmware's recovery code closes it.
//
//	- detector: event
//	  name: compressor-overcurrent
//	  codes: [E42, E43]
//	  clear_codes: [E00]
//	  fault: compressor_overcurrent
//	  severity: critical
//	  customer_visible: true
//	  remedy: Switch the unit off for 10 minutes; a technician is booked if it recurs.
//
// testdata/event_example.csv is a trace of this rule.

package detectors

import (
	"fmt"
	"slices"

	"github.com/forewarn/forewarn/telemetry"
)

type eventRule struct {
	ruleInfo
	codes, clearCodes []string
}

func compileEvent(r Rule) *eventRule {
	return &eventRule{ruleInfo: newRuleInfo(r), codes: slices.Clone(r.Codes), clearCodes: slices.Clone(r.ClearCodes)}
}

func (r Rule) eventProblems() []*keyError {
	var ps problemList
	if len(r.Codes) == 0 {
		ps.add("codes", "required: the event codes that raise the fault, e.g. [E42]")
	}
	for _, kc := range []struct {
		key   string
		codes []string
	}{{"codes", r.Codes}, {"clear_codes", r.ClearCodes}} {
		for _, c := range kc.codes {
			if !validCode(c) {
				ps.add(kc.key, "%q is not an event code (1 to 64 characters of [A-Za-z0-9._:-])", c)
			}
		}
	}
	for _, c := range r.ClearCodes {
		if slices.Contains(r.Codes, c) {
			ps.add("clear_codes", "%q is also in codes", c)
		}
	}
	return ps
}

// validCode reports whether c is 1 to 64 characters of [A-Za-z0-9._:-],
// the device contract for event codes.
func validCode(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	_, err := telemetry.ParseDeviceID(c)
	return err == nil
}

// An Event is the event detector for one rule on one device. It implements
// Detector (readings give nothing) and EventObserver.
type Event struct {
	rule   *eventRule
	clk    clock
	raised bool
}

// NewEvent returns an Event for r, a valid rule with detector event.
func NewEvent(r Rule) (*Event, error) {
	if err := checkRule(r, DetectorEvent); err != nil {
		return nil, err
	}
	return &Event{rule: compileEvent(r)}, nil
}

// Observe implements Detector; readings do not concern the event detector.
func (d *Event) Observe(telemetry.Reading) (telemetry.Finding, bool) {
	return telemetry.Finding{}, false
}

// ObserveEvent implements EventObserver. The finding's Model is left for
// the Engine to fill in.
func (d *Event) ObserveEvent(ev telemetry.DeviceEvent) (telemetry.Finding, bool) {
	if !validTime(ev.At) {
		return telemetry.Finding{}, false
	}
	at := ev.At.UnixNano()
	if d.clk.Seen && at <= d.clk.Last {
		return telemetry.Finding{}, false
	}
	d.clk.Seen, d.clk.Last = true, at
	var raise bool
	switch {
	case !d.raised && slices.Contains(d.rule.codes, ev.Code):
		raise = true
	case d.raised && slices.Contains(d.rule.clearCodes, ev.Code):
	default:
		return telemetry.Finding{}, false
	}
	d.raised = raise
	note := fmt.Sprintf("the device reported %s", ev.Code)
	if ev.Message != "" {
		note += ": " + ev.Message
	}
	return d.rule.finding(ev.Device, "", ev.At, raise, telemetry.Evidence{Code: ev.Code, Note: note}), true
}
