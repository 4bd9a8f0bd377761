package detectors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func intp(v int) *int { return &v }

// contextReading is a reading of metric m at minute i.
func contextReading(i int, v float64) telemetry.Reading {
	return telemetry.Reading{Device: "d", Model: "hp", At: traceStart.Add(time.Duration(i) * time.Minute),
		Fields: []telemetry.Field{{Name: "m", Value: v}}}
}

func contextRuleFor(edit func(r *Rule)) Rule {
	r := Rule{Metric: "m", Detector: DetectorContext, Fault: "m_context", Severity: telemetry.SeverityMinor}
	if edit != nil {
		edit(&r)
	}
	return r
}

// TestContextDecisions: what raises and what does not, on small streams.
func TestContextDecisions(t *testing.T) {
	square := func(i int) float64 { // a square wave between two levels, period 20
		if i%20 < 10 {
			return 0
		}
		return 10
	}
	tests := []struct {
		name   string
		rule   Rule
		n      int
		value  func(i int) float64
		raises []int // readings (0-based) that raise
	}{
		{"a repeating cycle never raises", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1000, square, nil},
		{"a new level raises once", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1000, func(i int) float64 {
			if i >= 600 && i < 605 {
				return 30
			}
			return square(i)
		}, []int{600}},
		// Stairs 0, 5, 10, 5 (levels 0, 1, 2, 1), then straight from 0 to
		// 10 and back: known levels, new transitions.
		{"a new order of known levels raises", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Bins = 2 }), 1000, func(i int) float64 {
			if i >= 600 {
				return float64(i/10%2) * 10
			}
			return []float64{0, 5, 10, 5}[i/10%4]
		}, []int{610}},
		{"rest keeps a second change quiet", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1000, func(i int) float64 {
			switch {
			case i >= 600 && i < 603:
				return 30
			case i >= 700 && i < 703:
				return -30
			}
			return square(i)
		}, []int{600}},
		// The returns to the cycle are new transitions too.
		{"without rest both changes raise, and their ends", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Rest = intp(0) }), 1000, func(i int) float64 {
			switch {
			case i >= 600 && i < 603:
				return 30
			case i >= 700 && i < 703:
				return -30
			}
			return square(i)
		}, []int{600, 603, 700, 703}},
		{"nothing before twice the warm-up", contextRuleFor(func(r *Rule) { r.Warmup = 400 }), 700, func(i int) float64 {
			if i == 650 {
				return 30
			}
			return square(i)
		}, nil},
		// Margin: a square wave between 1 and 10 (bins 4: the width is
		// 2.25), whose low phase dips a little below the warm-up's minimum
		// from reading 600 on (0.09 widths) or further (0.44 widths).
		{"a value just below the warm-up's minimum is a new level", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1000, func(i int) float64 {
			return dipBelow(i, 0.8)
		}, []int{600}},
		{"with margin, a value just below the minimum is the bottom level", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Margin = f64(0.15) }), 1000, func(i int) float64 {
			return dipBelow(i, 0.8)
		}, nil},
		{"with margin, a value further below is a new level", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Margin = f64(0.15) }), 1000, func(i int) float64 {
			return dipBelow(i, 0)
		}, []int{600}},
		// A metric constant for its first 300 readings (a disk idle at 0),
		// then a square wave, then a new level at 700: the range is learnt
		// from the wave, and the judging starts a warm-up after it. (A
		// width learnt from zeros alone is the floor, 1e-15: the wave's top
		// and the new level would both be the farthest level, one level.)
		{"a constant warm-up waits for the metric to vary", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1000, func(i int) float64 {
			switch {
			case i < 300:
				return 0
			case i >= 700 && i < 705:
				return 30
			}
			return square(i)
		}, []int{700}},
		// A quiet warm-up (0 and 1), then from reading 80, before any
		// judging, a sawtooth from 0 to 100: the range is cut again from
		// the sawtooth (levels 25 wide), so a sawtooth point 3 off at 600
		// is in its usual level, while 250 at 800 is a new one. (With the
		// warm-up's width, 0.25, every point 3 off would be a new level.)
		{"a swing wider than the range before judging cuts it again", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1000, func(i int) float64 {
			switch {
			case i < 80:
				return float64(i % 2)
			case i == 600:
				return float64(i%21*5 + 3)
			case i == 800:
				return 250
			}
			return float64(i % 21 * 5)
		}, []int{800}},
		// Recut: a square wave between 0 and 10 (bins 4: width 2.5);
		// at 600, once judging, 40 (three range widths above); at 850, 15
		// (half a range width above); at 1100, 90. With recut 1, 40 raises
		// and cuts the range again (levels 10 wide: the wave's 0 and 10 are
		// levels 0 and 1, 15 is in level 1, 90 a new level); without, 15 is
		// a thin level of its own past the warm-up's and raises too.
		{"once judging, a value farther than recut range widths raises, then cuts the range again", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Recut = f64(1) }), 1300, farThenNear(40), []int{600, 1100}},
		{"without recut a thin level past the range raises", contextRuleFor(func(r *Rule) { r.Warmup = 50 }), 1300, farThenNear(40), []int{600, 850, 1100}},
		// 25 at 600 is 1.5 range widths above: with recut 2 the levels
		// stay, so 15 at 850 is a new level; 90 at 1100 is past 2 widths.
		{"a value within recut range widths keeps the levels", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Recut = f64(2) }), 1300, farThenNear(25), []int{600, 850, 1100}},
		// After the cut the memory fills again for a warm-up: with rest
		// 0, 35 at 620 (a new level of the new cut) does not raise; the
		// judging starts again at 650 (N = 2*warmup), and 25 at 700 (a
		// new level too) raises.
		{"after a recut the judging waits a warm-up", contextRuleFor(func(r *Rule) { r.Warmup = 50; r.Recut = f64(1); r.Rest = intp(0) }), 1000, func(i int) float64 {
			switch i {
			case 600:
				return 40
			case 620:
				return 35
			case 700:
				return 25
			}
			return square(i)
		}, []int{600, 700}},
		{"NaN, infinities and a constant stream", contextRuleFor(func(r *Rule) { r.Warmup = 10 }), 500, func(i int) float64 {
			switch i % 3 {
			case 0:
				return math.NaN()
			case 1:
				return math.Inf(1)
			}
			return 5
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewContext(tt.rule)
			require.NoError(t, err)
			var raises []int
			for i := range tt.n {
				f, ok := d.Observe(contextReading(i, tt.value(i)))
				s := d.Score()
				require.True(t, s >= 0 && s <= 0.75, "reading %d: score %v", i, s)
				if ok && f.State == telemetry.Raised {
					raises = append(raises, i)
					require.GreaterOrEqual(t, s, 0.5)
					require.NotEmpty(t, f.Evidence.Note)
					require.Equal(t, DetectorContext, f.Evidence.Detector)
				}
			}
			require.Equal(t, tt.raises, raises)
			require.True(t, d.consistent())
		})
	}
}

// farThenNear is a square wave between 0 and 10, period 20, with far at
// reading 600, 15 at 850 and 90 at 1100.
func farThenNear(far float64) func(int) float64 {
	return func(i int) float64 {
		switch i {
		case 600:
			return far
		case 850:
			return 15
		case 1100:
			return 90
		}
		if i%20 < 10 {
			return 0
		}
		return 10
	}
}

// dipBelow is a square wave between 1 and 10, period 20, whose low phase
// is low instead of 1 from reading 600 on.
func dipBelow(i int, low float64) float64 {
	switch {
	case i%20 >= 10:
		return 10
	case i >= 600:
		return low
	}
	return 1
}

// TestContextStateBounded: however long and wild the stream, the state
// stays the size the rule sets, and two detectors fed the same stream
// decide the same (deterministic).
func TestContextStateBounded(t *testing.T) {
	r := contextRuleFor(func(r *Rule) { r.Memory, r.Depth, r.Warmup = 64, 5, 20 })
	a, err := NewContext(r)
	require.NoError(t, err)
	b, err := NewContext(r)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(4, 2))
	v, raises := 0.0, 0
	for i := range 50_000 {
		v += rng.NormFloat64()
		if rng.IntN(1000) == 0 {
			v = rng.NormFloat64() * 1e300 // far outside any level
		}
		fa, oka := a.Observe(contextReading(i, v))
		fb, okb := b.Observe(contextReading(i, v))
		require.Equal(t, oka, okb)
		require.Equal(t, fa, fb)
		if oka && fa.State == telemetry.Raised {
			raises++
		}
	}
	require.Len(t, a.Known, 64)
	require.LessOrEqual(t, len(a.Hist), 5)
	require.Positive(t, raises, "a random walk keeps finding new levels")
	require.Less(t, raises, 50_000/200, "rest spaces the raises")
}

// FuzzContextObserve: any sequence of values (NaN, infinities, huge,
// tiny, repeated times) keeps the detector within its bounds.
func FuzzContextObserve(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 240, 127}, uint8(4), uint8(3))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\xf8\x7f0123456789abcdef"), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, bins, depth uint8) {
		r := contextRuleFor(func(r *Rule) {
			r.Bins, r.Depth, r.Warmup, r.Rest, r.Memory = 1+int(bins)%64, 1+int(depth)%maxContextDepth, 2, intp(int(bins)%3), 8
		})
		require.NoError(t, r.Validate())
		d, err := NewContext(r)
		require.NoError(t, err)
		for i := 0; i+8 <= len(raw); i += 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(raw[i:]))
			at := i / 8
			if raw[i]&1 == 1 {
				at-- // sometimes a repeated time
			}
			d.Observe(contextReading(at, v))
			s := d.Score()
			require.True(t, s >= 0 && s <= 0.75, "score %v", s)
			require.True(t, d.consistent())
		}
	})
}

// TestAutoProfileShape: one metric gets a context and an anomaly rule,
// several metrics an anomaly rule each; every profile validates.
func TestAutoProfileShape(t *testing.T) {
	tests := []struct {
		metrics []string
		want    []string // rule name / fault
	}{
		{[]string{"value"}, []string{"value/context value_context", "value/anomaly value_anomaly"}},
		{[]string{"Volume Flow RateRMS", "Current"}, []string{"Volume Flow RateRMS/anomaly volume_flow_raterms_anomaly", "Current/anomaly current_anomaly"}},
		{nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.metrics), func(t *testing.T) {
			p := AutoProfile(tt.metrics)
			require.NoError(t, p.Validate())
			got := []string{}
			for _, r := range p.Rules {
				got = append(got, r.name()+" "+r.Fault)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// BenchmarkContextObserve reports the cost of one reading of the auto
// profile's context rule: ns/op is per reading, with allocations and the
// bytes of state per device and rule.
func BenchmarkContextObserve(b *testing.B) {
	r := AutoProfile([]string{"m"}).Rules[0]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 1000
	ds := make([]*Context, n)
	for i := range ds {
		d, err := NewContext(r)
		if err != nil {
			b.Fatal(err)
		}
		ds[i] = d
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, 4096)
	v := 0.0
	for i := range vals {
		v += rng.NormFloat64()
		vals[i] = v
	}
	fields := []telemetry.Field{{Name: "m"}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		fields[0].Value = vals[i%len(vals)]
		ds[i%n].Observe(telemetry.Reading{Device: "d", Model: "hp", At: traceStart.Add(time.Duration(i) * time.Second), Fields: fields})
		i++
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "state-B/rule")
}

// TestContextMarginRuleKey: a rule without margin keeps the key it had
// before the key existed, so a reload or restore after an upgrade keeps
// its state; setting margin changes the key.
func TestContextMarginRuleKey(t *testing.T) {
	plain := contextRuleFor(nil)
	require.NotContains(t, ruleKey(plain, 0), "Margin")
	withMargin := contextRuleFor(func(r *Rule) { r.Margin = f64(0.15) })
	require.Contains(t, ruleKey(withMargin, 0), `"Margin":0.15`)
	require.NotEqual(t, ruleKey(plain, 0), ruleKey(withMargin, 0))
}

// TestContextRecutRuleKey: like margin, recut unset leaves rule keys as
// they were; setting it changes the key.
func TestContextRecutRuleKey(t *testing.T) {
	plain := contextRuleFor(nil)
	require.NotContains(t, ruleKey(plain, 0), "Recut")
	withRecut := contextRuleFor(func(r *Rule) { r.Recut = f64(1) })
	require.Contains(t, ruleKey(withRecut, 0), `"Recut":1`)
	require.NotEqual(t, ruleKey(plain, 0), ruleKey(withRecut, 0))
}
