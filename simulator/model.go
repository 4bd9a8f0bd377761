package simulator

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// A Kind is a simulated product kind.
type Kind uint8

// Product kinds.
const (
	HeatPump    Kind = iota // air-to-water heat pump: weather-driven load, defrost cycles
	WaterHeater             // electric storage water heater: usage-driven draws, thermostat
	EVCharger               // home EV charger: evening sessions, overnight charging
	WaterPump               // building booster pump: demand-driven flow, backup battery
	numKinds
)

type kindSpec struct {
	name     string
	model    string   // reported model; selects the detector profile
	firmware []string // versions in the field
	// noticeFor is how long the customer's condition must hold before the
	// customer notices (a house cools slowly; a cold shower is noticed at once).
	noticeFor int64
}

var kindSpecs = [numKinds]kindSpec{
	HeatPump:    {name: "heatpump", model: "heatpump-a2", firmware: []string{"1.4.2", "1.4.2", "1.5.0"}, noticeFor: 3600},
	WaterHeater: {name: "waterheater", model: "waterheater-w1", firmware: []string{"3.0.1", "3.1.0"}, noticeFor: 0},
	EVCharger:   {name: "evcharger", model: "evcharger-e1", firmware: []string{"2.0.3", "2.0.3", "2.0.4"}, noticeFor: 3600},
	WaterPump:   {name: "waterpump", model: "waterpump-p1", firmware: []string{"1.2.0", "1.2.1"}, noticeFor: 600},
}

// badFirmware is what the firmware_rollout scenario installs on chargers.
const badFirmware = "2.1.0"

func (k Kind) String() string {
	if k < numKinds {
		return kindSpecs[k].name
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Model returns the device model the kind reports.
func (k Kind) Model() string { return kindSpecs[k].model }

// AllKinds returns every product kind.
func AllKinds() []Kind { return []Kind{HeatPump, WaterHeater, EVCharger, WaterPump} }

// ParseKind parses a kind name ("heatpump") or its model ("heatpump-a2").
func ParseKind(s string) (Kind, error) {
	for k := range numKinds {
		if s == kindSpecs[k].name || s == kindSpecs[k].model {
			return k, nil
		}
	}
	names := make([]string, 0, numKinds)
	for k := range numKinds {
		names = append(names, kindSpecs[k].name)
	}
	return 0, fmt.Errorf("unknown product kind %q (known: %s)", s, strings.Join(names, ", "))
}

// env is what a model needs to produce one reading of one device.
type env struct {
	i     uint32  // device index
	d     *device // its state
	t     int64   // event time, Unix seconds
	dt    float64 // hours since the device's previous reading
	step  int64   // seconds between readings
	sc    scenarioID
	fl    *fault  // the device's fault, nil when healthy
	since int64   // seconds since onset; negative before the fault starts
	p     float64 // progress of a gradual fault, 0..1
}

// sample is one reading's worth of model output.
type sample struct {
	fields     [8]telemetry.Field
	n          int
	discomfort bool   // the customer's condition holds (rooms cold, no hot water, ...)
	event      string // fault code reported with this reading, "" none
	message    string
}

func (s *sample) add(name string, v float64) {
	s.fields[s.n] = telemetry.Field{Name: name, Value: round2(v)}
	s.n++
}

func (s *sample) addBool(name string, b bool) {
	s.fields[s.n] = telemetry.Field{Name: name, Value: b2f(b), IsBool: true}
	s.n++
}

// Noise salts: one per purpose, so two purposes never share a random value.
// saltNoise is followed by the metric index (below 64); each other salt is
// its own value above those. key combines a device with a salt without
// overlap (device in the high 32 bits).
const (
	saltNoise = 0 // + metric index
	saltPhase = 1<<20 + iota
	saltEpisode
	saltDraw
	saltSession
	saltSite
	saltWeather
	saltFault
	saltSpike
	saltOddity
)

// key is the hash input for device i and salt s: distinct for every pair.
func key(i uint32, s uint64) uint64 { return uint64(i)<<32 | s }

// noise returns a normal value of sd for metric m of device i at time t.
func (f *Fleet) noise(i uint32, t int64, m uint64, sd float64) float64 {
	return sd * gauss(hash3(f.seed, key(i, m), uint64(t)))
}

// outdoor is the true outdoor temperature at site s: season, a daily cycle
// peaking at 15:00, weather fronts that drift over days, a site offset.
func (f *Fleet) outdoor(site uint32, t int64) float64 {
	tm := float64(t)
	doy := math.Mod(tm/86400, 365.25)
	season := 10 - 9*math.Cos(2*math.Pi*(doy-20)/365.25) // ~1 °C mid-January, ~19 °C mid-July
	h := math.Mod(tm, 86400) / 3600
	daily := 4 * math.Sin(2*math.Pi*(h-9)/24)
	front := 3 * smooth(f.seed, saltWeather, tm, 2*86400) // shared by the region
	local := 1.5*gauss(hash3(f.seed, saltSite, uint64(site))) + 1*smooth(f.seed, key(site+1, saltWeather), tm, 6*3600)
	return season + daily + front + local
}

func hourOf(t int64) float64 { return float64(((t%86400)+86400)%86400) / 3600 }

// weekend reports Saturday and Sunday (UTC; sites live in UTC).
func weekend(t int64) bool {
	wd := time.Unix(t, 0).UTC().Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

// episode reports whether device i is inside an episode at t. Time is cut
// into windows of period seconds; each window holds, with probability prob,
// one episode of dur seconds at a hashed offset. It also returns the
// episode's start.
func (f *Fleet) episode(i uint32, salt uint64, t, period, dur int64, prob float64) (bool, int64) {
	w := t / period
	h := hash3(f.seed, key(i, salt), uint64(w))
	if unit(h) >= prob {
		return false, 0
	}
	dur = min(dur, period)
	start := w*period + int64(mix(h)%uint64(period-dur+1))
	return t >= start && t < start+dur, start
}

// heatPump: an air-to-water heat pump with weather compensation. Load
// follows the outdoor temperature and the setpoint (18 °C at night, 21 °C
// by day, later mornings at weekends); below 4 °C outside it defrosts for 8
// minutes every 90 (supply drops 10 °C: benign); on some days a window is
// left open for an hour (more load, cooler rooms: benign).
func (f *Fleet) heatPump(e *env, s *sample) {
	out := f.outdoor(e.d.site, e.t)
	sp := setpoint(e.t)
	load := clamp((sp-out)/25, 0.08, 1)
	indoorOffset := 0.0
	if open, _ := f.episode(e.i, saltOddity, e.t, 86400, 3600, 0.03); open {
		load = math.Min(1, load+0.2)
		indoorOffset = -2.5
	}
	supply := 28 + 17*load
	amps := 3 + 9*load
	dp := 90 + 40*load
	superheat := 5.0
	capacity := 1.0
	shownSupply := math.NaN()
	switch e.sc {
	case scFilterClogging:
		dp += 300 * e.p
		capacity -= 0.9 * math.Max(0, e.p-0.55) / 0.45
	case scRefrigerantLeak:
		superheat += 18 * e.p
		supply -= 8 * e.p * load
		capacity -= 0.9 * math.Max(0, e.p-0.5) / 0.5
	case scOverheating: // circulation pump stopped: heat stays in the unit
		supply += 35 * math.Min(1, float64(e.since)/40)
		capacity = 0
	case scCompressorFailure:
		amps, capacity = 0.2, 0
		supply = sp + 2
	case scCompressorTrips: // trips grow more frequent and longer; E42 at each
		dur := int64(600 + 4200*e.p)
		if in, start := f.episode(e.i, saltFault, e.t, 6*3600, dur, 0.3+0.6*e.p); in {
			amps, capacity = 0.3, 0
			supply = sp + 3
			if start > e.t-e.step {
				s.event, s.message = "E42", "compressor overcurrent trip"
			}
		}
	case scSupplySensorStuck: // the controller believes the stuck reading
		onsetLoad := clamp((setpoint(e.fl.onset)-f.outdoor(e.d.site, e.fl.onset))/25, 0.08, 1)
		shownSupply = 28 + 17*onsetLoad
		capacity = onsetLoad + 0.1
	}
	deficit := math.Max(0, load-math.Max(0, capacity))
	s.discomfort = deficit >= 0.15
	indoor := sp + indoorOffset - 6*deficit
	ret := supply - 3 - 4*load
	if e.sc == scCompressorFailure || (e.sc == scCompressorTrips && capacity == 0) {
		ret = supply - 0.5
	}
	defrost := false
	if out < 4 {
		defrost, _ = f.episode(e.i, saltPhase, e.t, 5400, 480, 1)
	}
	if defrost {
		supply -= 10
		ret -= 4
		amps++
	}
	if !math.IsNaN(shownSupply) {
		supply = shownSupply
	} else {
		supply += f.noise(e.i, e.t, 7, 0.4)
	}
	s.add("compressor_amps", math.Max(0, amps+f.noise(e.i, e.t, 0, 0.2)))
	s.addBool("defrost", defrost)
	s.add("filter_dp_pa", dp+f.noise(e.i, e.t, 2, 4))
	s.add("indoor_temp_c", indoor+f.noise(e.i, e.t, 3, 0.2))
	s.add("outdoor_temp_c", out+f.noise(e.i, e.t, 4, 0.2))
	s.add("return_temp_c", ret+f.noise(e.i, e.t, 5, 0.4))
	s.add("superheat_k", superheat+f.noise(e.i, e.t, 6, 0.4))
	s.add("supply_temp_c", supply)
}

func setpoint(t int64) float64 {
	h := hourOf(t)
	wake := 6.0
	if weekend(t) {
		wake = 8
	}
	if h < wake || h >= 23 {
		return 18
	}
	return 21
}

// draw is the hot water a household draws at t, litres per minute: a
// morning shower (later at weekends), dishes in the evening, and on one
// evening in ten a bath (benign: it cools the tank a lot).
func (f *Fleet) draw(i uint32, t int64) float64 {
	day, sec := t/86400, t%86400
	h := hash3(f.seed, key(i, saltDraw), uint64(day))
	morning := int64(6*3600+1800) + int64(h%1800)
	if weekend(t) {
		morning += 2 * 3600
	}
	h2 := mix(h)
	switch {
	case sec >= morning && sec < morning+600+int64(h2%1200):
		return 9
	case sec >= 19*3600+int64(h2>>20%5400) && sec < 19*3600+int64(h2>>20%5400)+600:
		return 6
	case unit(mix(h2)) < 0.1 && sec >= 21*3600 && sec < 21*3600+1200:
		return 10
	}
	return 0
}

// waterHeater: a 200 l electric storage heater. The thermostat keeps the
// tank between 52 and 60 °C; draws cool it in proportion to flow and to
// the difference to the inlet temperature.
func (f *Fleet) waterHeater(e *env, s *sample) {
	d := e.d
	if d.tank == 0 {
		d.tank = 58
	}
	tank := float64(d.tank)
	out := f.outdoor(d.site, e.t)
	inlet := 10 + 0.25*(out-10)
	flow := f.draw(e.i, e.t)
	heatRate, sheath := 18.0, 15.0
	works, stuckOn := true, false
	switch e.sc {
	case scScaleBuildup:
		heatRate *= 1 - 0.8*math.Max(0, e.p-0.5)/0.5
		sheath += 45 * e.p
	case scThermostatFailure:
		stuckOn = true
	case scElementIntermittent: // a loose element connection drops out for hours
		if in, start := f.episode(e.i, saltFault, e.t, 8*3600, int64(3600+3*3600*e.p), 0.25+0.6*e.p); in {
			works = false
			if start > e.t-e.step {
				s.event, s.message = "E-ELEMENT-OPEN", "heating element open circuit"
			}
		}
	}
	on := d.flags&flagElementOn != 0
	switch {
	case stuckOn || tank < 52:
		on = true
	case tank >= 60:
		on = false
	}
	if on {
		d.flags |= flagElementOn
	} else {
		d.flags &^= flagElementOn
	}
	heating := on && works
	if heating {
		tank += heatRate * e.dt
	}
	tank -= 40 * flow / 8 * (tank - inlet) / 50 * e.dt
	tank -= 0.8 * e.dt
	tank = clamp(tank, inlet, 95)
	d.tank = float32(tank)
	if e.sc == scThermostatFailure {
		s.discomfort = tank >= 85 // scalding; the relief valve drips
	} else {
		s.discomfort = flow > 2 && tank < 40 // a cold shower
	}
	shown := tank + f.noise(e.i, e.t, 5, 0.2)
	if e.sc == scTankSensorSpikes && unit(hash3(f.seed, key(e.i, saltSpike), uint64(e.t))) < 0.03 {
		shown += 35
	}
	amps, delta := 0.0, 0.0
	if heating {
		amps, delta = 13, sheath
	}
	s.add("element_amps", amps+math.Abs(f.noise(e.i, e.t, 0, 0.05)))
	// element_delta_k: the element sheath's rise above the tank while it heats
	// (scale insulates the element, so it runs hotter).
	s.add("element_delta_k", math.Max(0, delta+f.noise(e.i, e.t, 2, 0.3)))
	s.addBool("element_on", on)
	s.add("flow_lpm", math.Max(0, flow+f.noise(e.i, e.t, 3, 0.1)*b2f(flow > 0)))
	s.add("inlet_temp_c", inlet+f.noise(e.i, e.t, 4, 0.2))
	s.add("tank_temp_c", shown)
}

// session is one charging session of an EV charger: plugged in at plug,
// unplugged at unplug (Unix seconds), needing need kWh.
type session struct {
	plug, unplug int64
	need         float64
	ok           bool
}

// sessionOf returns the session that starts on day of device i: most
// evenings a car is plugged in between 17:00 and 22:00 and unplugged the
// next morning; on some days a guest charges at midday (benign).
func (f *Fleet) sessionOf(i uint32, day int64) session {
	h := hash3(f.seed, key(i, saltSession), uint64(day))
	t0 := day * 86400
	prob := 0.75
	if weekend(t0) {
		prob = 0.5
	}
	if unit(h) < 0.05 { // a guest at midday
		return session{plug: t0 + 12*3600, unplug: t0 + 14*3600, need: 12, ok: true}
	}
	if unit(mix(h)) >= prob {
		return session{}
	}
	h2 := mix(mix(h))
	plug := t0 + 17*3600 + int64(h2%(5*3600))
	unplug := t0 + 86400 + 7*3600 + int64(h2>>32%5400)
	return session{plug: plug, unplug: unplug, need: 8 + 35*unit(mix(h2)), ok: true}
}

// evCharger: a three-phase 11 kW home charger. Status codes follow OCPP's
// spirit: 0 available, 2 charging, 3 finished (plugged, car full), 9 faulted.
func (f *Fleet) evCharger(e *env, s *sample) {
	day := e.t / 86400
	ss := f.sessionOf(e.i, day)
	if !(ss.ok && e.t >= ss.plug && e.t < ss.unplug) {
		ss = f.sessionOf(e.i, day-1)
		if !(ss.ok && e.t >= ss.plug && e.t < ss.unplug) {
			ss = session{}
		}
	}
	out := f.outdoor(e.d.site, e.t)
	ambient := 10 + 0.5*out
	rated := 11.0
	wear := 0.0
	if e.sc == scConnectorWear {
		// A worn contact heats by (15 + wear) K at full current; the
		// charger limits its current so the connector stays at 80 °C
		// (temperature rise goes with the square of the current). It
		// passes 70 °C at full power at about wear 40 (p 0.13) and falls
		// below half power (the customer notices) at about wear 245 (p 0.77).
		wear = 320 * e.p
		if rise := 15 + wear; ambient+rise > 80 {
			rated = 11 * math.Sqrt(math.Max(0, 80-ambient)/rise)
		}
	}
	status, power, delivered := 0.0, 0.0, 0.0
	if ss.ok {
		charged := float64(e.t-ss.plug) / 3600 * rated
		delivered = math.Min(ss.need, charged)
		status, power = 3, 0
		if charged < ss.need {
			status, power = 2, rated
		}
		faulted := false
		switch e.sc {
		case scContactorFailure:
			faulted = e.since >= 0
		case scFirmwareRollout: // the new firmware aborts sessions 20-40 minutes in
			if e.since >= 0 && ss.plug >= e.fl.onset {
				abort := ss.plug + 1200 + int64(hash3(f.seed, key(e.i, saltFault), uint64(ss.plug))%1200)
				if e.t >= abort {
					faulted = true
					delivered = math.Min(ss.need, float64(abort-ss.plug)/3600*rated)
					if abort > e.t-e.step {
						s.event, s.message = "E-OCPP-ABORT", "charging session aborted by firmware"
					}
				}
			}
		}
		if faulted && status == 2 {
			status, power = 9, 0
		}
		s.discomfort = delivered < ss.need && power < 5.5
	}
	current := power * 1000 / (math.Sqrt(3) * 400)
	temp := ambient
	if power > 0 {
		temp += (15 + wear) * (current / 15.9) * (current / 15.9)
	}
	s.add("connector_temp_c", temp+f.noise(e.i, e.t, 0, 0.5))
	s.add("current_a", math.Max(0, current+f.noise(e.i, e.t, 1, 0.1)*b2f(power > 0)))
	s.add("power_kw", math.Max(0, power+f.noise(e.i, e.t, 2, 0.05)*b2f(power > 0)))
	s.add("session_kwh", delivered)
	s.add("status_code", status)
	s.add("voltage_v", 230-3*b2f(power > 0)+f.noise(e.i, e.t, 5, 1.2))
}

// demand is the water a building draws at t, l/min: a night base, morning
// and evening peaks (later at weekends), and now and then a hose left
// running for two hours (benign).
func (f *Fleet) demand(i uint32, t int64) float64 {
	h := hourOf(t)
	shift := 0.0
	if weekend(t) {
		shift = 1.5
	}
	bump := func(at, width float64) float64 { return math.Exp(-(h - at) * (h - at) / (2 * width * width)) }
	q := 4 + 30*bump(7.5+shift, 1) + 22*bump(19.5, 1.5) + 8*bump(13, 2)
	if hose, _ := f.episode(i, saltOddity, t, 86400, 7200, 0.04); hose {
		q += 25
	}
	return q
}

// waterPump: a building booster pump running all day; pressure sags with
// flow; a backup battery keeps the controller alive.
func (f *Fleet) waterPump(e *env, s *sample) {
	q := f.demand(e.i, e.t)
	flow := q
	pressure := 4.2 - 0.03*q
	amps := 1.5 + 0.1*q
	temp := 25 + 0.4*q
	vib := 1.8
	battery := 13.3
	shown := math.NaN()
	switch e.sc {
	case scBatteryWear:
		battery -= 2.6 * e.p
	case scBearingWear:
		vib += 10 * math.Pow(e.p, 1.5)
		amps += 0.8 * e.p
	case scDryRun:
		flow, pressure, amps, temp = 0, 0.3, 0.9, 60
	case scPressureIntermittent:
		if in, _ := f.episode(e.i, saltFault, e.t, 4*3600, int64(900+1800*e.p), 0.15+0.6*e.p); in {
			flow, pressure = q*0.3, 0.9
		}
	case scPressureSensorDrift: // reads low, so the controller over-pressurises
		pressure += 2 * e.p
		shown = pressure - 4.2*e.p
	}
	switch e.sc {
	case scBatteryWear:
		s.discomfort = battery < 11.2
	case scBearingWear:
		s.discomfort = vib > 9
	case scPressureSensorDrift:
		s.discomfort = pressure > 5.8
	default:
		s.discomfort = pressure < 1.5 && q > 3
	}
	if math.IsNaN(shown) {
		shown = pressure
	}
	s.add("battery_v", battery+f.noise(e.i, e.t, 0, 0.03))
	s.add("flow_lpm", math.Max(0, flow+f.noise(e.i, e.t, 1, 0.8)))
	s.add("motor_amps", amps+f.noise(e.i, e.t, 2, 0.1))
	s.add("motor_temp_c", temp+f.noise(e.i, e.t, 3, 0.4))
	s.add("pressure_bar", math.Max(0, shown+f.noise(e.i, e.t, 4, 0.04)))
	s.add("vibration_mm_s", math.Max(0, vib+f.noise(e.i, e.t, 5, 0.15)))
}
