package detectors

import (
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// Detector follows one metric of one device. The Engine calls Observe in
// event-time order per device, never concurrently for the same device.
// Observe must not block or do I/O.
type Detector interface {
	Observe(r telemetry.Reading) (telemetry.Finding, bool)
}

// A Ticker is a Detector that can fire without a reading (offline). Tick
// tells it that event time has reached now. The Engine ticks a device's
// Tickers to a reading's time before observing the reading, and to the
// caller's clock in Engine.Tick.
type Ticker interface {
	Tick(now time.Time) (telemetry.Finding, bool)
}

// An EventObserver is a Detector that follows device events (event).
type EventObserver interface {
	ObserveEvent(ev telemetry.DeviceEvent) (telemetry.Finding, bool)
}

// A StatusObserver is a Detector that follows the status topic (offline).
type StatusObserver interface {
	ObserveStatus(s telemetry.StatusChange) (telemetry.Finding, bool)
}

// An Engine runs the rules of each device's profile over its readings,
// events and status changes, and keeps the per-device detector state. It
// is not safe for concurrent use: the caller serializes calls (one feeder
// goroutine, a lock, or one Engine per shard of devices; see package live).
type Engine struct {
	profiles map[string]*profile // by lower-cased model name
	devices  map[telemetry.DeviceID]*device
}

// profile is a validated Profile, compiled once and shared by its devices.
type profile struct {
	rules []compiledRule // in rule order
	keys  []string       // each rule's ruleKey
}

// compiledRule is a validated rule with its defaults applied, shared by
// every device's detector of that rule.
type compiledRule interface {
	newDetector() Detector
}

func (t *thresholdRule) newDetector() Detector { return &Threshold{rule: t} }
func (t *rateRule) newDetector() Detector      { return &Rate{rule: t} }
func (t *flatlineRule) newDetector() Detector  { return &Flatline{rule: t} }
func (t *offlineRule) newDetector() Detector   { return &Offline{rule: t} }
func (t *anomalyRule) newDetector() Detector   { return newAnomaly(t) }
func (t *forecastRule) newDetector() Detector  { return &Forecast{rule: t} }
func (t *eventRule) newDetector() Detector     { return &Event{rule: t} }
func (t *usageRule) newDetector() Detector     { return &Usage{rule: t} }
func (t *contextRule) newDetector() Detector   { return newContext(t) }

// compileRule compiles a valid rule of a profile whose offline_after is
// offlineAfter.
func compileRule(r Rule, offlineAfter time.Duration) compiledRule {
	switch r.Detector {
	case DetectorThreshold:
		return compileThreshold(r)
	case DetectorRate:
		return compileRate(r)
	case DetectorFlatline:
		return compileFlatline(r)
	case DetectorOffline:
		return compileOffline(r, offlineAfter)
	case DetectorAnomaly:
		return compileAnomaly(r)
	case DetectorForecast:
		return compileForecast(r)
	case DetectorEvent:
		return compileEvent(r)
	case DetectorUsage:
		return compileUsage(r)
	case DetectorContext:
		return compileContext(r)
	}
	panic("detectors: compile of unvalidated rule with detector " + r.Detector)
}

// device is the Engine's state for one device.
type device struct {
	model     string   // the last model the device reported, as reported
	profile   *profile // the profile detectors belong to
	detectors []Detector
	lastSeen  int64 // event time (Unix ns) of the latest reading, event or status
}

// NewEngine validates profiles (see ValidateProfiles) and returns an Engine
// for them. profiles maps a device model to its profile; model names are
// matched case-insensitively.
func NewEngine(profiles map[string]Profile) (*Engine, error) {
	if err := ValidateProfiles(profiles); err != nil {
		return nil, err
	}
	e := &Engine{
		profiles: make(map[string]*profile, len(profiles)),
		devices:  make(map[telemetry.DeviceID]*device),
	}
	for model, p := range profiles {
		e.profiles[strings.ToLower(model)] = compileProfile(p)
	}
	return e, nil
}

func compileProfile(p Profile) *profile {
	rules := p.Rules
	if p.OfflineAfter > 0 && !hasOfflineRule(rules) {
		rules = append(rules[:len(rules):len(rules)], implicitOffline())
	}
	cp := &profile{rules: make([]compiledRule, 0, len(rules))}
	for _, r := range rules {
		cp.rules = append(cp.rules, compileRule(r, p.OfflineAfter))
		cp.keys = append(cp.keys, ruleKey(r, p.OfflineAfter))
	}
	return cp
}

func hasOfflineRule(rs []Rule) bool {
	for _, r := range rs {
		if r.Detector == DetectorOffline {
			return true
		}
	}
	return false
}

// newDetectors returns fresh detectors for every rule of p, in rule order.
func (p *profile) newDetectors() []Detector {
	ds := make([]Detector, len(p.rules))
	for i, r := range p.rules {
		ds[i] = r.newDetector()
	}
	return ds
}

// Observe runs every rule of the device's profile on r and returns the
// findings it decides, in rule order, or nil. Before a rule observes r,
// a rule that can fire without readings (offline) is ticked to r.At, so a
// silence that ended with r is raised (at its own time) before r clears it.
//
// The profile is the one of r.Model (matched case-insensitively), or, when
// r.Model is empty, of the model the device last reported. A reading of a
// model without a profile gives nil. A device's state is created at its first
// reading of a model with a profile; when it reports a model with another
// profile, its state starts afresh, and when it reports a model without a
// profile, its state is dropped (a raised fault then gets no cleared finding).
func (e *Engine) Observe(r telemetry.Reading) []telemetry.Finding {
	d := e.devices[r.Device]
	switch {
	case r.Model == "":
		if d == nil {
			return nil
		}
		r.Model = d.model
	case d == nil || r.Model != d.model:
		p := e.profiles[strings.ToLower(r.Model)]
		if p == nil {
			delete(e.devices, r.Device)
			return nil
		}
		if d == nil {
			d = &device{}
			e.devices[r.Device] = d
		}
		if d.profile != p {
			d.profile, d.detectors = p, p.newDetectors()
		}
		d.model = r.Model
	}
	d.touch(r.At)
	var fs []telemetry.Finding
	for _, det := range d.detectors {
		if t, ok := det.(Ticker); ok {
			if f, ok := t.Tick(r.At); ok {
				fs = append(fs, d.fill(r.Device, f))
			}
		}
		if f, ok := det.Observe(r); ok {
			fs = append(fs, f)
		}
	}
	return fs
}

// touch records activity at t for idle eviction.
func (d *device) touch(t time.Time) {
	if validTime(t) {
		d.lastSeen = max(d.lastSeen, t.UnixNano())
	}
}

// fill sets the device and model of a finding a detector could not know.
func (d *device) fill(id telemetry.DeviceID, f telemetry.Finding) telemetry.Finding {
	f.Device, f.Model = id, d.model
	return f
}

// ObserveEvent runs the device's event rules on ev. A device the Engine
// has no state for (no reading of a model with a profile yet) gives nil.
func (e *Engine) ObserveEvent(ev telemetry.DeviceEvent) []telemetry.Finding {
	d := e.devices[ev.Device]
	if d == nil {
		return nil
	}
	d.touch(ev.At)
	var fs []telemetry.Finding
	for _, det := range d.detectors {
		if o, ok := det.(EventObserver); ok {
			if f, ok := o.ObserveEvent(ev); ok {
				fs = append(fs, d.fill(ev.Device, f))
			}
		}
	}
	return fs
}

// ObserveStatus runs the device's offline rules on s. A device the Engine
// has no state for gives nil.
func (e *Engine) ObserveStatus(s telemetry.StatusChange) []telemetry.Finding {
	d := e.devices[s.Device]
	if d == nil {
		return nil
	}
	var fs []telemetry.Finding
	for _, det := range d.detectors {
		if o, ok := det.(StatusObserver); ok {
			if f, ok := o.ObserveStatus(s); ok {
				fs = append(fs, d.fill(s.Device, f))
			}
		}
	}
	return fs
}

// Tick tells every device's offline rules that event time has reached now
// and returns the findings they raise. Live, the caller calls it
// periodically with its clock; in replay, Observe's own ticking suffices.
// It visits every device: O(devices).
func (e *Engine) Tick(now time.Time) []telemetry.Finding {
	var fs []telemetry.Finding
	for id, d := range e.devices {
		for _, det := range d.detectors {
			if t, ok := det.(Ticker); ok {
				if f, ok := t.Tick(now); ok {
					fs = append(fs, d.fill(id, f))
				}
			}
		}
	}
	return fs
}

// Evict drops the state of devices with no reading, event or status after
// now-idle and returns how many it dropped. A raised fault of an evicted
// device gets no cleared finding; with an offline rule, pick idle well
// above its for, so the device's offline finding is raised first.
func (e *Engine) Evict(now time.Time, idle time.Duration) int {
	if !validTime(now) {
		return 0
	}
	cut := now.UnixNano() - int64(idle)
	n := 0
	for id, d := range e.devices {
		if d.lastSeen < cut {
			delete(e.devices, id)
			n++
		}
	}
	return n
}

// Devices returns the number of devices the Engine keeps state for.
func (e *Engine) Devices() int { return len(e.devices) }

// A Scorer is a Detector that grades its last observed reading with an
// anomaly score in [0, 1] (anomaly, context). forewarn replay writes the scores.
type Scorer interface {
	Score() float64
}

// Score returns the highest score of the device's Scorer detectors for
// their last observed readings, and false when the device has none.
func (e *Engine) Score(id telemetry.DeviceID) (float64, bool) {
	d := e.devices[id]
	if d == nil {
		return 0, false
	}
	best, ok := 0.0, false
	for _, det := range d.detectors {
		if s, is := det.(Scorer); is {
			best, ok = max(best, s.Score()), true
		}
	}
	return best, ok
}
