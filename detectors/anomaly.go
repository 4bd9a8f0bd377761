// The anomaly detector: a value far from what the metric usually does,
// measured as a robust z-score against an exponentially weighted baseline.
//
// Config keys (profiles.<model>.rules[i], with detector: anomaly):
//
//	metric            the reading field to watch
//	detector          anomaly
//	k                 raise when |z| > k; default 4
//	clear_k           clear when |z| <= clear_k; default k/2
//	warmup            readings the baseline learns from before the rule may raise; default 2*half_life
//	                  (with season: readings per bucket)
//	half_life         the baseline's memory in readings: a reading's weight halves after this many; default 60
//	season            the length of a cycle the metric follows, e.g. 24h; default 0 (no cycle)
//	season_buckets    how many parts of the season get a baseline of their own; default 24
//	likelihood_half_life  judge |z| against its own usual level over this many readings (see below);
//	                  default 0 (off: k judges z itself)
//	for               how long |z| must stay above k; default 0
//	clear_for         how long |z| must stay at or below clear_k; default for
//	name              the rule's name in findings; default metric + "/anomaly"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// The baseline: an exponentially weighted mean m and mean absolute
// deviation d (EWMA with alpha = 1-2^(-1/half_life)); the spread is
// s = 1.2533*d (for normal noise, the standard deviation) and
// z = (value-m)/s, computed before the reading updates the baseline. The
// update is robust: after warm-up a residual is clipped to +-k*s before it
// enters m and d, so one outlier moves the baseline little, while a
// lasting level shift is learnt within a few half-lives (d grows and lets
// the clipped steps grow). While the rule is raised the baseline learns 16
// times slower, so a fault lasting minutes or hours is not taken for the
// new normal and cleared while it goes on. With season set, each of season_buckets equal
// parts of the cycle (by event time modulo season) keeps its own m and d,
// so an evening peak is compared with earlier evenings, not with the
// afternoon: a daily cycle does not fire every evening.
//
// With likelihood_half_life, k judges a second level instead of z: the
// short average of |z| (capped at 10; half-life 3 readings) is compared
// with its own exponentially weighted mean and standard deviation over
// likelihood_half_life readings (seeded by 50 readings after warm-up), and
// the score is how many standard deviations it lies above its usual level.
// A metric that is always spiky then stops alarming on every spike, while
// a change unusual for that metric still raises (this is what the NAB
// benchmark rewards, docs/detection.md). The baseline then clips residuals
// at 5 spreads.
//
// When it fires and clears: |score| > k holds for `for` (every reading from
// the first such through one at least `for` later), after warm-up; it
// clears when |score| <= clear_k holds for clear_for. The score is z, or
// the second level with likelihood_half_life. Readings not after the last
// accepted one, without the metric, or NaN are ignored.
//
// Example rule: a compressor current far from its usual value for its
// time of day.
//
//	- metric: compressor_amps
//	  detector: anomaly
//	  k: 5
//	  clear_k: 2
//	  half_life: 14
//	  warmup: 7
//	  season: 24h
//	  season_buckets: 48
//	  for: 15m
//	  clear_for: 30m
//	  fault: compressor_anomaly
//	  severity: minor
//	  remedy: Compare with the outdoor temperature; book an inspection if it persists.
//
// testdata/anomaly_daily.csv (14 days of a daily cycle with noise, then a
// fault) is a trace of this rule: no finding in the cycle, one raise and
// clear for the fault.

package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// Anomaly defaults.
const (
	defaultK        = 4.0
	defaultHalfLife = 60
	defaultBuckets  = 24
	madToSigma      = 1.2533141373155 // sqrt(pi/2): standard deviation per mean absolute deviation, normal noise
)

// raisedSlowdown divides the baseline's learning rate while the rule is
// raised, so a lasting fault is not learnt as the new normal within a few
// half-lives (it still is, eventually: a permanent level shift clears
// after about raisedSlowdown times longer).
const raisedSlowdown = 16

type anomalyRule struct {
	ruleInfo
	likAlpha         float64 // EWMA weight of the second level; 0 = off
	k, clearK        float64
	warmup           int32
	alpha            float64
	season           time.Duration
	buckets          int
	forDur, clearFor time.Duration
}

func compileAnomaly(r Rule) *anomalyRule {
	a := &anomalyRule{ruleInfo: newRuleInfo(r), k: defaultK, forDur: r.For, clearFor: r.For, season: r.Season, buckets: defaultBuckets}
	if r.K != nil {
		a.k = *r.K
	}
	a.clearK = a.k / 2
	if r.ClearK != nil {
		a.clearK = *r.ClearK
	}
	hl := defaultHalfLife
	if r.HalfLife > 0 {
		hl = r.HalfLife
	}
	a.alpha = 1 - math.Pow(2, -1/float64(hl))
	a.warmup = int32(2 * hl)
	if r.Warmup > 0 {
		a.warmup = int32(r.Warmup)
	}
	if r.SeasonBuckets > 0 {
		a.buckets = r.SeasonBuckets
	}
	if r.ClearFor != nil {
		a.clearFor = *r.ClearFor
	}
	if a.season == 0 {
		a.buckets = 1
	}
	if r.LikelihoodHalfLife > 0 {
		a.likAlpha = 1 - math.Pow(2, -1/float64(r.LikelihoodHalfLife))
	}
	return a
}

func (r Rule) anomalyProblems() []*keyError {
	var ps problemList
	if ps.finite("k", r.K) && r.K != nil && *r.K <= 0 {
		ps.add("k", "must be positive")
	}
	if ps.finite("clear_k", r.ClearK) && r.ClearK != nil {
		k := defaultK
		if r.K != nil {
			k = *r.K
		}
		if *r.ClearK < 0 || *r.ClearK > k {
			ps.add("clear_k", "%s must be between 0 and k (%s)", num(*r.ClearK), num(k))
		}
	}
	if r.Warmup < 0 || r.Warmup > 1e6 {
		ps.add("warmup", "must be between 0 and 1000000 readings")
	}
	if r.HalfLife < 0 || r.HalfLife > 1e6 {
		ps.add("half_life", "must be between 0 and 1000000 readings")
	}
	if r.LikelihoodHalfLife < 0 || r.LikelihoodHalfLife > 1e6 {
		ps.add("likelihood_half_life", "must be between 0 (off) and 1000000 readings")
	}
	ps.nonNegative("season", r.Season)
	if r.SeasonBuckets < 0 || r.SeasonBuckets > 1440 {
		ps.add("season_buckets", "must be between 1 and 1440")
	}
	if r.SeasonBuckets > 0 && r.Season == 0 {
		ps.add("season_buckets", "needs season")
	}
	if r.Season > 0 && r.Season/time.Duration(max(r.SeasonBuckets, 1)) < time.Second {
		ps.add("season", "a bucket must span at least 1s")
	}
	ps.durations(r)
	return ps
}

// baseline is one robust EWMA: mean and mean absolute deviation.
type baseline struct {
	Mean, Dev float64
	N         int32
}

// An Anomaly is the anomaly detector for one rule on one device. It
// implements Detector; anomaly.go's file comment has the semantics.
type Anomaly struct {
	rule  *anomalyRule
	clk   clock
	run   run
	base  baseline   // without season
	cycle []baseline // with season: one per bucket
	lik   likStats   // with likelihood_half_life
	z     float64    // the last reading's judged score (0 in warm-up)
}

// NewAnomaly returns an Anomaly for r, a valid rule with detector anomaly.
func NewAnomaly(r Rule) (*Anomaly, error) {
	if err := checkRule(r, DetectorAnomaly); err != nil {
		return nil, err
	}
	return newAnomaly(compileAnomaly(r)), nil
}

func newAnomaly(rule *anomalyRule) *Anomaly {
	a := &Anomaly{rule: rule}
	if rule.season > 0 {
		a.cycle = make([]baseline, rule.buckets)
	}
	return a
}

// bucket returns the baseline a reading at event time at is compared with.
func (d *Anomaly) bucket(at int64) *baseline {
	if d.cycle == nil {
		return &d.base
	}
	s := int64(d.rule.season)
	i := (at%s + s) % s / (s / int64(len(d.cycle)))
	return &d.cycle[min(int(i), len(d.cycle)-1)]
}

// Score returns the last observed reading's anomaly score in [0, 1):
// |s|/(|s|+k) of the judged score s (z, or the second level), so k maps to
// 0.5; 0 during warm-up.
func (d *Anomaly) Score() float64 {
	z := math.Abs(d.z)
	return z / (z + d.rule.k)
}

// Observe implements Detector.
func (d *Anomaly) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	v, at, ok := d.clk.value(r, d.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	b := d.bucket(at)
	rule := d.rule
	warm := b.N >= rule.warmup
	clip := rule.k
	if rule.likAlpha > 0 {
		clip = likelihoodClip
	}
	spread := madToSigma * b.Dev
	if floor := 1e-9 * math.Max(1, math.Abs(b.Mean)); spread < floor {
		spread = floor
	}
	res := v - b.Mean
	z := res / spread
	expected := b.Mean
	// Update the baseline (robustly once warm).
	switch {
	case b.N == 0:
		b.Mean, b.Dev = v, 0
	case warm:
		c := math.Max(-clip*spread, math.Min(clip*spread, res))
		alpha := rule.alpha
		if d.run.Raised {
			alpha /= raisedSlowdown
		}
		b.Mean += alpha * c
		b.Dev += alpha * (math.Abs(c) - b.Dev)
	default:
		// Warm-up: plain averages weigh the first readings equally, so the
		// baseline does not remember its first value for long.
		w := math.Max(rule.alpha, 1/float64(b.N+1))
		b.Mean += w * res
		b.Dev += w * (math.Abs(res) - b.Dev)
	}
	if b.N < math.MaxInt32 {
		b.N++
	}
	if !warm {
		d.z = 0
		return telemetry.Finding{}, false
	}
	score := z // what k and clear_k judge
	if rule.likAlpha > 0 {
		var ok bool
		if score, ok = d.lik.judge(z, rule.likAlpha); !ok {
			d.z = 0
			return telemetry.Finding{}, false
		}
	}
	d.z = score
	var hold bool
	need := rule.forDur
	if d.run.Raised {
		hold, need = math.Abs(score) <= rule.clearK, rule.clearFor
	} else {
		hold = math.Abs(score) > rule.k
	}
	if !d.run.step(at, hold, need) {
		return telemetry.Finding{}, false
	}
	since := d.run.sinceTime(r.At.Location())
	limit, cond := rule.k, "above"
	if !d.run.Raised {
		limit, cond = rule.clearK, "at or below"
	}
	note := fmt.Sprintf("%s was %s, expected %s +- %s: |z| %s %s (z=%.1f)", rule.metric, num(v),
		strconvG(expected), strconvG(spread), cond, num(limit), z)
	if rule.likAlpha > 0 {
		note = fmt.Sprintf("%s was %s, expected %s +- %s (z=%.1f): %.1f standard deviations from its usual |z|, %s %s",
			rule.metric, num(v), strconvG(expected), strconvG(spread), z, score, cond, num(limit))
	}
	return rule.finding(r.Device, r.Model, r.At, d.run.Raised, telemetry.Evidence{
		Value: v, Limit: limit, Op: "above", For: need.String(), Since: since, Samples: int(d.run.Samples),
		Expected: expected, Spread: spread, Score: score, Note: note,
	}), true
}

// Second-level normalisation (likelihood_half_life).
const (
	likelihoodClip      = 5.0  // the baseline's clipping, in spreads, when k judges the second level
	likelihoodCap       = 10.0 // |z| is capped here before it enters the second level
	likelihoodShortHalf = 3    // readings: the short average of |z|
	likelihoodWarmup    = 50   // readings after warm-up that seed the second level
)

// likStats is the second level: the short average of |z| and the
// exponentially weighted mean and variance of that average.
type likStats struct {
	Short, Mean, Var float64
	N                int32
}

// likShortAlpha is the EWMA weight of the short average.
var likShortAlpha = 1 - math.Pow(2, -1.0/likelihoodShortHalf)

// judge feeds z and returns how many standard deviations the short average
// of |z| lies above its usual level, or false while the level is learnt.
func (l *likStats) judge(z, alpha float64) (float64, bool) {
	raw := math.Min(math.Abs(z), likelihoodCap)
	l.Short += likShortAlpha * (raw - l.Short)
	if l.N < likelihoodWarmup {
		l.N++
		l.Mean += (l.Short - l.Mean) / float64(l.N)
		l.Var += ((l.Short-l.Mean)*(l.Short-l.Mean) - l.Var) / float64(l.N)
		return 0, false
	}
	score := (l.Short - l.Mean) / math.Sqrt(math.Max(l.Var, 1e-6))
	l.Mean += alpha * (l.Short - l.Mean)
	l.Var += alpha * ((l.Short-l.Mean)*(l.Short-l.Mean) - l.Var)
	return score, true
}

// strconvG formats a statistic with 4 significant digits.
func strconvG(v float64) string { return fmt.Sprintf("%.4g", v) }
