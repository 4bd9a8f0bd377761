package ticketing

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func TestHandle(t *testing.T) {
	const (
		dev   = "hp-1"
		fault = "heating_loss"
	)
	var (
		minor    = telemetry.SeverityMinor
		major    = telemetry.SeverityMajor
		critical = telemetry.SeverityCritical
		t1       = t0.Add(time.Minute)
		t2       = t0.Add(2 * time.Minute)
	)
	type want struct {
		tickets    int // tickets in the store
		raiseCount int // of the newest ticket
		severity   telemetry.Severity
		lastRaised time.Time
		clearedAt  *time.Time
		kinds      []string
		eventSevs  []telemetry.Severity
		metrics    map[string]float64
	}
	tests := []struct {
		name     string
		findings []telemetry.Finding
		want     want
	}{
		{
			name:     "raise opens a ticket",
			findings: []telemetry.Finding{raised(dev, fault, major, t0)},
			want: want{tickets: 1, raiseCount: 1, severity: major, lastRaised: t0,
				kinds: []string{EventRaised}, eventSevs: []telemetry.Severity{major},
				metrics: map[string]float64{"forewarn_tickets_opened_total": 1, "forewarn_ticket_raises_total": 0}},
		},
		{
			name:     "second raise adds to the same ticket",
			findings: []telemetry.Finding{raised(dev, fault, major, t0), raised(dev, fault, major, t1)},
			want: want{tickets: 1, raiseCount: 2, severity: major, lastRaised: t1,
				kinds: []string{EventRaised, EventRaised}, eventSevs: []telemetry.Severity{major, major},
				metrics: map[string]float64{"forewarn_tickets_opened_total": 1, "forewarn_ticket_raises_total": 1}},
		},
		{
			name:     "clear keeps the ticket open",
			findings: []telemetry.Finding{raised(dev, fault, major, t0), cleared(dev, fault, t1)},
			want: want{tickets: 1, raiseCount: 1, severity: major, lastRaised: t0, clearedAt: &t1,
				kinds: []string{EventRaised, EventCleared}, eventSevs: []telemetry.Severity{major, major},
				metrics: map[string]float64{"forewarn_tickets_opened_total": 1, "forewarn_ticket_clears_total": 1}},
		},
		{
			name:     "raise after clear reuses the ticket and forgets the clear",
			findings: []telemetry.Finding{raised(dev, fault, major, t0), cleared(dev, fault, t1), raised(dev, fault, major, t2)},
			want: want{tickets: 1, raiseCount: 2, severity: major, lastRaised: t2,
				kinds: []string{EventRaised, EventCleared, EventRaised}, eventSevs: []telemetry.Severity{major, major, major},
				metrics: map[string]float64{"forewarn_tickets_opened_total": 1, "forewarn_ticket_raises_total": 1, "forewarn_ticket_clears_total": 1}},
		},
		{
			name:     "severity escalates",
			findings: []telemetry.Finding{raised(dev, fault, minor, t0), raised(dev, fault, critical, t1)},
			want: want{tickets: 1, raiseCount: 2, severity: critical, lastRaised: t1,
				kinds: []string{EventRaised, EventRaised}, eventSevs: []telemetry.Severity{minor, critical}},
		},
		{
			name:     "severity never goes down",
			findings: []telemetry.Finding{raised(dev, fault, critical, t0), raised(dev, fault, minor, t1)},
			want: want{tickets: 1, raiseCount: 2, severity: critical, lastRaised: t1,
				kinds: []string{EventRaised, EventRaised}, eventSevs: []telemetry.Severity{critical, minor}},
		},
		{
			name:     "clear without severity keeps the ticket's on its event",
			findings: []telemetry.Finding{raised(dev, fault, critical, t0), func() telemetry.Finding { f := cleared(dev, fault, t1); f.Severity = 0; return f }()},
			want: want{tickets: 1, raiseCount: 1, severity: critical, lastRaised: t0, clearedAt: &t1,
				kinds: []string{EventRaised, EventCleared}, eventSevs: []telemetry.Severity{critical, critical}},
		},
		{
			name:     "unmatched clear is ignored",
			findings: []telemetry.Finding{cleared(dev, fault, t0)},
			want: want{tickets: 0,
				metrics: map[string]float64{"forewarn_ticket_clears_total": 0, "forewarn_ticket_unmatched_clears_total": 1}},
		},
		{
			name:     "clear of another fault does not touch the ticket",
			findings: []telemetry.Finding{raised(dev, fault, major, t0), cleared(dev, "filter_clogging", t1), cleared("hp-2", fault, t1)},
			want: want{tickets: 1, raiseCount: 1, severity: major, lastRaised: t0,
				kinds: []string{EventRaised}, eventSevs: []telemetry.Severity{major},
				metrics: map[string]float64{"forewarn_ticket_unmatched_clears_total": 2}},
		},
		{
			name: "each device and fault gets its own ticket",
			findings: []telemetry.Finding{
				raised(dev, fault, major, t0), raised(dev, "filter_clogging", minor, t1), raised("hp-2", fault, critical, t2),
			},
			want: want{tickets: 3, raiseCount: 1, severity: critical, lastRaised: t2,
				kinds: []string{EventRaised}, eventSevs: []telemetry.Severity{critical},
				metrics: map[string]float64{"forewarn_tickets_opened_total": 3}},
		},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				now := time.Date(2026, 11, 22, 18, 0, 0, 42, time.UTC)
				s := openDSN(t, b.dsn(t))
				svc, reg := newService(t, s, now)
				require.NoError(t, svc.Handle(t.Context(), tt.findings...))

				tickets := allTickets(t, s)
				require.Len(t, tickets, tt.want.tickets)
				for name, v := range tt.want.metrics {
					require.Equal(t, v, counter(t, reg, name), name)
				}
				require.Zero(t, counter(t, reg, "forewarn_ticket_handle_errors_total"))
				if tt.want.tickets == 0 {
					return
				}

				got, err := s.GetTicket(t.Context(), tickets[0].ID)
				require.NoError(t, err)
				first := tt.findings[len(tt.findings)-1]
				if tt.want.tickets == 1 {
					first = tt.findings[0]
				}
				require.Equal(t, string(first.Device), got.DeviceID)
				require.Equal(t, first.Fault, got.Fault)
				require.Equal(t, first.Model, got.Model)
				require.Equal(t, first.Rule, got.Rule)
				require.Equal(t, first.Remedy, got.Remedy)
				require.Equal(t, first.CustomerVisible, got.CustomerVisible)
				require.Equal(t, first.At, got.OpenedAt, "opened at the first raise's event time")
				require.Equal(t, now, got.UpdatedAt)
				require.Equal(t, StatusOpen, got.Status)
				require.Equal(t, tt.want.raiseCount, got.RaiseCount)
				require.Equal(t, tt.want.severity, got.Severity)
				require.Equal(t, tt.want.lastRaised, got.LastRaisedAt)
				require.Equal(t, tt.want.clearedAt, got.ClearedAt)
				require.Equal(t, tt.want.kinds, eventKinds(got.Timeline))
				sevs := make([]telemetry.Severity, len(got.Timeline))
				for i, e := range got.Timeline {
					sevs[i] = e.Severity
				}
				require.Equal(t, tt.want.eventSevs, sevs)

				var lastRaise telemetry.Finding
				for _, f := range tt.findings {
					if f.State == telemetry.Raised && f.Key() == got.DeviceID+"/"+got.Fault {
						lastRaise = f
					}
				}
				require.Equal(t, lastRaise.Evidence, got.Evidence, "the latest raise's evidence")
			})
		}
	}
}

func TestHandleInvalidFinding(t *testing.T) {
	good := raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0)
	tests := []struct {
		name   string
		mutate func(*telemetry.Finding)
	}{
		{"empty device", func(f *telemetry.Finding) { f.Device = "" }},
		{"device outside the contract", func(f *telemetry.Finding) { f.Device = "hp 1/x" }},
		{"empty fault", func(f *telemetry.Finding) { f.Fault = "" }},
		{"unknown state", func(f *telemetry.Finding) { f.State = 0 }},
		{"raise without severity", func(f *telemetry.Finding) { f.Severity = 0 }},
		{"no event time", func(f *telemetry.Finding) { f.At = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			svc, reg := newService(t, s, t0)
			bad := good
			bad.Device = "hp-2" // a key of its own, so the good finding is told apart
			tt.mutate(&bad)

			err := svc.Handle(t.Context(), bad, good)
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.Equal(t, 1.0, counter(t, reg, "forewarn_ticket_handle_errors_total"))
			tickets := allTickets(t, s)
			require.Len(t, tickets, 1, "a bad finding does not stop the rest")
			require.Equal(t, "hp-1", tickets[0].DeviceID)
		})
	}
}

func TestHandleCanceledContext(t *testing.T) {
	s := newStore(t)
	svc, reg := newService(t, s, t0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0), raised("hp-2", "heating_loss", telemetry.SeverityMajor, t0))
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "2 of 2 not handled")
	require.Equal(t, 2.0, counter(t, reg, "forewarn_ticket_handle_errors_total"))
	require.Empty(t, allTickets(t, s))
}

func TestServicesShareRegisterer(t *testing.T) {
	s := newStore(t)
	reg := prometheus.NewRegistry()
	a := NewService(s, Options{Registerer: reg})
	b := NewService(s, Options{Registerer: reg}) // must not panic on duplicate registration
	require.NoError(t, a.Handle(t.Context(), raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0)))
	require.NoError(t, b.Handle(t.Context(), raised("hp-2", "heating_loss", telemetry.SeverityMajor, t0)))
	require.Equal(t, 2.0, counter(t, reg, "forewarn_tickets_opened_total"))
	require.NotPanics(t, func() { NewService(s, Options{}) })
}

// TestConcurrentRaisesOneTicket races two Services, each on its own SQLStore
// (its own connection pool) over one file, as two instances would.
func TestConcurrentRaisesOneTicket(t *testing.T) {
	forEachBackend(t, testConcurrentRaisesOneTicket)
}

func testConcurrentRaisesOneTicket(t *testing.T, dsn string) {
	const (
		goroutines = 8 // per store
		raises     = 25
		total      = 2 * goroutines * raises
	)
	stores := []*SQLStore{openDSN(t, dsn), openDSN(t, dsn)}
	var (
		svcs []*Service
		regs []*prometheus.Registry
	)
	for _, s := range stores {
		svc, reg := newService(t, s, t0)
		svcs, regs = append(svcs, svc), append(regs, reg)
	}

	var wg sync.WaitGroup
	for i := range 2 * goroutines {
		svc := svcs[i%2]
		wg.Go(func() {
			for j := range raises {
				at := t0.Add(time.Duration(i*raises+j) * time.Millisecond)
				if err := svc.Handle(t.Context(), raised("hp-1", "heating_loss", telemetry.SeverityMajor, at)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	for _, s := range stores {
		tickets := allTickets(t, s)
		require.Len(t, tickets, 1, "exactly one ticket")
		require.Equal(t, StatusOpen, tickets[0].Status)
		require.Equal(t, total, tickets[0].RaiseCount)
		got, err := s.GetTicket(t.Context(), tickets[0].ID)
		require.NoError(t, err)
		require.Len(t, got.Timeline, total)
	}
	var opened, raisedAgain, errs float64
	for _, reg := range regs {
		opened += counter(t, reg, "forewarn_tickets_opened_total")
		raisedAgain += counter(t, reg, "forewarn_ticket_raises_total")
		errs += counter(t, reg, "forewarn_ticket_handle_errors_total")
	}
	require.Equal(t, 1.0, opened)
	require.Equal(t, float64(total-1), raisedAgain)
	require.Zero(t, errs)
}

// TestRaiseLosesInsertRace makes another writer open the ticket in the
// window between a raise finding no open ticket and inserting its own: the
// unique index refuses the insert, and the raise lands on the winner's
// ticket.
func TestRaiseLosesInsertRace(t *testing.T) {
	forEachBackend(t, testRaiseLosesInsertRace)
}

func testRaiseLosesInsertRace(t *testing.T, dsn string) {
	loser, winner := openDSN(t, dsn), openDSN(t, dsn)
	loserSvc, loserReg := newService(t, loser, t0)
	winnerSvc, winnerReg := newService(t, winner, t0)

	hooked := 0
	loser.beforeInsert = func() {
		hooked++
		if hooked == 1 {
			require.NoError(t, winnerSvc.Handle(t.Context(), raised("hp-1", "heating_loss", telemetry.SeverityMinor, t0)))
		}
	}
	require.NoError(t, loserSvc.Handle(t.Context(), raised("hp-1", "heating_loss", telemetry.SeverityCritical, t0.Add(time.Second))))
	require.Equal(t, 1, hooked, "the retry found the winner's ticket and did not try to insert again")

	tickets := allTickets(t, loser)
	require.Len(t, tickets, 1)
	require.Equal(t, 2, tickets[0].RaiseCount)
	require.Equal(t, telemetry.SeverityCritical, tickets[0].Severity)
	require.Equal(t, 1.0, counter(t, winnerReg, "forewarn_tickets_opened_total"))
	require.Equal(t, 0.0, counter(t, loserReg, "forewarn_tickets_opened_total"))
	require.Equal(t, 1.0, counter(t, loserReg, "forewarn_ticket_raises_total"))
}

func ExampleService_Handle() {
	// Error handling is left out for brevity.
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "forewarn-example")
	defer os.RemoveAll(dir)
	store, _ := Open(ctx, Config{DSN: "sqlite:" + filepath.Join(dir, "forewarn.db")})
	defer store.Close()
	svc := NewService(store, Options{Registerer: prometheus.NewRegistry()})

	at := time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC)
	f := telemetry.Finding{
		Device: "hp-1", Fault: "heating_loss", Rule: "supply_temp_c/threshold",
		State: telemetry.Raised, Severity: telemetry.SeverityMajor, At: at,
		Evidence: telemetry.Evidence{Detector: "threshold", Metric: "supply_temp_c", Value: 19.5, Limit: 18, Op: "above"},
	}
	_ = svc.Handle(ctx, f)
	f.At = at.Add(10 * time.Minute)
	_ = svc.Handle(ctx, f)

	items, _, _ := store.ListTickets(ctx, Filter{Status: StatusOpen})
	for _, tk := range items {
		fmt.Println(tk.DeviceID, tk.Fault, tk.Severity, tk.Status, tk.RaiseCount)
	}
	// Output: hp-1 heating_loss major open 2
}
