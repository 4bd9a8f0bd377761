// The forecast detector, the predictive one: fit the metric's recent trend
// and raise when it will cross a limit within a horizon ("the filter will
// be clogged in about 3 days").
//
// Config keys (profiles.<model>.rules[i], with detector: forecast):
//
//	metric            the reading field to watch
//	detector          forecast
//	limit             the level that must not be reached (required)
//	direction         rising (the value grows towards limit; default) or falling
//	window            how much recent history the trend is fitted over (required, > 0)
//	horizon           how far ahead to look (required, > 0)
//	clear_horizon     clear only when the forecast no longer crosses within this (>= horizon);
//	                  default 1.25*horizon, so a crossing forecast near the horizon does not flap
//	min_confidence    the least confidence in the trend's direction to raise, 0 to 1; default 0.9
//	for               how long the forecast must keep crossing before raising; default 0
//	clear_for         how long it must keep not crossing before clearing; default for
//	name              the rule's name in findings; default metric + "/forecast"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// The fit: a least-squares line through the readings, weighted by
// exp(-age/tau) with tau = window/3 (readings older than window weigh less
// than 5%), kept as exponentially decayed moments, so the state is a few
// numbers whatever the reading rate. The trend is judged once it has at
// least 5 readings spanning at least window/2. From the fitted level now
// (y) and slope (b) it predicts the crossing time now+(limit-y)/b. The
// confidence is P(slope has the sign that leads to the limit), from the
// slope's t-statistic under normal residuals (the effective sample size
// of the decayed weights stands in for n), so a noisy flat signal is not
// extrapolated into a crossing.
//
// When it fires: the fitted level is already past the limit, or the trend
// leads to the limit within horizon with confidence >= min_confidence,
// for `for`. When it clears: the forecast no longer crosses within
// clear_horizon (the trend turned, flattened, lost confidence, or was
// reset, as by a new filter) and the fitted level is back before the
// limit, for clear_for. Evidence:
// the reading, the fitted level (expected), the slope per hour (score),
// the predicted crossing time (cross_at) and the confidence.
//
// Readings not after the last accepted one, without the metric, or NaN are
// ignored.
//
// Example rule: the filter's pressure drop climbs as it clogs; raise three
// days before it reaches 250 Pa.
//
//	- metric: filter_dp_pa
//	  detector: forecast
//	  limit: 250
//	  direction: rising
//	  window: 12h
//	  horizon: 72h
//	  clear_horizon: 96h
//	  min_confidence: 0.9
//	  fault: filter_clogging
//	  severity: minor
//	  customer_visible: true
//	  remedy: Replace the air filter; we can ship one.
//
// testdata/forecast_example.csv is a trace of this rule: flat at 120 Pa
// with noise, then climbing 1 Pa per hour; raised about three days before
// the crossing, cleared after the filter is replaced.

package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// Forecast defaults.
const (
	defaultMinConfidence = 0.9
	trendMinSamples      = 5
)

// Directions of forecast and usage rules.
const (
	DirectionRising  = "rising"
	DirectionFalling = "falling"
)

type forecastRule struct {
	ruleInfo
	limit            float64
	falling          bool
	window, horizon  time.Duration
	clearHorizon     time.Duration
	minConfidence    float64
	forDur, clearFor time.Duration
}

func compileForecast(r Rule) *forecastRule {
	f := &forecastRule{ruleInfo: newRuleInfo(r), limit: *r.Limit, falling: r.Direction == DirectionFalling,
		window: r.Window, horizon: r.Horizon, minConfidence: defaultMinConfidence, forDur: r.For, clearFor: r.For}
	if r.MinConfidence != nil {
		f.minConfidence = *r.MinConfidence
	}
	f.clearHorizon = r.Horizon + r.Horizon/4
	if r.ClearHorizon > 0 {
		f.clearHorizon = r.ClearHorizon
	}
	if r.ClearFor != nil {
		f.clearFor = *r.ClearFor
	}
	return f
}

// trendProblems checks the keys forecast and usage share.
func (ps *problemList) trend(r Rule, limitRequired bool) {
	if r.Limit == nil && limitRequired {
		ps.add("limit", "required: the level that must not be reached")
	}
	ps.finite("limit", r.Limit)
	switch r.Direction {
	case "", DirectionRising, DirectionFalling:
	default:
		ps.add("direction", "%q is not rising or falling", r.Direction)
	}
	if r.Window <= 0 {
		ps.add("window", "required: a positive duration, e.g. 12h")
	}
	if r.Horizon <= 0 {
		ps.add("horizon", "required: a positive duration, e.g. 72h")
	}
}

func (r Rule) forecastProblems() []*keyError {
	var ps problemList
	ps.trend(r, true)
	if r.ClearHorizon != 0 && r.ClearHorizon < r.Horizon {
		ps.add("clear_horizon", "%s must not be shorter than horizon (%s)", r.ClearHorizon, r.Horizon)
	}
	if ps.finite("min_confidence", r.MinConfidence) && r.MinConfidence != nil && (*r.MinConfidence < 0 || *r.MinConfidence > 1) {
		ps.add("min_confidence", "%s must be between 0 and 1", num(*r.MinConfidence))
	}
	ps.durations(r)
	return ps
}

// trend is an exponentially weighted least-squares line: the decayed sum
// of weights, weighted means of t and v, and centred second moments. Times
// are seconds since origin.
type trend struct {
	Origin   int64 // Unix ns of the first reading
	LastT    float64
	W, W2    float64 // sum of weights, of squared weights
	Mt, Mv   float64
	Ctt, Ctv float64
	Cvv      float64
	N        int32
}

// add puts (at, v) into the fit, decaying the old weight by
// exp(-dt/tau).
func (tr *trend) add(at int64, v float64, tau float64) {
	if tr.N == 0 {
		*tr = trend{Origin: at, W: 1, W2: 1, Mv: v, N: 1}
		return
	}
	t := float64(at-tr.Origin) / 1e9
	decay := math.Exp(-(t - tr.LastT) / tau)
	tr.LastT = t
	tr.W *= decay
	tr.W2 *= decay * decay
	tr.Ctt *= decay
	tr.Ctv *= decay
	tr.Cvv *= decay
	tr.W++
	tr.W2++
	dt, dv := t-tr.Mt, v-tr.Mv
	tr.Mt += dt / tr.W
	tr.Mv += dv / tr.W
	tr.Ctt += dt * (t - tr.Mt)
	tr.Ctv += dt * (v - tr.Mv)
	tr.Cvv += dv * (v - tr.Mv)
	if tr.N < math.MaxInt32 {
		tr.N++
	}
}

// span is how long the fit has been fed, in seconds.
func (tr *trend) span() float64 { return tr.LastT }

// fit returns the fitted level at the last reading, the slope per second
// and the confidence that the slope is positive (up) or negative (!up).
func (tr *trend) fit(up bool) (level, slope, confidence float64) {
	if tr.Ctt <= 0 {
		return tr.Mv, 0, 0
	}
	slope = tr.Ctv / tr.Ctt
	level = tr.Mv + slope*(tr.LastT-tr.Mt)
	neff := tr.W * tr.W / tr.W2
	rss := math.Max(tr.Cvv-slope*tr.Ctv, 0)
	if neff <= 2 {
		return level, slope, 0
	}
	s2 := rss / tr.W * neff / (neff - 2)
	se := math.Sqrt(s2 / tr.Ctt * tr.W / neff)
	tstat := slope / se
	if !up {
		tstat = -tstat
	}
	switch {
	case se == 0 && tstat > 0, math.IsInf(tstat, 1):
		return level, slope, 1
	case se == 0, math.IsNaN(tstat):
		return level, slope, 0
	}
	return level, slope, 0.5 * math.Erfc(-tstat/math.Sqrt2)
}

// crossing is a trend judged against a limit.
type crossing struct {
	level, slope, confidence float64
	eta                      time.Duration // time to the limit from now; 0 when past it; -1 when never
	crosses                  bool          // the forecast crosses within the horizon
}

// judge evaluates tr against limit in direction (falling or rising).
func judge(tr *trend, limit float64, falling bool, horizon time.Duration, minConfidence float64) crossing {
	level, slope, conf := tr.fit(!falling)
	c := crossing{level: level, slope: slope, confidence: conf, eta: -1}
	past := level >= limit
	toward := slope > 0
	if falling {
		past, toward = level <= limit, slope < 0
	}
	switch {
	case past:
		c.eta, c.crosses, c.confidence = 0, true, math.Max(conf, 0.5)
	case toward:
		secs := (limit - level) / slope
		if secs < float64(math.MaxInt64/2)/1e9 {
			c.eta = time.Duration(secs * 1e9)
			c.crosses = c.eta <= horizon && conf >= minConfidence
		}
	}
	return c
}

// A Forecast is the forecast detector for one rule on one device. It
// implements Detector; forecast.go's file comment has the semantics.
type Forecast struct {
	rule *forecastRule
	clk  clock
	run  run
	tr   trend
}

// NewForecast returns a Forecast for r, a valid rule with detector forecast.
func NewForecast(r Rule) (*Forecast, error) {
	if err := checkRule(r, DetectorForecast); err != nil {
		return nil, err
	}
	return &Forecast{rule: compileForecast(r)}, nil
}

// Observe implements Detector.
func (d *Forecast) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	v, at, ok := d.clk.value(r, d.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	rule := d.rule
	d.tr.add(at, v, rule.window.Seconds()/3)
	if d.tr.N < trendMinSamples || d.tr.span() < rule.window.Seconds()/2 {
		return telemetry.Finding{}, false
	}
	var c crossing
	hold, need := false, rule.forDur
	if d.run.Raised {
		c = judge(&d.tr, rule.limit, rule.falling, rule.clearHorizon, rule.minConfidence)
		hold, need = !c.crosses, rule.clearFor
	} else {
		c = judge(&d.tr, rule.limit, rule.falling, rule.horizon, rule.minConfidence)
		hold = c.crosses
	}
	if !d.run.step(at, hold, need) {
		return telemetry.Finding{}, false
	}
	return rule.finding(r.Device, r.Model, r.At, d.run.Raised, trendEvidence(rule.metric, r.At, v, rule.limit, rule.falling, rule.window, rule.horizon, c, d.run.sinceTime(r.At.Location()), int(d.run.Samples))), true
}

// trendEvidence describes a judged trend for forecast and usage findings.
func trendEvidence(metric string, at time.Time, v, limit float64, falling bool, window, horizon time.Duration, c crossing, since time.Time, samples int) telemetry.Evidence {
	op := "above"
	if falling {
		op = "below"
	}
	ev := telemetry.Evidence{
		Value: v, Limit: limit, Op: op, Since: since, Samples: samples, Window: window.String(),
		Expected: c.level, Score: c.slope * 3600, Confidence: c.confidence,
	}
	switch {
	case c.eta == 0:
		ev.CrossAt = at
		ev.Note = fmt.Sprintf("%s is at %s, past the limit %s (fitted %s)", metric, num(v), num(limit), strconvG(c.level))
	case c.eta > 0:
		ev.CrossAt = at.Add(c.eta)
		ev.Note = fmt.Sprintf("%s is trending %s per hour from %s; forecast to reach %s in %s (confidence %.2f)",
			metric, strconvG(c.slope*3600), strconvG(c.level), num(limit), c.eta.Round(time.Minute), c.confidence)
	default:
		ev.Note = fmt.Sprintf("%s is trending %s per hour from %s; not forecast to reach %s within %s",
			metric, strconvG(c.slope*3600), strconvG(c.level), num(limit), horizon)
	}
	if c.eta > horizon {
		ev.Note = fmt.Sprintf("%s is trending %s per hour from %s; forecast to reach %s only in %s, beyond %s",
			metric, strconvG(c.slope*3600), strconvG(c.level), num(limit), c.eta.Round(time.Minute), horizon)
	}
	return ev
}
