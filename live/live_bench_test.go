package live

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// BenchmarkLiveObserve measures the sharded engine end to end (split by
// shard, parallel workers, merge) on batches of 500 readings over 10k
// devices, with the profile of profiles() (a threshold and an offline
// rule), for 1 and 2 shards.
func BenchmarkLiveObserve(b *testing.B) {
	for _, shards := range []int{1, 2} {
		b.Run(fmt.Sprintf("shards=%d/devices=10k/batch=500", shards), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Shards, cfg.TickInterval = shards, time.Hour
			e, err := New(Options{Config: cfg, Profiles: profiles(), Handle: func(context.Context, []telemetry.Finding) {}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			<-e.Started()
			const devices, batch = 10_000, 500
			ids := make([]telemetry.DeviceID, devices)
			for i := range ids {
				ids[i] = telemetry.DeviceID(fmt.Sprintf("hp-%05d", i))
			}
			fields := []telemetry.Field{{Name: "t", Value: 50}}
			rs := make([]telemetry.Reading, batch)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for j := range rs {
					d := (n + j) % devices
					rs[j] = telemetry.Reading{Device: ids[d], Model: "hp", At: t0.Add(time.Duration(1+(n+j)/devices) * time.Minute), Fields: fields}
				}
				if err := e.Observe(ctx, rs); err != nil {
					b.Fatal(err)
				}
				n += batch
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
			b.StopTimer()
			cancel()
			<-done
		})
	}
}
