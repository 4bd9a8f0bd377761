package detectors

import (
	"math"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// ruleInfo is what every compiled rule carries into its findings.
type ruleInfo struct {
	name, metric, detector string
	fault, remedy          string
	severity               telemetry.Severity
	customerVisible        bool
}

func newRuleInfo(r Rule) ruleInfo {
	return ruleInfo{
		name:            r.name(),
		metric:          r.Metric,
		detector:        r.Detector,
		fault:           r.Fault,
		remedy:          r.Remedy,
		severity:        r.Severity,
		customerVisible: r.CustomerVisible,
	}
}

// finding returns a Finding of this rule for device d at event time at.
func (ri *ruleInfo) finding(d telemetry.DeviceID, model string, at time.Time, raised bool, ev telemetry.Evidence) telemetry.Finding {
	state := telemetry.Cleared
	if raised {
		state = telemetry.Raised
	}
	ev.Detector = ri.detector
	if ev.Metric == "" {
		ev.Metric = ri.metric
	}
	return telemetry.Finding{
		Device:          d,
		Model:           model,
		Fault:           ri.fault,
		Rule:            ri.name,
		State:           state,
		Severity:        ri.severity,
		CustomerVisible: ri.customerVisible,
		Remedy:          ri.remedy,
		At:              at,
		Evidence:        ev,
	}
}

// The range of event times detectors accept: times whose Unix nanoseconds
// fit an int64, with a second of margin.
const (
	minUnixSec = math.MinInt64/int64(time.Second) + 1
	maxUnixSec = math.MaxInt64/int64(time.Second) - 1
)

// validTime reports whether t fits int64 Unix nanoseconds.
func validTime(t time.Time) bool {
	s := t.Unix()
	return s >= minUnixSec && s <= maxUnixSec
}

// clock is the event-time guard every reading detector shares: it accepts
// a reading only when its time is after the last accepted one.
type clock struct {
	Last int64 // event time (Unix ns) of the last accepted reading
	Seen bool  // Last is set
}

// value returns the metric's value and the reading's event time (Unix ns)
// when the detector should use r: r has the metric, its value is not NaN,
// its time is valid and after the last accepted reading. It then advances
// the clock. Otherwise it returns ok false and changes nothing.
func (c *clock) value(r telemetry.Reading, metric string) (v float64, at int64, ok bool) {
	f, ok := r.Field(metric)
	if !ok || math.IsNaN(f.Value) || math.IsInf(f.Value, 0) || !validTime(r.At) {
		return 0, 0, false
	}
	at = r.At.UnixNano()
	if c.Seen && at <= c.Last {
		return 0, 0, false
	}
	c.Seen, c.Last = true, at
	return f.Value, at, true
}

// run tracks how long a condition has held, for the detectors whose raise
// and clear conditions must hold for a duration (for, clear_for): while
// not raised the condition is the raise condition, while raised the clear
// condition. A reading where the condition does not hold resets the run.
type run struct {
	Since   int64 // event time (Unix ns) of the first reading of the current run
	Samples int32 // readings in the current run
	InRun   bool  // a run is under way
	Raised  bool
}

// step records a reading at event time at where the current condition
// holds or not, and reports whether the rule's state flips (need is for or
// clear_for). After a flip, r.Raised holds the new state and r.Since and
// r.samples still describe the run that decided it.
func (r *run) step(at int64, hold bool, need time.Duration) bool {
	if !hold {
		r.InRun = false
		return false
	}
	if !r.InRun {
		r.InRun, r.Since, r.Samples = true, at, 0
	}
	r.Samples++
	if at-r.Since < int64(need) {
		return false
	}
	r.Raised, r.InRun = !r.Raised, false
	return true
}

// sinceTime returns the start of the run that just decided, in loc.
func (r *run) sinceTime(loc *time.Location) time.Time { return time.Unix(0, r.Since).In(loc) }
