package ticketing

import (
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/telemetry"
)

// t0 has nanoseconds on purpose: times must round-trip exactly.
var t0 = time.Date(2026, 11, 22, 15, 30, 0, 123456789, time.UTC)

// A backend is a database the store suite runs on: every test that takes
// one runs on SQLite in a temporary directory and on a fresh database of
// the machine's PostgreSQL server (skipped under -short: it is a real
// service, STYLE section 10).
type backend struct {
	name string
	dsn  func(tb testing.TB) string // a fresh, empty database
}

var backends = []backend{
	{name: "sqlite", dsn: func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "tickets.db") }},
	{name: "postgres", dsn: func(tb testing.TB) string {
		if testing.Short() {
			tb.Skip("postgres: a real server; runs without -short")
		}
		return testenv.Postgres(tb)
	}},
}

// forEachBackend runs fn as a subtest per backend, each with a fresh DSN.
func forEachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.dsn(t)) })
	}
}

// openDSN opens a store on dsn and closes it when the test ends.
func openDSN(tb testing.TB, dsn string) *SQLStore {
	tb.Helper()
	s, err := Open(tb.Context(), Config{DSN: dsn})
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// openStore opens the SQLite store at path and closes it when the test ends.
func openStore(tb testing.TB, path string) *SQLStore {
	tb.Helper()
	return openDSN(tb, "sqlite:"+path)
}

// newStore opens a store on a fresh SQLite file in a temporary directory.
func newStore(tb testing.TB) *SQLStore {
	tb.Helper()
	return openStore(tb, filepath.Join(tb.TempDir(), "tickets.db"))
}

// exec runs a statement written with ? placeholders on either backend.
func exec(tb testing.TB, s *SQLStore, q string, args ...any) error {
	tb.Helper()
	_, err := s.db.ExecContext(tb.Context(), rebind(s.pg, q), args...)
	return err
}

// clock is a settable wall clock for Services under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newService returns a Service on store that logs to the test's output,
// with its metrics in a fresh registry, and a clock fixed at now.
func newService(t *testing.T, store *SQLStore, now time.Time) (*Service, *prometheus.Registry) {
	t.Helper()
	return newServiceWith(t, store, newClock(now), DefaultTicketsConfig())
}

// newServiceWith returns a Service with lifecycle cfg and clock c.
func newServiceWith(t *testing.T, store *SQLStore, c *clock, cfg TicketsConfig) (*Service, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewService(store, Options{Tickets: cfg, Logger: log, Registerer: reg, Now: c.Now}), reg
}

// counter returns the value of the counter name in reg, 0 when absent.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	return 0
}

func raised(device, fault string, sev telemetry.Severity, at time.Time) telemetry.Finding {
	return telemetry.Finding{
		Device:          telemetry.DeviceID(device),
		Model:           "heatpump-a2",
		Fault:           fault,
		Rule:            "supply_temp_c/threshold",
		State:           telemetry.Raised,
		Severity:        sev,
		CustomerVisible: true,
		Remedy:          "Check refrigerant pressure.",
		At:              at,
		Evidence: telemetry.Evidence{
			Detector: "threshold", Metric: "supply_temp_c", Value: 19.5, Limit: 18, Op: "above",
			For: "10m0s", Since: at.Add(-10 * time.Minute), Samples: 10,
		},
	}
}

func cleared(device, fault string, at time.Time) telemetry.Finding {
	return telemetry.Finding{
		Device:   telemetry.DeviceID(device),
		Model:    "heatpump-a2",
		Fault:    fault,
		Rule:     "supply_temp_c/threshold",
		State:    telemetry.Cleared,
		Severity: telemetry.SeverityMajor,
		At:       at,
		Evidence: telemetry.Evidence{Detector: "threshold", Metric: "supply_temp_c", Value: 15.2, Limit: 16, Op: "below"},
	}
}

// allTickets lists every ticket, newest first.
func allTickets(t *testing.T, s *SQLStore) []Ticket {
	t.Helper()
	items, next, err := s.ListTickets(t.Context(), Filter{Limit: MaxLimit})
	require.NoError(t, err)
	require.Empty(t, next)
	return items
}

func eventKinds(evs []Event) []string {
	kinds := make([]string, len(evs))
	for i, e := range evs {
		kinds[i] = e.Kind
	}
	return kinds
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// counterVec returns the value of name{result=label} in reg.
func counterVec(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
