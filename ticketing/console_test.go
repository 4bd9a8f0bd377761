package ticketing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// consoleFixture opens four tickets: a critical and a minor one on
// heatpumps, a major forecast one (a predicted crossing 48 h after it
// opened) on a water heater, and one staff resolve as a false alarm.
func consoleFixture(t *testing.T, dsn string, now time.Time) (*SQLStore, *Service, map[string]int64) {
	t.Helper()
	store := openDSN(t, dsn)
	svc, _ := newService(t, store, now)
	ctx := t.Context()
	_, _, err := svc.PutCustomer(ctx, Customer{ID: "c1", Name: "Ada"}, "test")
	require.NoError(t, err)
	for _, d := range []Device{
		{ID: "hp-1", Model: "heatpump-a2", Firmware: "1.0", CustomerID: "c1"},
		{ID: "hp-2", Model: "heatpump-a2", Firmware: "1.1"},
		{ID: "wh-1", Model: "waterheater-w1", Firmware: "2.0"},
	} {
		_, _, err := svc.PutDevice(ctx, d, "test")
		require.NoError(t, err)
	}
	require.NoError(t, svc.ObserveStatus(ctx, telemetry.StatusChange{Device: "hp-1", At: now, Online: true}))
	require.NoError(t, svc.ObserveStatus(ctx, telemetry.StatusChange{Device: "hp-2", At: now, Online: false}))

	fc := raised("wh-1", "anode_wear", telemetry.SeverityMajor, now.Add(-time.Hour))
	fc.Model, fc.Rule = "waterheater-w1", "anode/forecast"
	fc.Evidence = telemetry.Evidence{Detector: "forecast", Metric: "anode_pct", Value: 40, Limit: 10, CrossAt: now.Add(47 * time.Hour)}
	require.NoError(t, svc.Handle(ctx,
		raised("hp-1", "overheating", telemetry.SeverityCritical, now.Add(-time.Hour)),
		raised("hp-2", "overheating", telemetry.SeverityMinor, now.Add(-time.Hour)),
		raised("hp-2", "noise", telemetry.SeverityMinor, now.Add(-time.Hour)),
		fc,
	))
	ids := map[string]int64{}
	for _, tk := range allTickets(t, store) {
		ids[tk.DeviceID+"/"+tk.Fault] = tk.ID
	}
	_, err = svc.ApplyTicket(ctx, ids["hp-2/noise"], Action{Kind: ActResolve, Actor: "ana", Outcome: OutcomeFalseAlarm})
	require.NoError(t, err)
	_, err = svc.ApplyTicket(ctx, ids["hp-1/overheating"], Action{Kind: ActAcknowledge, Actor: "ana"})
	require.NoError(t, err)
	return store, svc, ids
}

func TestQueueOrderAndFilters(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, dsn string) {
		store, _, ids := consoleFixture(t, dsn, now)
		for _, tc := range []struct {
			name string
			f    QueueFilter
			want []int64
		}{
			{"not resolved, severest first", QueueFilter{}, []int64{ids["hp-1/overheating"], ids["wh-1/anode_wear"], ids["hp-2/overheating"]}},
			{"status", QueueFilter{Status: StatusResolved}, []int64{ids["hp-2/noise"]}},
			{"severity", QueueFilter{Severity: telemetry.SeverityMinor}, []int64{ids["hp-2/overheating"]}},
			{"fault", QueueFilter{Fault: "anode_wear"}, []int64{ids["wh-1/anode_wear"]}},
			{"model", QueueFilter{Model: "heatpump-a2"}, []int64{ids["hp-1/overheating"], ids["hp-2/overheating"]}},
			{"customer", QueueFilter{CustomerID: "c1"}, []int64{ids["hp-1/overheating"]}},
			{"page 2", QueueFilter{Limit: 2, Offset: 2}, []int64{ids["hp-2/overheating"]}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				items, more, err := store.Queue(t.Context(), tc.f)
				require.NoError(t, err)
				var got []int64
				for _, tk := range items {
					got = append(got, tk.ID)
				}
				require.Equal(t, tc.want, got)
				require.False(t, more)
			})
		}
		_, more, err := store.Queue(t.Context(), QueueFilter{Limit: 2})
		require.NoError(t, err)
		require.True(t, more)
		_, _, err = store.Queue(t.Context(), QueueFilter{Status: "closed"})
		require.ErrorIs(t, err, ErrInvalidArgument)

		c, err := store.CountQueue(t.Context(), QueueFilter{}, now.Add(1000*time.Hour))
		require.NoError(t, err)
		require.Equal(t, 3, c.Total)
		require.Equal(t, 3, c.Overdue, "every SLA has passed 1000 h later")
		require.Equal(t, map[Status]int{StatusOpen: 2, StatusAcknowledged: 1}, c.ByStatus)
		require.Equal(t, 1, c.BySeverity[telemetry.SeverityCritical])
	})
}

func TestFleetAndKPIs(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, dsn string) {
		store, _, _ := consoleFixture(t, dsn, now)
		fl, err := store.FleetSummary(t.Context())
		require.NoError(t, err)
		require.Equal(t, 3, fl.Devices)
		require.Equal(t, 1, fl.Online)
		require.Equal(t, 1, fl.Offline)
		require.Equal(t, 1, fl.Unknown)
		require.Equal(t, 3, fl.OpenTickets)
		require.Equal(t, 3, fl.DevicesWithTickets)
		require.Equal(t, []Bucket{{Key: "overheating", Count: 2}, {Key: "anode_wear", Count: 1}}, fl.OpenByFault)
		require.Equal(t, []Bucket{{Key: "heatpump-a2", Count: 2}, {Key: "waterheater-w1", Count: 1}}, fl.OpenByModel)
		require.Len(t, fl.Firmware, 3)

		k, err := store.ComputeKPIs(t.Context(), now.Add(-24*time.Hour), now.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, 4, k.Opened)
		require.Equal(t, 1, k.Known)
		require.Equal(t, 1, k.Early)
		require.Equal(t, 48*time.Hour, k.LeadTime, "cross_at - opened_at")
		require.Equal(t, 1, k.Acknowledged)
		require.Equal(t, 1, k.Resolved)
		require.Equal(t, 1, k.Judged)
		require.Equal(t, 1, k.FalseAlarms)
		require.Len(t, k.Rules, 2)
		require.Equal(t, RuleKPI{Rule: "supply_temp_c/threshold", Fault: "noise", Tickets: 3, Judged: 1, FalseAlarms: 1}, k.Rules[0])
		require.InDelta(t, 1.0, k.Rules[0].FalseAlarmRate(), 0)
		require.InDelta(t, -1.0, k.Rules[1].FalseAlarmRate(), 0)

		empty, err := store.ComputeKPIs(t.Context(), now.Add(time.Hour), now.Add(2*time.Hour))
		require.NoError(t, err)
		require.Zero(t, empty.Opened)
		_, err = store.ComputeKPIs(t.Context(), now, now)
		require.ErrorIs(t, err, ErrInvalidArgument)

		tok, _, err := store.IssueToken(t.Context(), "ana", RoleAgent, "", "test", now)
		require.NoError(t, err)
		got, err := store.GetToken(t.Context(), tok.ID)
		require.NoError(t, err)
		require.Equal(t, "ana", got.Name)
		_, err = store.GetToken(t.Context(), 9999)
		require.ErrorIs(t, err, ErrNotFound)
	})
}
