package simulator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// FaultOverheating is the fault the default (heat pump only) fleet injects.
const FaultOverheating = "overheating"

// Options shape a simulation run.
type Options struct {
	Devices        int      // fleet size
	Kinds          []Kind   // product mix, assigned round-robin; empty = AllKinds
	Scenarios      []string // fault scenarios to inject (names, or "all"); empty = all
	FaultyFraction float64  // share of the devices that can have a selected scenario which get one, 0..1
	RolloutShare   float64  // share of chargers the bad firmware reaches when firmware_rollout is selected, 0..1
	// FaultAfter > 0 starts every fault after that many readings; 0 draws
	// each onset between 10% and 60% of the run's event-time span.
	FaultAfter int
	Interval   time.Duration // wall-clock time between two readings of a device; 0 = as fast as possible
	Step       time.Duration // event time between two readings of a device (whole seconds); 0 = Interval
	Start      time.Time     // event time of the first reading; zero = now (real time) or now - SimDuration
	// Bounds: the run stops at the first one reached; at least one is required.
	SimDuration time.Duration // event time to simulate
	Duration    time.Duration // wall-clock time
	Count       int           // messages in total (telemetry, events and status)
	Rate        float64       // most messages per second in total; 0 = no limit
	Status      bool          // publish retained online/offline to {prefix}/{id}/status (Will emulation on a shared connection)
	Seed        uint64        // same seed, same fleet, faults and bytes
	Prefix      string        // topic prefix: {Prefix}/{device_id}/telemetry
	IDPrefix    string        // device ids are IDPrefix + a 5-digit number
	Progress    time.Duration // time between progress lines; 0 = 10s
	// Throttle, when set, holds the run back until the consumer caught up.
	Throttle Throttle
	// ProgressLive rewrites one progress line in place (for a terminal)
	// instead of writing a line each time.
	ProgressLive bool
}

// DefaultOptions is a small real-time fleet of heat pumps of which some
// overheat: the smallest fleet the shipped profile turns into tickets.
func DefaultOptions() Options {
	return Options{
		Devices:        10,
		Kinds:          []Kind{HeatPump},
		Scenarios:      []string{"overheating"},
		FaultyFraction: 0.2,
		RolloutShare:   0.3,
		Interval:       5 * time.Second,
		FaultAfter:     6,
		Seed:           1,
		Prefix:         "devices",
		IDPrefix:       "sim-",
	}
}

// Validate checks the options.
func (o Options) Validate() error {
	var errs []error
	if o.Devices < 1 || o.Devices > 1_000_000 {
		errs = append(errs, fmt.Errorf("devices: %d is out of range 1..1000000", o.Devices))
	}
	for _, k := range o.Kinds {
		if k >= numKinds {
			errs = append(errs, fmt.Errorf("kinds: %v is not a product kind", k))
		}
	}
	if _, err := parseScenarios(o.scenarioNames()); err != nil {
		errs = append(errs, fmt.Errorf("scenarios: %w", err))
	}
	if o.FaultyFraction < 0 || o.FaultyFraction > 1 || math.IsNaN(o.FaultyFraction) {
		errs = append(errs, fmt.Errorf("faulty: %v is out of range 0..1", o.FaultyFraction))
	}
	if o.RolloutShare < 0 || o.RolloutShare > 1 || math.IsNaN(o.RolloutShare) {
		errs = append(errs, fmt.Errorf("rollout-share: %v is out of range 0..1", o.RolloutShare))
	}
	if o.Interval < 0 {
		errs = append(errs, errors.New("interval: must not be negative"))
	}
	switch step := o.step(); {
	case step <= 0:
		errs = append(errs, errors.New("step: must be positive (or set a positive interval)"))
	case step%time.Second != 0:
		errs = append(errs, fmt.Errorf("step: %s is not a whole number of seconds", step))
	}
	if o.SimDuration <= 0 && o.Duration <= 0 && o.Count <= 0 {
		errs = append(errs, errors.New("bound the run with sim-duration, duration or count"))
	}
	if o.SimDuration < 0 || o.Duration < 0 || o.Count < 0 || o.FaultAfter < 0 || o.Rate < 0 {
		errs = append(errs, errors.New("sim-duration, duration, count, rate and fault-after must not be negative"))
	}
	if _, err := telemetry.ParseDeviceID(o.IDPrefix + "00000"); err != nil {
		errs = append(errs, fmt.Errorf("id-prefix: %w", err))
	}
	if o.Prefix == "" {
		errs = append(errs, errors.New("prefix: required"))
	}
	return errors.Join(errs...)
}

func (o Options) step() time.Duration {
	if o.Step == 0 {
		return o.Interval
	}
	return o.Step
}

func (o Options) scenarioNames() []string {
	if len(o.Scenarios) == 0 {
		return []string{"all"}
	}
	return o.Scenarios
}

func (o Options) kinds() []Kind {
	if len(o.Kinds) == 0 {
		return AllKinds()
	}
	return o.Kinds
}

// horizon is the event time the run is expected to span: SimDuration, or
// what Count or Duration allow; fault onsets are drawn inside it.
func (o Options) horizon() time.Duration {
	step := o.step()
	switch {
	case o.SimDuration > 0:
		return o.SimDuration
	case o.Count > 0:
		return time.Duration(o.Count/o.Devices) * step
	case o.Duration > 0 && o.Interval > 0:
		return time.Duration(o.Duration/o.Interval) * step
	}
	return 24 * time.Hour
}

// Device flags.
const (
	flagElementOn uint8 = 1 << iota // water heater: thermostat calls for heat
	flagOffline                     // connectivity fault: the device is disconnected
)

// A device is one virtual product. It is kept small (24 bytes): everything
// else (id, site, owner, weather, usage) is derived from the index and the
// seed when needed.
type device struct {
	kind  Kind
	fw    uint8 // index into its kind's firmware versions
	flags uint8
	tank  float32 // water heater: true tank temperature, °C
	site  uint32
	fault int32  // index into Fleet.faults, -1 when healthy
	sent  uint32 // readings sent
}

// A fault is one injected fault of one device.
type fault struct {
	dev       uint32
	sc        scenarioID
	onset     int64 // Unix seconds
	ramp      int64 // seconds from onset to full effect (gradual, intermittent)
	end       int64 // connectivity: back online at; 0 otherwise
	notice    int64 // when the customer noticed; 0 = not (yet)
	condSince int64 // start of the customer's current condition; 0 = none
}

// Fleet is the set of virtual devices of one run. Readings must be asked
// for in time order per device (some models keep state).
type Fleet struct {
	opts    Options
	seed    uint64
	start   int64 // Unix seconds of tick 0
	step    int64 // seconds between two readings of a device
	end     int64 // start + horizon
	devices []device
	faults  []fault
}

// NewFleet builds the fleet of opts (which must be valid) starting at
// start: product kinds, sites, firmware, which devices get which fault and
// when, all from opts.Seed.
func NewFleet(opts Options, start time.Time) *Fleet {
	f := &Fleet{
		opts:    opts,
		seed:    opts.Seed,
		start:   start.Unix(),
		step:    int64(opts.step() / time.Second),
		devices: make([]device, opts.Devices),
	}
	f.end = f.start + int64(opts.horizon()/time.Second)
	kinds := opts.kinds()
	for i := range f.devices {
		k := kinds[i%len(kinds)]
		h := hash3(f.seed, uint64(i), saltSite)
		f.devices[i] = device{kind: k, fw: uint8(h % uint64(len(kindSpecs[k].firmware))), site: uint32(i / 2), fault: -1}
	}
	on, _ := parseScenarios(opts.scenarioNames())
	f.injectFaults(on)
	return f
}

func (f *Fleet) injectFaults(on [numScenarios]bool) {
	span := f.end - f.start
	applicable := func(k Kind) []scenarioID {
		var ids []scenarioID
		for id := scNone + 1; id < numScenarios; id++ {
			if on[id] && id != scFirmwareRollout && id.applies(k) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	var perKind [numKinds][]scenarioID
	for k := range numKinds {
		perKind[k] = applicable(k)
	}
	var candidates []int
	for i, d := range f.devices {
		if len(perKind[d.kind]) > 0 {
			candidates = append(candidates, i)
		}
	}
	rng := rand.New(rand.NewPCG(f.seed, 0x5eed))
	n := int(math.Round(float64(len(candidates)) * f.opts.FaultyFraction))
	chosen := make([]bool, len(f.devices))
	var next [numKinds]int // scenarios go round-robin per kind, so every one gets its share
	for k := range next {
		next[k] = int(hash3(f.seed, uint64(k), saltFault) % 64)
	}
	for _, c := range rng.Perm(len(candidates))[:n] {
		chosen[candidates[c]] = true
	}
	for i := range f.devices {
		d := &f.devices[i]
		h := hash3(f.seed, uint64(i), saltFault)
		var fl fault
		switch {
		case chosen[i]:
			ids := perKind[d.kind]
			fl = fault{dev: uint32(i), sc: ids[next[d.kind]%len(ids)]}
			next[d.kind]++
			if f.opts.FaultAfter > 0 {
				fl.onset = f.start + int64(f.opts.FaultAfter)*f.step
			} else {
				fl.onset = f.start + int64(float64(span)*(0.1+0.5*unit(mix(h))))
			}
		case on[scFirmwareRollout] && d.kind == EVCharger && unit(mix(h)) < f.opts.RolloutShare:
			// One rollout, staggered over two hours, at 35% of the span.
			fl = fault{dev: uint32(i), sc: scFirmwareRollout, onset: f.start + span*35/100 + int64(mix(mix(h))%7200)}
		default:
			continue
		}
		fl.ramp = max(6*3600, min(14*86400, (f.end-fl.onset)*8/10))
		if fl.sc == scConnectivityLoss {
			fl.end = fl.onset + 4*3600 + int64(unit(mix(mix(h)))*44*3600)
		}
		d.fault = int32(len(f.faults))
		f.faults = append(f.faults, fl)
	}
}

// ID returns device i's id.
func (f *Fleet) ID(i int) telemetry.DeviceID {
	b := make([]byte, 0, len(f.opts.IDPrefix)+6)
	b = append(b, f.opts.IDPrefix...)
	for n := 10000; n > 1 && i < n; n /= 10 {
		b = append(b, '0')
	}
	return telemetry.DeviceID(strconv.AppendInt(b, int64(i), 10))
}

// Len returns the number of devices.
func (f *Fleet) Len() int { return len(f.devices) }

// Kind returns device i's product kind.
func (f *Fleet) Kind(i int) Kind { return f.devices[i].kind }

// Site and Owner name device i's site and owner (two devices per site).
func (f *Fleet) Site(i int) string  { return fmt.Sprintf("site-%05d", f.devices[i].site) }
func (f *Fleet) Owner(i int) string { return fmt.Sprintf("cust-%05d", f.devices[i].site) }

// firmware returns what device i reports at t.
func (f *Fleet) firmware(i int, t int64) string {
	d := &f.devices[i]
	if d.fault >= 0 && f.faults[d.fault].sc == scFirmwareRollout && t >= f.faults[d.fault].onset {
		return badFirmware
	}
	return kindSpecs[d.kind].firmware[d.fw]
}

// At returns the event time of device i's reading number tick: readings
// are staggered by a per-device phase inside the step.
func (f *Fleet) At(i int, tick int64) time.Time { return time.Unix(f.at(i, tick), 0).UTC() }

func (f *Fleet) at(i int, tick int64) int64 {
	return f.start + tick*f.step + int64(hash3(f.seed, uint64(i), saltPhase)%uint64(f.step))
}

// Status changes a device announces before its reading.
const (
	statusNone int8 = iota
	statusOffline
	statusOnline
)

// output is what device i does at one tick.
type output struct {
	at      int64
	status  int8 // statusOffline: the connection drops (Last Will); statusOnline: back
	reading bool // s holds a reading
	event   bool // s holds an event code
}

// next advances device i to reading number tick and fills s.
func (f *Fleet) next(i int, tick int64, s *sample) output {
	d := &f.devices[i]
	o := output{at: f.at(i, tick)}
	*s = sample{}
	e := env{i: uint32(i), d: d, t: o.at, dt: float64(f.step) / 3600, step: f.step, since: -1}
	if d.fault >= 0 {
		fl := &f.faults[d.fault]
		if o.at >= fl.onset {
			e.fl, e.sc, e.since = fl, fl.sc, o.at-fl.onset
			e.p = math.Min(1, float64(e.since)/float64(fl.ramp))
		}
		if fl.sc == scConnectivityLoss {
			offline := e.since >= 0 && o.at < fl.end
			switch {
			case offline && d.flags&flagOffline == 0:
				d.flags |= flagOffline
				o.status = statusOffline
			case !offline && d.flags&flagOffline != 0:
				d.flags &^= flagOffline
				o.status = statusOnline
			}
			if offline {
				return o
			}
			e.sc = scNone // online again: healthy
		}
	}
	switch d.kind {
	case HeatPump:
		f.heatPump(&e, s)
	case WaterHeater:
		f.waterHeater(&e, s)
	case EVCharger:
		f.evCharger(&e, s)
	case WaterPump:
		f.waterPump(&e, s)
	}
	o.reading, o.event = true, s.event != ""
	d.sent++
	if e.fl != nil && e.fl.notice == 0 && scenarios[e.fl.sc].Class != ClassConnectivity && e.fl.sc != scTankSensorSpikes {
		switch {
		case !s.discomfort:
			e.fl.condSince = 0
		case e.fl.condSince == 0:
			e.fl.condSince = o.at
			fallthrough
		default:
			if o.at-e.fl.condSince >= kindSpecs[d.kind].noticeFor {
				e.fl.notice = e.fl.condSince + kindSpecs[d.kind].noticeFor
			}
		}
	}
	return o
}

// reading turns sample s of device i at t into a Reading.
func (f *Fleet) reading(i int, t int64, s *sample) telemetry.Reading {
	return telemetry.Reading{
		Device:   f.ID(i),
		Model:    kindSpecs[f.devices[i].kind].model,
		Firmware: f.firmware(i, t),
		At:       time.Unix(t, 0).UTC(),
		Fields:   append([]telemetry.Field(nil), s.fields[:s.n]...),
	}
}

// Reading returns device i's reading number tick, or false when the device
// is offline then. Call it in tick order per device.
func (f *Fleet) Reading(i int, tick int64) (telemetry.Reading, bool) {
	var s sample
	o := f.next(i, tick, &s)
	if !o.reading {
		return telemetry.Reading{}, false
	}
	return f.reading(i, o.at, &s), true
}

// Faulty returns the ids of the devices with an injected fault, in id order.
func (f *Fleet) Faulty() []telemetry.DeviceID {
	ids := make([]telemetry.DeviceID, 0, len(f.faults))
	for _, fl := range f.faults {
		ids = append(ids, f.ID(int(fl.dev)))
	}
	return ids
}

// Truth is the ground truth of one injected fault: a line of the truth file.
type Truth struct {
	Device   telemetry.DeviceID `json:"device"`
	Kind     string             `json:"kind"` // product kind: heatpump, waterheater, evcharger, waterpump
	Model    string             `json:"model"`
	Firmware string             `json:"firmware"` // before the fault
	Site     string             `json:"site"`
	Owner    string             `json:"owner"`
	Scenario string             `json:"scenario"`
	Class    string             `json:"class"`
	// Fault is the ticket fault the shipped profiles raise for it; "" when
	// only a detector that does not exist yet would see it.
	Fault string    `json:"fault,omitempty"`
	Onset time.Time `json:"onset"`
	// Notice is when the customer noticed (the comfort, hot water, charging
	// or water loss became real); nil if they did not during the run.
	Notice *time.Time `json:"notice,omitempty"`
	// End is when a connectivity loss ended (the device came back).
	End *time.Time `json:"end,omitempty"`
}

// Truth returns the ground truth of every fault whose onset lies before
// until (the event time the run reached), in device order.
func (f *Fleet) Truth(until time.Time) []Truth {
	var out []Truth
	for _, fl := range f.faults {
		if fl.onset > until.Unix() {
			continue
		}
		i := int(fl.dev)
		sc := scenarios[fl.sc]
		tr := Truth{
			Device: f.ID(i), Kind: f.devices[i].kind.String(), Model: kindSpecs[f.devices[i].kind].model, Firmware: f.firmware(i, fl.onset-1),
			Site: f.Site(i), Owner: f.Owner(i), Scenario: sc.Name, Class: sc.Class.String(), Fault: sc.Fault,
			Onset: time.Unix(fl.onset, 0).UTC(),
		}
		notice := fl.notice
		if sc.Class == ClassConnectivity {
			tr.End = ptr(time.Unix(fl.end, 0).UTC())
			// The owner looks at the app in the evening: 19:00 after the first hour offline.
			n := (fl.onset+3600)/86400*86400 + 19*3600
			if n < fl.onset+3600 {
				n += 86400
			}
			if n < fl.end && n <= until.Unix() {
				notice = n
			}
		}
		if notice > 0 && notice <= until.Unix() {
			tr.Notice = ptr(time.Unix(notice, 0).UTC())
		}
		out = append(out, tr)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
