package ticketing

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func TestIncidentGrouping(t *testing.T) {
	type dev struct{ id, site, fw string }
	fleet := []dev{{"hp-1", "lyon", "1.4"}, {"hp-2", "lyon", "1.4"}, {"hp-3", "lyon", "1.5"}, {"hp-4", "paris", "1.4"}, {"hp-5", "lyon", "1.4"}}
	tests := []struct {
		name    string
		groupBy []string
		gap     time.Duration // between raises
		raise   []string
		want    map[string]string // device -> "scope=value", "" for no incident
	}{
		{"three at one site make an incident, the fourth joins it", []string{ScopeSite}, time.Minute,
			[]string{"hp-1", "hp-2", "hp-4", "hp-3", "hp-5"},
			map[string]string{"hp-1": "site=lyon", "hp-2": "site=lyon", "hp-3": "site=lyon", "hp-4": "", "hp-5": "site=lyon"}},
		{"too slow for the window", []string{ScopeSite}, 10 * time.Minute,
			[]string{"hp-1", "hp-2", "hp-3"},
			map[string]string{"hp-1": "", "hp-2": "", "hp-3": ""}},
		{"firmware groups same model and firmware across sites", []string{ScopeFirmware}, time.Minute,
			[]string{"hp-1", "hp-4", "hp-3", "hp-2"},
			map[string]string{"hp-1": "firmware=heatpump-a2@1.4", "hp-2": "firmware=heatpump-a2@1.4", "hp-3": "", "hp-4": "firmware=heatpump-a2@1.4"}},
		{"first grouping that reaches the threshold wins", []string{ScopeSite, ScopeModel}, time.Minute,
			[]string{"hp-4", "hp-1", "hp-3"},
			map[string]string{"hp-1": "model=heatpump-a2", "hp-3": "model=heatpump-a2", "hp-4": "model=heatpump-a2"}},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				c := newClock(t0)
				cfg := DefaultTicketsConfig()
				cfg.Incidents = IncidentConfig{MinDevices: 3, Window: 15 * time.Minute, GroupBy: tt.groupBy}
				svc, reg := newServiceWith(t, s, c, cfg)
				ctx := t.Context()
				for _, d := range fleet {
					_, _, err := svc.PutDevice(ctx, Device{ID: d.id, Model: "heatpump-a2", Site: d.site, Firmware: d.fw}, "admin")
					require.NoError(t, err)
				}
				for i, id := range tt.raise {
					if i > 0 {
						c.Advance(tt.gap)
					}
					sev := telemetry.SeverityMinor
					if id == "hp-2" {
						sev = telemetry.SeverityCritical
					}
					require.NoError(t, svc.Handle(ctx, raised(id, "heating_loss", sev, c.Now())))
				}
				incidents, _, err := s.ListIncidents(ctx, IncidentFilter{})
				require.NoError(t, err)
				byID := map[int64]Incident{}
				for _, in := range incidents {
					byID[in.ID] = in
				}
				members := map[int64]int{}
				for dev, want := range tt.want {
					tk := ticketOf(t, s, dev, "heating_loss")
					if want == "" {
						require.Zero(t, tk.IncidentID, "%s is in no incident", dev)
						continue
					}
					in, ok := byID[tk.IncidentID]
					require.True(t, ok, "%s is in an incident", dev)
					require.Equal(t, want, in.Scope+"="+in.ScopeValue, dev)
					members[in.ID]++
				}
				require.Len(t, incidents, len(members), "no empty incidents")
				for _, in := range incidents {
					require.Equal(t, members[in.ID], in.Tickets)
					require.Equal(t, in.Tickets, in.OpenTickets)
				}
				require.Equal(t, float64(len(incidents)), counter(t, reg, "forewarn_incidents_opened_total"))
			})
		}
	}
}

// TestIncidentActions acts on an incident once and checks that its member
// tickets follow, each with its own audit entry.
func TestIncidentActions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		c := newClock(t0)
		cfg := DefaultTicketsConfig()
		cfg.Incidents = IncidentConfig{MinDevices: 3, Window: time.Hour, GroupBy: []string{ScopeSite}}
		svc, _ := newServiceWith(t, s, c, cfg)
		ctx := t.Context()
		for i := range 4 {
			id := fmt.Sprintf("hp-%d", i)
			_, _, err := svc.PutDevice(ctx, Device{ID: id, Model: "heatpump-a2", Site: "lyon"}, "admin")
			require.NoError(t, err)
			require.NoError(t, svc.Handle(ctx, raised(id, "heating_loss", telemetry.SeverityMajor, c.Now())))
		}
		incidents, _, err := s.ListIncidents(ctx, IncidentFilter{Status: StatusOpen})
		require.NoError(t, err)
		require.Len(t, incidents, 1)
		in := incidents[0]
		require.Equal(t, 4, in.Tickets)

		// One member was acknowledged on its own first: the incident's ack skips it.
		_, err = svc.ApplyTicket(ctx, ticketOf(t, s, "hp-0", "heating_loss").ID, Action{Kind: ActAcknowledge, Actor: "bo"})
		require.NoError(t, err)
		_, changed, err := svc.ApplyIncident(ctx, in.ID, Action{Kind: ActAcknowledge, Actor: "ana"})
		require.NoError(t, err)
		require.Len(t, changed, 3)
		_, changed, err = svc.ApplyIncident(ctx, in.ID, Action{Kind: ActAssign, Actor: "ana", Assignee: "field-team"})
		require.NoError(t, err)
		require.Len(t, changed, 4)
		_, _, err = svc.ApplyIncident(ctx, in.ID, Action{Kind: ActSeverity, Actor: "ana", Severity: telemetry.SeverityMinor})
		require.ErrorIs(t, err, ErrInvalidArgument)
		got, changed, err := svc.ApplyIncident(ctx, in.ID, Action{Kind: ActResolve, Actor: "ana", Outcome: OutcomeTrueFault})
		require.NoError(t, err)
		require.Len(t, changed, 4)
		require.Equal(t, StatusResolved, got.Status)
		require.Zero(t, got.OpenTickets)
		for i := range 4 {
			tk := ticketOf(t, s, fmt.Sprintf("hp-%d", i), "heating_loss")
			require.Equal(t, StatusResolved, tk.Status)
			require.Equal(t, "field-team", tk.Assignee)
			require.Equal(t, OutcomeTrueFault, tk.Outcome)
			items, _, err := s.ListAudit(ctx, AuditFilter{TicketID: tk.ID, Actor: "ana"})
			require.NoError(t, err)
			require.NotEmpty(t, items)
			require.Equal(t, in.ID, items[0].IncidentID, "the ticket's audit says it came via the incident")
		}
		_, _, err = svc.ApplyIncident(ctx, in.ID, Action{Kind: ActResolve, Actor: "ana"})
		require.ErrorIs(t, err, ErrConflict)
		_, _, err = svc.ApplyIncident(ctx, 999, Action{Kind: ActAcknowledge, Actor: "ana"})
		require.ErrorIs(t, err, ErrNotFound)

		// Reopening the incident reopens what its resolve closed.
		_, changed, err = svc.ApplyIncident(ctx, in.ID, Action{Kind: ActReopen, Actor: "ana"})
		require.NoError(t, err)
		require.Len(t, changed, 4)
	})
}

// TestIncidentAutoResolves checks that the sweeper resolves an incident
// once all its tickets are resolved.
func TestIncidentAutoResolves(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		c := newClock(t0)
		cfg := DefaultTicketsConfig()
		cfg.ResolveHold = time.Minute
		cfg.Incidents = IncidentConfig{MinDevices: 2, Window: time.Hour, GroupBy: []string{ScopeModel}}
		svc, _ := newServiceWith(t, s, c, cfg)
		ctx := t.Context()
		for _, id := range []string{"hp-1", "hp-2"} {
			require.NoError(t, svc.Handle(ctx, raised(id, "heating_loss", telemetry.SeverityMajor, c.Now())))
		}
		for _, id := range []string{"hp-1", "hp-2"} {
			require.NoError(t, svc.Handle(ctx, cleared(id, "heating_loss", c.Now())))
		}
		c.Advance(time.Minute)
		tickets, incidents, err := svc.Sweep(ctx)
		require.NoError(t, err)
		require.Len(t, tickets, 2)
		require.Len(t, incidents, 1)
		in, err := s.GetIncident(ctx, incidents[0])
		require.NoError(t, err)
		require.Equal(t, StatusResolved, in.Status)
	})
}

// TestConcurrentIncidentGrouping raises the same fault for many devices of
// one site at once, from many goroutines on two Services, each on its own
// SQLStore (its own connection pool) over one database, as two instances
// would: exactly one incident results, and every ticket is in it.
func TestConcurrentIncidentGrouping(t *testing.T) {
	forEachBackend(t, testConcurrentIncidentGrouping)
}

func testConcurrentIncidentGrouping(t *testing.T, dsn string) {
	const (
		devices = 24
		repeats = 3 // raises per device: the 2nd and 3rd land on its open ticket
	)
	stores := []*SQLStore{openDSN(t, dsn), openDSN(t, dsn)}
	cfg := DefaultTicketsConfig()
	cfg.Incidents = IncidentConfig{MinDevices: 3, Window: time.Hour, GroupBy: []string{ScopeSite}}
	var (
		svcs []*Service
		regs []*prometheus.Registry
	)
	for _, s := range stores {
		svc, reg := newServiceWith(t, s, newClock(t0), cfg)
		svcs, regs = append(svcs, svc), append(regs, reg)
	}
	ctx := t.Context()
	for i := range devices {
		_, _, err := svcs[0].PutDevice(ctx, Device{ID: fmt.Sprintf("hp-%d", i), Model: "heatpump-a2", Site: "lyon", Firmware: "1.4"}, "admin")
		require.NoError(t, err)
	}

	var wg sync.WaitGroup
	for i := range devices {
		for r := range repeats {
			svc := svcs[(i+r)%2]
			wg.Go(func() {
				at := t0.Add(time.Duration(r) * time.Second)
				if err := svc.Handle(ctx, raised(fmt.Sprintf("hp-%d", i), "heating_loss", telemetry.SeverityMajor, at)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()

	incidents, _, err := stores[1].ListIncidents(ctx, IncidentFilter{})
	require.NoError(t, err)
	require.Len(t, incidents, 1, "exactly one incident")
	in := incidents[0]
	require.Equal(t, "site=lyon", in.Scope+"="+in.ScopeValue)
	require.Equal(t, devices, in.Tickets)
	require.Equal(t, devices, in.OpenTickets)
	tickets := allTickets(t, stores[0])
	require.Len(t, tickets, devices, "one ticket per device")
	for _, tk := range tickets {
		require.Equal(t, in.ID, tk.IncidentID, "ticket of %s is in the incident", tk.DeviceID)
		require.Equal(t, repeats, tk.RaiseCount)
	}
	var opened, errs float64
	for _, reg := range regs {
		opened += counter(t, reg, "forewarn_incidents_opened_total")
		errs += counter(t, reg, "forewarn_ticket_handle_errors_total")
	}
	require.Equal(t, 1.0, opened, "one Service opened it")
	require.Zero(t, errs)
}
