package ticketing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// auditTrail returns ticket id's audit entries as "actor action from->to".
func auditTrail(t *testing.T, s *SQLStore, f AuditFilter) []string {
	t.Helper()
	f.Limit = MaxLimit
	items, next, err := s.ListAudit(t.Context(), f)
	require.NoError(t, err)
	require.Empty(t, next)
	out := make([]string, len(items))
	for i, e := range items {
		out[i] = fmt.Sprintf("%s %s %s->%s", e.Actor, e.Action, e.From, e.To)
	}
	return out
}

func ticketOf(t *testing.T, s *SQLStore, device, fault string) Ticket {
	t.Helper()
	items, _, err := s.ListTickets(t.Context(), Filter{DeviceID: device, Fault: fault, Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, items, "no ticket for %s/%s", device, fault)
	got, err := s.GetTicket(t.Context(), items[0].ID)
	require.NoError(t, err)
	return got
}

// TestLifecycle drives one (device, fault) through a script of findings,
// clock moves, sweeps and staff actions, and checks where it ends.
func TestLifecycle(t *testing.T) {
	const dev, fault = "hp-1", "heating_loss"
	cfg := DefaultTicketsConfig()
	cfg.ResolveHold = 30 * time.Minute
	cfg.ReopenWindow = 24 * time.Hour

	type step struct {
		raise, clear bool
		sev          telemetry.Severity
		advance      time.Duration
		sweep        bool
		act          *Action
		wantErr      error
	}
	raise := func(sev telemetry.Severity) step { return step{raise: true, sev: sev} }
	clr := step{clear: true}
	wait := func(d time.Duration) step { return step{advance: d} }
	sweep := step{sweep: true}
	act := func(a Action, wantErr error) step { a.Actor = "ana"; return step{act: &a, wantErr: wantErr} }

	tests := []struct {
		name       string
		steps      []step
		tickets    int
		status     Status
		reopens    int
		raises     int
		sev        telemetry.Severity
		trail      []string // audit of the latest ticket
		resolveSet bool     // resolve_after set
		outcome    Outcome
		assignee   string
	}{
		{
			name:    "cleared ticket resolves after the hold",
			steps:   []step{raise(telemetry.SeverityMajor), clr, wait(30 * time.Minute), sweep},
			tickets: 1, status: StatusResolved, raises: 1, sev: telemetry.SeverityMajor,
			trail: []string{"system open ->open", "system status open->resolved"},
		},
		{
			name:    "sweep before the hold ends changes nothing",
			steps:   []step{raise(telemetry.SeverityMajor), clr, wait(29 * time.Minute), sweep},
			tickets: 1, status: StatusOpen, raises: 1, sev: telemetry.SeverityMajor, resolveSet: true,
			trail: []string{"system open ->open"},
		},
		{
			name:    "a raise during the hold cancels the auto-resolve",
			steps:   []step{raise(telemetry.SeverityMajor), clr, wait(20 * time.Minute), raise(telemetry.SeverityMajor), wait(time.Hour), sweep},
			tickets: 1, status: StatusOpen, raises: 2, sev: telemetry.SeverityMajor,
			trail: []string{"system open ->open"},
		},
		{
			name: "a fault back within the reopen window reopens its ticket",
			steps: []step{raise(telemetry.SeverityMinor), clr, wait(30 * time.Minute), sweep,
				wait(23 * time.Hour), raise(telemetry.SeverityMajor)},
			tickets: 1, status: StatusOpen, reopens: 1, raises: 2, sev: telemetry.SeverityMajor,
			trail: []string{"system open ->open", "system status open->resolved", "system status resolved->open", "system severity minor->major"},
		},
		{
			name: "a fault back after the reopen window opens a new ticket",
			steps: []step{raise(telemetry.SeverityMajor), clr, wait(30 * time.Minute), sweep,
				wait(24*time.Hour + time.Second), raise(telemetry.SeverityMajor)},
			tickets: 2, status: StatusOpen, raises: 1, sev: telemetry.SeverityMajor,
			trail: []string{"system open ->open"},
		},
		{
			name:    "severity escalates and is audited",
			steps:   []step{raise(telemetry.SeverityMinor), raise(telemetry.SeverityCritical), raise(telemetry.SeverityMajor)},
			tickets: 1, status: StatusOpen, raises: 3, sev: telemetry.SeverityCritical,
			trail: []string{"system open ->open", "system severity minor->critical"},
		},
		{
			name: "staff acknowledge, assign, comment, resolve with outcome",
			steps: []step{raise(telemetry.SeverityMajor),
				act(Action{Kind: ActAcknowledge}, nil),
				act(Action{Kind: ActAssign, Assignee: "bo"}, nil),
				act(Action{Kind: ActComment, Comment: "called the owner"}, nil),
				act(Action{Kind: ActResolve, Outcome: OutcomeTrueFault}, nil)},
			tickets: 1, status: StatusResolved, raises: 1, sev: telemetry.SeverityMajor, outcome: OutcomeTrueFault, assignee: "bo",
			trail: []string{"system open ->open", "ana status open->acknowledged", "ana assign ->bo", "ana comment ->called the owner",
				"ana status acknowledged->resolved", "ana outcome ->true_fault"},
		},
		{
			name: "staff change severity and reopen, mark outcome later",
			steps: []step{raise(telemetry.SeverityMajor),
				act(Action{Kind: ActSeverity, Severity: telemetry.SeverityMinor}, nil),
				act(Action{Kind: ActResolve}, nil),
				act(Action{Kind: ActOutcome, Outcome: OutcomeFalseAlarm}, nil),
				act(Action{Kind: ActReopen}, nil)},
			tickets: 1, status: StatusOpen, reopens: 1, raises: 1, sev: telemetry.SeverityMinor, outcome: OutcomeFalseAlarm,
			trail: []string{"system open ->open", "ana severity major->minor", "ana due " + "*", "ana status open->resolved",
				"ana outcome ->false_alarm", "ana status resolved->open"},
		},
		{
			name: "actions the state does not allow are conflicts and change nothing",
			steps: []step{raise(telemetry.SeverityMajor),
				act(Action{Kind: ActAcknowledge}, nil),
				act(Action{Kind: ActAcknowledge}, ErrConflict),
				act(Action{Kind: ActReopen}, ErrConflict),
				act(Action{Kind: ActResolve, Outcome: OutcomeCustomerMisuse}, nil),
				act(Action{Kind: ActResolve}, ErrConflict),
				act(Action{Kind: ActAssign, Assignee: "bo"}, ErrConflict),
				act(Action{Kind: ActSeverity, Severity: telemetry.SeverityCritical}, ErrConflict)},
			tickets: 1, status: StatusResolved, raises: 1, sev: telemetry.SeverityMajor, outcome: OutcomeCustomerMisuse,
			trail: []string{"system open ->open", "ana status open->acknowledged", "ana status acknowledged->resolved", "ana outcome ->customer_misuse"},
		},
		{
			name: "bad actions are invalid arguments",
			steps: []step{raise(telemetry.SeverityMajor),
				act(Action{Kind: ActComment, Comment: "   "}, ErrInvalidArgument),
				act(Action{Kind: ActOutcome, Outcome: "maybe"}, ErrInvalidArgument),
				act(Action{Kind: ActSeverity}, ErrInvalidArgument),
				act(Action{Kind: "close"}, ErrInvalidArgument)},
			tickets: 1, status: StatusOpen, raises: 1, sev: telemetry.SeverityMajor,
			trail: []string{"system open ->open"},
		},
		{
			name: "staff reopen of a ticket whose fault has a newer open ticket is a conflict",
			steps: []step{raise(telemetry.SeverityMajor), act(Action{Kind: ActResolve}, nil),
				wait(25 * time.Hour), raise(telemetry.SeverityMajor)},
			tickets: 2, status: StatusOpen, raises: 1, sev: telemetry.SeverityMajor,
			trail: []string{"system open ->open"},
		},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				c := newClock(t0)
				svc, _ := newServiceWith(t, s, c, cfg)
				ctx := t.Context()
				for i, st := range tt.steps {
					c.Advance(time.Second) // every step happens a little later
					switch {
					case st.raise:
						require.NoError(t, svc.Handle(ctx, raised(dev, fault, st.sev, c.Now())), "step %d", i)
					case st.clear:
						require.NoError(t, svc.Handle(ctx, cleared(dev, fault, c.Now())), "step %d", i)
					case st.advance != 0:
						c.Advance(st.advance)
					case st.sweep:
						_, _, err := svc.Sweep(ctx)
						require.NoError(t, err, "step %d", i)
					case st.act != nil:
						_, err := svc.ApplyTicket(ctx, ticketOf(t, s, dev, fault).ID, *st.act)
						if st.wantErr != nil {
							require.ErrorIs(t, err, st.wantErr, "step %d", i)
						} else {
							require.NoError(t, err, "step %d", i)
						}
					}
				}
				all := allTickets(t, s)
				require.Len(t, all, tt.tickets)
				got := ticketOf(t, s, dev, fault)
				require.Equal(t, tt.status, got.Status)
				require.Equal(t, tt.reopens, got.ReopenCount)
				require.Equal(t, tt.raises, got.RaiseCount)
				require.Equal(t, tt.sev, got.Severity)
				require.Equal(t, tt.outcome, got.Outcome)
				require.Equal(t, tt.assignee, got.Assignee)
				require.Equal(t, tt.resolveSet, got.ResolveAfter != nil, "resolve_after")
				require.Equal(t, got.Status == StatusResolved, got.ResolvedAt != nil, "resolved_at iff resolved")
				require.NotNil(t, got.DueAt, "every ticket has an SLA due time")
				trail := auditTrail(t, s, AuditFilter{TicketID: got.ID})
				require.Len(t, trail, len(tt.trail), "%q", trail)
				for i, want := range tt.trail {
					if len(want) > 0 && want[len(want)-1] == '*' {
						require.Contains(t, trail[i], want[:len(want)-1])
						continue
					}
					require.Equal(t, want, trail[i])
				}
				if tt.name == "staff reopen of a ticket whose fault has a newer open ticket is a conflict" {
					_, err := svc.ApplyTicket(ctx, all[1].ID, Action{Kind: ActReopen, Actor: "ana"})
					require.ErrorIs(t, err, ErrConflict, "the unique index refuses a second open ticket")
				}
			})
		}
	}
}

// TestReopenKeepsHistory checks that a reopened ticket keeps its earlier
// timeline and audit, and that a reopen resets what the resolve set.
func TestReopenKeepsHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		c := newClock(t0)
		svc, reg := newServiceWith(t, s, c, DefaultTicketsConfig())
		ctx := t.Context()
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, c.Now())))
		id := ticketOf(t, s, "hp-1", "heating_loss").ID
		_, err := svc.ApplyTicket(ctx, id, Action{Kind: ActResolve, Actor: "ana", Outcome: OutcomeFalseAlarm})
		require.NoError(t, err)
		c.Advance(time.Hour)
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, c.Now())))

		got := ticketOf(t, s, "hp-1", "heating_loss")
		require.Equal(t, id, got.ID, "the same ticket, not a new one")
		require.Equal(t, StatusOpen, got.Status)
		require.Empty(t, got.Outcome, "a reopened ticket's verdict is void")
		require.Nil(t, got.ResolvedAt)
		require.Equal(t, []string{EventRaised, EventRaised}, eventKinds(got.Timeline))
		require.Equal(t, 1.0, counter(t, reg, "forewarn_tickets_reopened_total"))
		require.Equal(t, []string{"system open ->open", "ana status open->resolved", "ana outcome ->false_alarm",
			"system status resolved->open", "system outcome false_alarm->"}, auditTrail(t, s, AuditFilter{TicketID: id}))
	})
}

// TestSLADueTimes checks due = opened + SLA(severity, tier), and that an
// escalation pulls it in.
func TestSLADueTimes(t *testing.T) {
	cfg := DefaultTicketsConfig()
	tests := []struct {
		name   string
		tier   Tier // "" for a device without a customer
		sev    telemetry.Severity
		escal  telemetry.Severity // 0: none
		wantIn time.Duration
	}{
		{"unregistered device is standard", "", telemetry.SeverityMajor, 0, cfg.SLA.Standard.Major},
		{"standard critical", TierStandard, telemetry.SeverityCritical, 0, cfg.SLA.Standard.Critical},
		{"premium critical", TierPremium, telemetry.SeverityCritical, 0, cfg.SLA.Premium.Critical},
		{"premium info", TierPremium, telemetry.SeverityInfo, 0, cfg.SLA.Premium.Info},
		{"standard minor escalated to critical", TierStandard, telemetry.SeverityMinor, telemetry.SeverityCritical, cfg.SLA.Standard.Critical},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				c := newClock(t0)
				svc, _ := newServiceWith(t, s, c, cfg)
				ctx := t.Context()
				if tt.tier != "" {
					_, _, err := svc.PutCustomer(ctx, Customer{ID: "c1", Name: "Ana", Tier: tt.tier}, "admin")
					require.NoError(t, err)
					_, _, err = svc.PutDevice(ctx, Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "c1", Site: "lyon"}, "admin")
					require.NoError(t, err)
				}
				opened := c.Now()
				require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", tt.sev, opened)))
				if tt.escal != 0 {
					c.Advance(10 * time.Minute)
					require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", tt.escal, c.Now())))
				}
				got := ticketOf(t, s, "hp-1", "heating_loss")
				require.NotNil(t, got.DueAt)
				require.Equal(t, opened.Add(tt.wantIn), *got.DueAt)
				if tt.tier != "" {
					require.Equal(t, "c1", got.CustomerID)
					require.Equal(t, "lyon", got.Site)
				}
			})
		}
	}
}

// TestSweeperRun runs the periodic sweeper on a real ticker and checks that
// it resolves a held ticket and returns when its context ends.
func TestSweeperRun(t *testing.T) {
	s := newStore(t)
	c := newClock(t0)
	cfg := DefaultTicketsConfig()
	cfg.SweepInterval = 10 * time.Millisecond
	cfg.ResolveHold = time.Minute
	svc, reg := newServiceWith(t, s, c, cfg)
	require.NoError(t, svc.Handle(t.Context(), raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0), cleared("hp-1", "heating_loss", t0)))
	c.Advance(time.Minute)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	require.Eventually(t, func() bool { return counter(t, reg, "forewarn_tickets_auto_resolved_total") == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.Equal(t, StatusResolved, ticketOf(t, s, "hp-1", "heating_loss").Status)
}
