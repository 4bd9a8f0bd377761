package notify_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/webhook"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// BenchmarkDispatch delivers outbox rows from SQLite or PostgreSQL to a loopback webhook
// receiver (signature made, not checked) and reports notifications/s: the
// claim, render, POST and completion of each row.
func BenchmarkDispatch(b *testing.B) {
	for _, bc := range []struct {
		backend string
		workers int
	}{{"sqlite", 1}, {"sqlite", 4}, {"postgres", 1}, {"postgres", 4}} {
		workers := bc.workers
		b.Run(fmt.Sprintf("%s/workers=%d", bc.backend, workers), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			defer srv.Close()
			dsn := "sqlite:" + filepath.Join(b.TempDir(), "t.db")
			if bc.backend == "postgres" {
				if testing.Short() {
					b.Skip("postgres: a real server; runs without -short")
				}
				dsn = testenv.Postgres(b)
			}
			store, err := ticketing.Open(b.Context(), ticketing.Config{DSN: dsn})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			tc := ticketing.DefaultTicketsConfig()
			tc.Incidents.MinDevices = 0
			svc := ticketing.NewService(store, ticketing.Options{Tickets: tc})
			if _, _, err := svc.PutCustomer(b.Context(), ticketing.Customer{ID: "c1", Channels: []ticketing.Channel{{Type: "webhook", URL: srv.URL, Secret: secret}}}, "b"); err != nil {
				b.Fatal(err)
			}
			if _, _, err := svc.PutDevice(b.Context(), ticketing.Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "c1"}, "b"); err != nil {
				b.Fatal(err)
			}
			cfg := notify.DefaultConfig()
			cfg.GroupWait, cfg.Workers, cfg.BatchSize, cfg.TierRules.Standard.DailyCap = 0, workers, 64, 0
			d, err := notify.New(notify.Options{Config: cfg, Outbox: store, Senders: map[string]notify.Sender{"webhook": webhook.New(srv.Client(), nil)}})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			delivered := 0
			i := 0
			for b.Loop() {
				b.StopTimer()
				for range 64 {
					i++
					if err := svc.Handle(b.Context(), telemetry.Finding{Device: "hp-1", Model: "heatpump-a2", Fault: fmt.Sprintf("f%d", i), Rule: "r",
						State: telemetry.Raised, Severity: telemetry.SeverityMajor, CustomerVisible: true, At: time.Now(),
						Evidence: telemetry.Evidence{Detector: "threshold"}}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for {
					n, err := d.RunOnce(b.Context())
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						break
					}
					delivered += n
				}
			}
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}
