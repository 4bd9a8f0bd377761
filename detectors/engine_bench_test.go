package detectors

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// benchMetrics is how many fields each benchmark reading carries.
const benchMetrics = 16

// benchProfile has n threshold rules spread over the benchmark metrics,
// alternately above and below rules with hysteresis and durations. The
// benchmark's values are normal around 50 (sd 12), so, as in real traffic,
// few readings decide a finding.
func benchProfile(n int) Profile {
	p := Profile{Rules: make([]Rule, n)}
	for i := range p.Rules {
		r := Rule{
			Name:     fmt.Sprintf("rule_%d", i),
			Metric:   fmt.Sprintf("m%02d", i%benchMetrics),
			Detector: "threshold",
			For:      time.Duration(i%3) * time.Minute,
			Fault:    fmt.Sprintf("fault_%d", i),
			Severity: telemetry.SeverityMinor,
		}
		if i%2 == 0 {
			r.Above, r.ClearBelow = f64(90), f64(80)
		} else {
			r.Below, r.ClearAbove = f64(10), f64(20)
		}
		p.Rules[i] = r
	}
	return p
}

func BenchmarkEngineObserve(b *testing.B) {
	for _, sc := range []struct{ rules, devices int }{
		{1, 1000},
		{10, 10000},
		{100, 10000},
	} {
		b.Run(fmt.Sprintf("rules=%d/devices=%d", sc.rules, sc.devices), func(b *testing.B) {
			e, err := NewEngine(map[string]Profile{"bench-model": benchProfile(sc.rules)})
			if err != nil {
				b.Fatal(err)
			}
			// A pool of rounds readings per device, device after device each
			// minute; pass k of the pool is shifted k*rounds minutes later, so
			// every device's readings stay in event-time order.
			const rounds = 8
			rng := rand.New(rand.NewPCG(1, 2))
			start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
			pool := make([]telemetry.Reading, 0, rounds*sc.devices)
			for round := range rounds {
				for d := range sc.devices {
					fs := make([]telemetry.Field, benchMetrics)
					for m := range fs {
						fs[m] = telemetry.Field{Name: fmt.Sprintf("m%02d", m), Value: 50 + 12*rng.NormFloat64()}
					}
					pool = append(pool, telemetry.Reading{
						Device: telemetry.DeviceID(fmt.Sprintf("dev-%05d", d)),
						Model:  "bench-model",
						At:     start.Add(time.Duration(round) * time.Minute),
						Fields: fs,
					})
				}
			}
			for _, r := range pool { // create every device's state before timing
				e.Observe(r)
			}
			b.ReportAllocs()
			i, findings := 0, 0
			for b.Loop() {
				r := pool[i%len(pool)]
				r.At = r.At.Add(time.Duration(1+i/len(pool)) * rounds * time.Minute)
				findings += len(e.Observe(r))
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(findings)/float64(b.N), "findings/reading")
		})
	}
}
