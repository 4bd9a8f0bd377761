// The context detector: a metric doing something it has not done before in
// this context, in the spirit of the Contextual Anomaly Detector (CAD OSE)
// that leads the NAB benchmark. It learns which short sequences of value
// levels the metric goes through and raises when the latest step is new in
// most of the contexts that precede it. It needs no knowledge of units or
// cycles: a daily pattern is a sequence it has seen, a pattern that changes
// shape or a level it never visited is not.
//
// Config keys (profiles.<model>.rules[i], with detector: context):
//
//	metric            the reading field to watch
//	detector          context
//	bins              how many levels the warm-up range is cut into; default 4
//	depth             the longest context, in level changes; default 3
//	novelty           raise when at least this fraction of the contexts are new, in (0, 1]; default 1
//	rest              readings after a raise during which it does not raise again; default 200
//	memory            contexts remembered (bounded state: 8 bytes each, rounded up to a power of two); default 1024
//	warmup            readings that learn the range before contexts are learnt; default 250 (it may
//	                  raise after twice as many)
//	margin            how far beyond the warm-up range, in levels, a value still counts as the
//	                  nearest level inside it, in [0, 1]; default 0
//	recut             once judging, a value farther from the range than recut times its width
//	                  cuts the range again (see below); default 0 (never: the range is only cut
//	                  again before judging)
//	name              the rule's name in findings; default metric + "/context"
//	fault             the ticket type, [a-z0-9_]+
//	severity          info, minor, major or critical
//	customer_visible  whether the owner is told; default false
//	remedy            text or a runbook link shown on the ticket
//
// Levels: during warm-up the detector keeps the metric's minimum and
// maximum; at the end of warm-up the level width is (max-min)/bins (at
// least 1e-6 of the larger magnitude) and is then frozen: level
// floor((value-min)/width), so a value at or above the warm-up's maximum,
// or below its minimum, is in a level the warm-up never used (a new level
// is always a new context). With margin m > 0, a value from the maximum
// up to m widths above it is in the top level inside the range (bins-1),
// and a value less than m widths below the minimum in the bottom one (0):
// a warm-up sees a sample of the metric's range, and a value just past
// its edge is not yet a level of its own. The history is the sequence of
// levels with repeats collapsed (a value staying in its level adds
// nothing).
//
// Warm-up lasts until the metric has taken two different values: a metric
// constant so far (a disk idle at 0) has no range to cut. And while the
// memory fills (the warm-up after the cut, before any judging), a value
// farther from the range than the range is wide (a disk's first burst
// after a few kilobytes) shows that the warm-up saw only a small part of
// the range: the range takes it in, the width is cut again, the contexts
// learnt so far are forgotten and the memory fills again for a warm-up.
//
// With recut r > 0 the same holds once judging: a value farther from the
// range than r times its width is judged against the levels it has (a
// level far outside them: it raises, unless resting), then the range takes
// it in, the width is cut again, the contexts are forgotten and the judging
// starts again a warm-up later. A metric whose warm-up saw a small part of
// its range (a spike or a level shift far beyond it) thus gets levels cut
// from the range it has shown, instead of thin levels far outside the
// warm-up's, where ordinary noise keeps making new contexts. One outlier
// makes the levels coarse for good: what moves within a level is left to
// other rules.

// Contexts: when the level changes, for each length L = 1..depth the last
// L levels followed by the new one form a context. The novelty of the
// reading is the fraction of those contexts never seen before (0 when the
// level did not change); then all of them are remembered. Memory is a
// two-way set-associative table of 64-bit context hashes: when a set is
// full the newer context replaces one of the two, so the state stays
// bounded and an old habit is eventually forgotten.
//
// When it fires and clears: from warmup readings after the range is
// last cut on (the contexts met in the first warm-up after it are all
// new; reading 2*warmup unless the warm-up was constant or the range was
// cut again), a reading whose novelty is at least novelty raises, unless
// a raise happened in the last rest readings; the next reading below
// novelty clears. A fault is reported once, at the
// moment it starts to look new. Readings not after the last accepted one,
// without the metric, NaN or infinite are ignored.
//
// Example rule: a compressor's current, sampled every 5 minutes, going
// through levels in an order it never did before. The defaults, but for a
// warm-up longer than a day (288 readings), so that the range learnt
// covers the daily cycle: a value a little above the warm-up's maximum is
// a level of its own.
//
//	- metric: compressor_amps
//	  detector: context
//	  bins: 4
//	  depth: 3
//	  novelty: 1
//	  rest: 200
//	  memory: 1024
//	  warmup: 300
//	  fault: compressor_unusual
//	  severity: minor
//	  remedy: Compare with the outdoor temperature and the schedule; book an inspection if it repeats.
//
// testdata/context_example.csv is a trace of this rule.

package detectors

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/forewarn/forewarn/telemetry"
)

// Context defaults.
const (
	defaultContextBins    = 4
	defaultContextDepth   = 3
	defaultContextNovelty = 1.0
	defaultContextRest    = 200
	defaultContextMemory  = 1024
	defaultContextWarmup  = 250
	defaultContextMargin  = 0.0
	defaultContextRecut   = 0.0
	maxContextDepth       = 16
	maxContextMemory      = 1 << 20
	contextLevelLimit     = 1 << 30 // levels beyond +-this are clamped
)

type contextRule struct {
	ruleInfo
	bins, depth  int
	novelty      float64
	margin       float64 // in level widths
	recut        float64 // in range widths; 0 = off
	rest, warmup int32
	memory       int // a power of two, at least 2
}

func compileContext(r Rule) *contextRule {
	c := &contextRule{ruleInfo: newRuleInfo(r), bins: defaultContextBins, depth: defaultContextDepth,
		novelty: defaultContextNovelty, margin: defaultContextMargin, recut: defaultContextRecut, rest: defaultContextRest, warmup: defaultContextWarmup, memory: defaultContextMemory}
	if r.Bins > 0 {
		c.bins = r.Bins
	}
	if r.Depth > 0 {
		c.depth = r.Depth
	}
	if r.Novelty != nil {
		c.novelty = *r.Novelty
	}
	if r.Rest != nil {
		c.rest = int32(*r.Rest)
	}
	if r.Margin != nil {
		c.margin = *r.Margin
	}
	if r.Recut != nil {
		c.recut = *r.Recut
	}
	if r.Warmup > 0 {
		c.warmup = int32(r.Warmup)
	}
	if r.Memory > 0 {
		c.memory = r.Memory
	}
	c.memory = max(2, 1<<bits.Len(uint(c.memory-1)))
	return c
}

func (r Rule) contextProblems() []*keyError {
	var ps problemList
	if r.Bins < 0 || r.Bins > 4096 {
		ps.add("bins", "must be between 1 and 4096")
	}
	if r.Depth < 0 || r.Depth > maxContextDepth {
		ps.add("depth", "must be between 1 and %d", maxContextDepth)
	}
	if ps.finite("novelty", r.Novelty) && r.Novelty != nil && (*r.Novelty <= 0 || *r.Novelty > 1) {
		ps.add("novelty", "%s must be in (0, 1]", num(*r.Novelty))
	}
	if ps.finite("margin", r.Margin) && r.Margin != nil && (*r.Margin < 0 || *r.Margin > 1) {
		ps.add("margin", "%s must be in [0, 1]", num(*r.Margin))
	}
	if ps.finite("recut", r.Recut) && r.Recut != nil && (*r.Recut < 0 || *r.Recut > 1000) {
		ps.add("recut", "%s must be between 0 (never) and 1000 range widths", num(*r.Recut))
	}
	if r.Rest != nil && (*r.Rest < 0 || *r.Rest > 1e6) {
		ps.add("rest", "must be between 0 and 1000000 readings")
	}
	if r.Memory < 0 || r.Memory == 1 || r.Memory > maxContextMemory {
		ps.add("memory", "must be between 2 and %d contexts", maxContextMemory)
	}
	if r.Warmup < 0 || r.Warmup > 1e6 {
		ps.add("warmup", "must be between 0 and 1000000 readings")
	}
	return ps
}

// A Context is the context detector for one rule on one device. It
// implements Detector and Scorer; context.go's file comment has the
// semantics.
type Context struct {
	rule     *contextRule
	clk      clock
	N        int32   // readings accepted (saturating), not counting a constant warm-up's beyond warmup-1
	Min, Max float64 // warm-up range
	Width    float64 // level width; 0 until warm-up ends
	Hist     []int32 // the last depth distinct levels, newest last
	Known    []uint64
	Quiet    int32 // readings since the last raise (saturating)
	Raised   bool
	Nov      float64 // the last reading's novelty
}

// NewContext returns a Context for r, a valid rule with detector context.
func NewContext(r Rule) (*Context, error) {
	if err := checkRule(r, DetectorContext); err != nil {
		return nil, err
	}
	return newContext(compileContext(r)), nil
}

func newContext(rule *contextRule) *Context {
	return &Context{rule: rule, Hist: make([]int32, 0, rule.depth), Known: make([]uint64, rule.memory), Quiet: math.MaxInt32}
}

// consistent reports whether restored state fits the rule.
func (d *Context) consistent() bool {
	return len(d.Known) == d.rule.memory && len(d.Hist) <= d.rule.depth
}

// Score implements Scorer: the last reading's novelty mapped to [0, 0.75]
// so that the raise level novelty is 0.5 and a reading whose contexts are
// all new is 0.75 (0 in warm-up and while the level stays).
func (d *Context) Score() float64 {
	n, t := d.Nov, d.rule.novelty
	switch {
	case n < t:
		return 0.5 * n / t
	case t >= 1:
		return 0.75
	}
	return 0.5 + 0.25*(n-t)/(1-t)
}

// cut sets the level width from the range.
func (d *Context) cut() {
	floor := 1e-6 * math.Max(1e-9, math.Max(math.Abs(d.Min), math.Abs(d.Max)))
	d.Width = math.Max((d.Max-d.Min)/float64(d.rule.bins), floor)
}

// level returns the level of v once the width is frozen.
func (d *Context) level(v float64) int32 {
	if m := d.rule.margin * d.Width; v >= d.Max && v < d.Max+m {
		v = d.Max - d.Width/2 // the top level inside the range
	} else if v < d.Min && v > d.Min-m {
		v = d.Min
	}
	l := math.Floor((v - d.Min) / d.Width)
	return int32(math.Max(-contextLevelLimit, math.Min(contextLevelLimit, l)))
}

// Observe implements Detector.
func (d *Context) Observe(r telemetry.Reading) (telemetry.Finding, bool) {
	v, _, ok := d.clk.value(r, d.rule.metric)
	if !ok {
		return telemetry.Finding{}, false
	}
	rule := d.rule
	if d.N < math.MaxInt32 {
		d.N++
	}
	if d.Quiet < math.MaxInt32 {
		d.Quiet++
	}
	if d.Width == 0 {
		// Warm-up: learn the range, then freeze the level width;
		// contexts start with the first level after it.
		if d.N == 1 {
			d.Min, d.Max = v, v
		}
		d.Min, d.Max = math.Min(d.Min, v), math.Max(d.Max, v)
		d.Nov = 0
		if d.N < rule.warmup {
			return telemetry.Finding{}, false
		}
		if d.Max == d.Min {
			// Constant so far: no range to cut. Wait for a second
			// value; the judging then starts warmup readings later.
			d.N = rule.warmup - 1
			return telemetry.Finding{}, false
		}
		d.cut()
	} else if d.N < 2*rule.warmup && d.far(v, 1) {
		// Farther from the range than the range is wide, before any
		// judging: the warm-up saw a small part of the range. Cut it
		// again with this value and start learning contexts afresh.
		d.recut(v)
	}
	nov := d.learn(d.level(v))
	d.Nov = nov
	// Contexts seen in the first readings after warm-up are all new: let
	// the memory fill for a warm-up's length before judging.
	judging := d.N >= 2*rule.warmup
	if r := rule.recut; judging && r > 0 {
		// The same once judging, after this value has been judged with
		// the levels it was judged by (below).
		if d.far(v, r) {
			d.recut(v)
		}
	}
	switch {
	case !d.Raised && judging && nov >= rule.novelty && d.Quiet > rule.rest:
		d.Raised, d.Quiet = true, 0
	case d.Raised && nov < rule.novelty:
		d.Raised = false
	default:
		return telemetry.Finding{}, false
	}
	limit, cond := rule.novelty, "at or above"
	if !d.Raised {
		cond = "below"
	}
	note := fmt.Sprintf("%s was %s: %.0f%% of its last %d contexts are new, %s %s", rule.metric, num(v),
		100*nov, rule.depth, cond, num(limit))
	return rule.finding(r.Device, r.Model, r.At, d.Raised, telemetry.Evidence{
		Value: v, Limit: limit, Op: "above", For: "0s", Since: r.At, Samples: 1,
		Score: nov, Note: note,
	}), true
}

// far reports whether v is more than r range widths outside the range.
func (d *Context) far(v, r float64) bool {
	w := d.Max - d.Min
	return v > d.Max+r*w || v < d.Min-r*w
}

// recut takes v into the range, cuts the width again and forgets the
// contexts: the memory fills again for a warm-up before judging.
func (d *Context) recut(v float64) {
	d.Min, d.Max = math.Min(d.Min, v), math.Max(d.Max, v)
	d.cut()
	d.Hist = d.Hist[:0]
	clear(d.Known)
	d.N = d.rule.warmup
}

// learn appends level l to the history and returns the fraction of its
// contexts (lengths 1..depth) that were new, remembering them all.
func (d *Context) learn(l int32) float64 {
	h := d.Hist
	if len(h) > 0 && h[len(h)-1] == l {
		return 0
	}
	n := len(h)
	if n == 0 {
		d.Hist = append(h, l)
		return 0
	}
	// Hash the contexts from the newest level back: context L is the new
	// level preceded by the last L levels.
	x := mix64(uint64(uint32(l)) ^ 0x9e3779b97f4a7c15)
	newCount, total := 0, 0
	for i := n - 1; i >= 0 && total < d.rule.depth; i-- {
		x = mix64(x ^ uint64(uint32(h[i])) ^ uint64(total+1)<<40)
		total++
		if !d.remember(x) {
			newCount++
		}
	}
	if n == d.rule.depth {
		copy(h, h[1:])
		h = h[:n-1]
	}
	d.Hist = append(h, l)
	// Short histories (just after warm-up) count the missing lengths as
	// known, so the novelty cannot reach 1 on two levels alone.
	return float64(newCount) / float64(d.rule.depth)
}

// remember looks key up in the memory and stores it; it reports whether
// the key was there.
func (d *Context) remember(key uint64) bool {
	if key == 0 {
		key = 1
	}
	mask := uint64(len(d.Known) - 1)
	i := key & mask &^ 1
	a, b := &d.Known[i], &d.Known[i+1]
	switch {
	case *a == key || *b == key:
		return true
	case *a == 0:
		*a = key
	case *b == 0:
		*b = key
	default:
		// Both full: the new key replaces the older one, which the slot
		// order records (a is kept as the newer).
		*b, *a = *a, key
	}
	return false
}

// mix64 is a 64-bit finaliser (a bijection with good avalanche).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
