package ticketing

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forewarn/forewarn/telemetry"
)

// BenchmarkHandle measures one Finding per Handle call on a SQLite file:
// (SQLite file, and a fresh PostgreSQL database) over 1,000 device keys, a raise onto the open ticket, a clear, a raise, so
// after warm-up the mix is mostly updates, as in steady operation.
func BenchmarkHandle(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) { benchmarkHandle(b, openDSN(b, be.dsn(b))) })
	}
}

func benchmarkHandle(b *testing.B, s *SQLStore) {
	{
		svc := NewService(s, Options{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		const devices = 1000
		fs := make([]telemetry.Finding, 3*devices)
		for i := range fs {
			dev := fmt.Sprintf("hp-%04d", i%devices)
			if i/devices == 1 {
				fs[i] = cleared(dev, "heating_loss", t0)
			} else {
				fs[i] = raised(dev, "heating_loss", telemetry.SeverityMajor, t0)
			}
		}
		ctx := b.Context()
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			f := fs[n%len(fs)]
			f.At = t0.Add(time.Duration(n) * time.Second)
			if err := svc.Handle(ctx, f); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "findings/s")
	}
}
