package ticketing

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// ownedDevice registers customer c1 and device dev owned by it.
func ownedDevice(t *testing.T, svc *Service, customer, dev string) {
	t.Helper()
	_, _, err := svc.PutCustomer(t.Context(), Customer{ID: customer, Name: "Ana"}, "admin")
	if err != nil {
		require.ErrorIs(t, err, ErrConflict) // already there
	}
	_, _, err = svc.PutDevice(t.Context(), Device{ID: dev, Model: "heatpump-a2", CustomerID: customer}, "admin")
	require.NoError(t, err)
}

func events(ns []Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[len(ns)-1-i] = n.Event + "/" + n.Audience // oldest first
	}
	return out
}

// TestOutboxRowsInTicketTransaction: each ticket change that concerns the
// customer writes its outbox row with the change; others write none.
func TestOutboxRowsInTicketTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openDSN(t, dsn)
		c := newClock(t0)
		svc, _ := newServiceWith(t, s, c, DefaultTicketsConfig())
		ownedDevice(t, svc, "c1", "hp-1")

		// Customer-visible, owned: a customer row.
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0)))
		// Not customer-visible: none.
		hidden := raised("hp-1", "sensor_drift", telemetry.SeverityMinor, t0)
		hidden.CustomerVisible = false
		require.NoError(t, svc.Handle(ctx, hidden))
		// No owner: none, but critical: a staff row.
		require.NoError(t, svc.Handle(ctx, raised("orphan-1", "overheating", telemetry.SeverityCritical, t0)))
		// A raise on the open ticket: none.
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0.Add(time.Minute))))

		ns, next, err := s.ListNotifications(ctx, NotificationFilter{})
		require.NoError(t, err)
		require.Empty(t, next)
		require.Equal(t, []string{"ticket.opened/customer", "staff.ticket_critical/staff"}, events(ns))
		opened := ns[1]
		require.Equal(t, "c1", opened.CustomerID)
		require.Equal(t, NotifyPending, opened.Status)
		require.Equal(t, IdempotencyKey(opened.ID), opened.IdempotencyKey)
		require.Empty(t, opened.Attempts)

		// Staff acknowledges and resolves: a row each, for the customer.
		_, err = svc.ApplyTicket(ctx, opened.TicketID, Action{Kind: ActAcknowledge, Actor: "bo"})
		require.NoError(t, err)
		_, err = svc.ApplyTicket(ctx, opened.TicketID, Action{Kind: ActResolve, Actor: "bo"})
		require.NoError(t, err)
		ns, _, err = s.ListNotifications(ctx, NotificationFilter{TicketID: opened.TicketID})
		require.NoError(t, err)
		require.Equal(t, []string{"ticket.opened/customer", "ticket.acknowledged/customer", "ticket.resolved/customer"}, events(ns))

		// The sweep's auto-resolve also tells the customer.
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "low_pressure", telemetry.SeverityMinor, t0)))
		require.NoError(t, svc.Handle(ctx, cleared("hp-1", "low_pressure", t0.Add(time.Minute))))
		c.Advance(time.Hour)
		resolved, _, err := svc.Sweep(ctx)
		require.NoError(t, err)
		require.Len(t, resolved, 1)
		ns, _, err = s.ListNotifications(ctx, NotificationFilter{TicketID: resolved[0]})
		require.NoError(t, err)
		require.Equal(t, []string{"ticket.opened/customer", "ticket.resolved/customer"}, events(ns))

		// Filters.
		ns, _, err = s.ListNotifications(ctx, NotificationFilter{CustomerID: "c1", Status: NotifyPending, Limit: 2})
		require.NoError(t, err)
		require.Len(t, ns, 2)
		_, _, err = s.ListNotifications(ctx, NotificationFilter{Status: "lost"})
		require.ErrorIs(t, err, ErrInvalidArgument)
	})
}

// TestOutboxIncidentStaffRow: a new incident writes one staff row.
func TestOutboxIncidentStaffRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openDSN(t, dsn)
		cfg := DefaultTicketsConfig()
		cfg.Incidents.MinDevices = 2
		svc, _ := newServiceWith(t, s, newClock(t0), cfg)
		for _, d := range []string{"hp-1", "hp-2"} {
			_, _, err := svc.PutDevice(ctx, Device{ID: d, Model: "heatpump-a2", Site: "lyon"}, "admin")
			require.NoError(t, err)
			require.NoError(t, svc.Handle(ctx, raised(d, "heating_loss", telemetry.SeverityMajor, t0)))
		}
		ns, _, err := s.ListNotifications(ctx, NotificationFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"staff.incident_opened/staff"}, events(ns))
		require.NotZero(t, ns[0].IncidentID)
	})
}

// TestClaimLeaseComplete covers the dispatcher's side: claims lease rows,
// a live lease hides a row from other claimers, an expired one (a killed
// process) gives it to the next claimer, and the old holder's completion
// is refused, so each row is completed (and counted) once.
func TestClaimLeaseComplete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openDSN(t, dsn)
		svc, _ := newServiceWith(t, s, newClock(t0), DefaultTicketsConfig())
		ownedDevice(t, svc, "c1", "hp-1")
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0)))
		require.NoError(t, svc.Handle(ctx, raised("hp-1", "low_pressure", telemetry.SeverityMajor, t0)))

		// Not yet old enough for the group wait.
		got, err := s.ClaimNotifications(ctx, t0, t0.Add(-time.Second), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, got)

		a, err := s.ClaimNotifications(ctx, t0, t0, time.Minute, 1)
		require.NoError(t, err)
		require.Len(t, a, 1)
		b, err := s.ClaimNotifications(ctx, t0, t0, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, b, 1)
		require.NotEqual(t, a[0].ID, b[0].ID)
		none, err := s.ClaimNotifications(ctx, t0.Add(30*time.Second), t0, time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, none, "leased rows are not claimed again")

		// a's holder "dies"; after the lease another claims it.
		again, err := s.ClaimNotifications(ctx, t0.Add(2*time.Minute), t0, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, again, 2)
		require.NotEqual(t, a[0].Claim, again[0].Claim)

		done := Completion{ID: a[0].ID, Claim: a[0].Claim, Status: NotifyDelivered, Channel: "webhook", CountDay: "2026-11-22", Now: t0,
			Attempts: []Attempt{{At: t0, Channel: "webhook", Outcome: AttemptDelivered, StatusCode: 200}}}
		require.ErrorIs(t, s.CompleteNotification(ctx, done), ErrLeaseLost)
		for _, n := range again {
			if n.ID == a[0].ID {
				done.Claim = n.Claim
			}
		}
		require.NoError(t, s.CompleteNotification(ctx, done))
		require.ErrorIs(t, s.CompleteNotification(ctx, done), ErrLeaseLost, "a row completes once")
		sent, err := s.DailySent(ctx, "c1", "2026-11-22")
		require.NoError(t, err)
		require.Equal(t, 1, sent)

		n, err := s.GetNotification(ctx, a[0].ID)
		require.NoError(t, err)
		require.Equal(t, NotifyDelivered, n.Status)
		require.Equal(t, "webhook", n.Channel)
		require.Equal(t, 1, n.AttemptCount)
		require.Len(t, n.Attempts, 1)
		require.Equal(t, 200, n.Attempts[0].StatusCode)

		// The other dies: dead, then retried by staff.
		other := again[0]
		if other.ID == a[0].ID {
			other = again[1]
		}
		require.NoError(t, s.CompleteNotification(ctx, Completion{ID: other.ID, Claim: other.Claim, Status: NotifyDead, Now: t0, Note: "gave up",
			Attempts: []Attempt{{At: t0, Channel: "email", Outcome: AttemptFailed, Error: "550 no such user"}}}))
		dead, _, err := s.ListNotifications(ctx, NotificationFilter{Status: NotifyDead})
		require.NoError(t, err)
		require.Len(t, dead, 1)
		_, err = s.RetryNotification(ctx, a[0].ID, "bo", t0)
		require.ErrorIs(t, err, ErrConflict)
		_, err = s.RetryNotification(ctx, 999999, "bo", t0)
		require.ErrorIs(t, err, ErrNotFound)
		r, err := s.RetryNotification(ctx, other.ID, "bo", t0.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, NotifyPending, r.Status)
		require.Zero(t, r.AttemptCount)
		require.Len(t, r.Attempts, 1, "earlier attempts stay on record")
		audit, _, err := s.ListAudit(ctx, AuditFilter{Subject: "notification:" + itoa(other.ID)})
		require.NoError(t, err)
		require.Len(t, audit, 1)
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestClaimConcurrent: several stores on one database claim at once; each
// row goes to exactly one of them.
func TestClaimConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openDSN(t, dsn)
		svc, _ := newServiceWith(t, s, newClock(t0), DefaultTicketsConfig())
		ownedDevice(t, svc, "c1", "hp-1")
		const n = 60
		for i := range n {
			require.NoError(t, svc.Handle(ctx, raised("hp-1", "fault_"+strconv.Itoa(i), telemetry.SeverityMajor, t0)))
		}
		stores := []*SQLStore{s, openDSN(t, dsn), openDSN(t, dsn)}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
		)
		for _, st := range stores {
			wg.Go(func() {
				for {
					got, err := st.ClaimNotifications(ctx, t0, t0, time.Hour, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, g := range got {
						seen[g.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Len(t, seen, n)
		for id, k := range seen {
			require.Equal(t, 1, k, "row %d claimed %d times", id, k)
		}
	})
}

// TestMergeAndDigest: storm merging keeps one row per customer and group;
// rows beyond the cap fold into one digest per customer and day.
func TestMergeAndDigest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openDSN(t, dsn)
		svc, _ := newServiceWith(t, s, newClock(t0), DefaultTicketsConfig())
		ownedDevice(t, svc, "c1", "hp-1")
		for _, f := range []string{"a", "b", "c", "d"} {
			require.NoError(t, svc.Handle(ctx, raised("hp-1", f, telemetry.SeverityMajor, t0)))
		}
		rows, err := s.ClaimNotifications(ctx, t0, t0, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, rows, 4)
		into, err := s.MergeNotification(ctx, rows[0].ID, rows[0].Claim, "incident:1:ticket.opened", t0)
		require.NoError(t, err)
		require.Zero(t, into)
		into, err = s.MergeNotification(ctx, rows[1].ID, rows[1].Claim, "incident:1:ticket.opened", t0)
		require.NoError(t, err)
		require.Equal(t, rows[0].ID, into)
		n, err := s.GetNotification(ctx, rows[1].ID)
		require.NoError(t, err)
		require.Equal(t, NotifySuppressed, n.Status)
		require.Contains(t, n.Note, "merged into")

		d1, err := s.DigestNotification(ctx, rows[2].ID, rows[2].Claim, "2026-11-22", t0.Add(9*time.Hour), t0)
		require.NoError(t, err)
		d2, err := s.DigestNotification(ctx, rows[3].ID, rows[3].Claim, "2026-11-22", t0.Add(9*time.Hour), t0)
		require.NoError(t, err)
		require.Equal(t, d1, d2, "one digest per customer and day")
		members, err := s.DigestMembers(ctx, d1)
		require.NoError(t, err)
		require.Len(t, members, 2)
		dg, err := s.GetNotification(ctx, d1)
		require.NoError(t, err)
		require.Equal(t, EventDigest, dg.Event)
		require.Equal(t, NotifyPending, dg.Status)
		require.Equal(t, t0.Add(9*time.Hour), dg.NotBefore)

		depth, oldest, err := s.OutboxDepth(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, depth) // rows[0] and the digest
		require.Equal(t, t0, oldest)

		created, err := s.CreateCallbackTask(ctx, rows[0].TicketID, "c1", t0)
		require.NoError(t, err)
		require.True(t, created)
		created, err = s.CreateCallbackTask(ctx, rows[0].TicketID, "c1", t0)
		require.NoError(t, err)
		require.False(t, created, "once per ticket")
	})
}
