package notify_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/notifytest"
	"github.com/forewarn/forewarn/notify/webhook"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// TestDispatchersSharePostgresIntegration runs three dispatchers, each on
// its own store (as three instances would), on one PostgreSQL database:
// every notification reaches the receiver exactly once.
func TestDispatchersSharePostgresIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL")
	}
	const rows = 60
	dsn := testenv.Postgres(t)
	hook := notifytest.NewReceiver(t, secret)
	hook.SetDelay(5 * time.Millisecond)
	open := func() *ticketing.SQLStore {
		s, err := ticketing.Open(t.Context(), ticketing.Config{DSN: dsn})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	store := open()
	tc := ticketing.DefaultTicketsConfig()
	tc.Incidents.MinDevices = 0
	svc := ticketing.NewService(store, ticketing.Options{Tickets: tc})
	_, _, err := svc.PutCustomer(t.Context(), ticketing.Customer{ID: "c1", Channels: []ticketing.Channel{{Type: "webhook", URL: hook.URL, Secret: secret}}}, "t")
	require.NoError(t, err)
	for i := range rows {
		dev := fmt.Sprintf("pg-%02d", i)
		_, _, err := svc.PutDevice(t.Context(), ticketing.Device{ID: dev, Model: "heatpump-a2", CustomerID: "c1"}, "t")
		require.NoError(t, err)
		require.NoError(t, svc.Handle(t.Context(), telemetry.Finding{Device: telemetry.DeviceID(dev), Fault: "overheating", Rule: "r",
			State: telemetry.Raised, Severity: telemetry.SeverityMajor, CustomerVisible: true, At: time.Now(), Evidence: telemetry.Evidence{Detector: "threshold"}}))
	}
	cfg := notify.DefaultConfig()
	cfg.GroupWait, cfg.BatchSize, cfg.Workers, cfg.TierRules.Standard.DailyCap = 0, 5, 2, 0
	var wg sync.WaitGroup
	for i := range 3 {
		d, err := notify.New(notify.Options{Config: cfg, Outbox: open(), Registerer: prometheus.NewRegistry(),
			Senders: map[string]notify.Sender{"webhook": webhook.New(nil, nil)}})
		require.NoError(t, err)
		wg.Go(func() {
			for {
				n, err := d.RunOnce(t.Context())
				if err != nil {
					t.Errorf("dispatcher %d: %v", i, err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	keys := hook.Keys()
	require.Len(t, keys, rows)
	for k, n := range keys {
		require.Equal(t, 1, n, "%s delivered %d times", k, n)
	}
	delivered, _, err := store.ListNotifications(t.Context(), ticketing.NotificationFilter{Status: ticketing.NotifyDelivered, Limit: 500})
	require.NoError(t, err)
	require.Len(t, delivered, rows)
}
