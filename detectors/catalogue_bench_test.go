package detectors

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// BenchmarkEngineObserve8Rules runs a realistic profile, the example rule
// of each of the 8 detectors (threshold, rate, flatline, offline, anomaly
// with a daily season of 48 buckets, forecast, event, usage), over 10k and
// 1M devices, each reading carrying the 6 metrics the rules watch. It
// reports readings/s, allocations per reading (b.ReportAllocs) and the heap
// bytes of detector state per device.
func BenchmarkEngineObserve8Rules(b *testing.B) {
	rules := make([]Rule, 0, 8)
	for _, d := range supportedDetectors {
		if d == DetectorContext {
			continue // measured on its own: BenchmarkContextObserve (docs/performance.md keeps the 8-rule figures)
		}
		rules = append(rules, fileExampleRule(b, d+".go"))
	}
	metrics := []string{"compressor_amps", "filter_dp_pa", "pressure_bar", "room_temp_c", "salt_remaining_pct", "supply_temp_c"}
	base := []float64{8, 120, 1.5, 21, 60, 50}
	rng := rand.New(rand.NewPCG(1, 2))
	const variants = 4096
	fields := make([][]telemetry.Field, variants) // sorted by name, as ingest delivers them
	for i := range fields {
		fs := make([]telemetry.Field, len(metrics))
		for m, name := range metrics {
			fs[m] = telemetry.Field{Name: name, Value: base[m] * (1 + 0.02*rng.NormFloat64())}
		}
		fields[i] = fs
	}
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("rules=8/devices=%s", map[int]string{10_000: "10k", 1_000_000: "1M"}[n]), func(b *testing.B) {
			e, err := NewEngine(map[string]Profile{"heatpump-a2": {Rules: rules}})
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]telemetry.DeviceID, n)
			for d := range ids {
				ids[d] = telemetry.DeviceID(fmt.Sprintf("hp-%07d", d))
			}
			start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for d, id := range ids { // create every device's state before timing
				e.Observe(telemetry.Reading{Device: id, Model: "heatpump-a2", At: start, Fields: fields[d%variants]})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perDevice := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			b.ReportAllocs()
			i, findings := 0, 0
			for b.Loop() {
				d := i % n
				r := telemetry.Reading{Device: ids[d], Model: "heatpump-a2",
					At: start.Add(time.Duration(1+i/n) * time.Minute), Fields: fields[(i*7+d)%variants]}
				findings += len(e.Observe(r))
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(perDevice, "state-B/device")
			b.ReportMetric(float64(findings)/float64(b.N), "findings/reading")
		})
	}
}
