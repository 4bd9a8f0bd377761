package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// TestTicketNotificationsOnTheTimeline: the console's timeline adapter reads
// a ticket's outbox rows from a real SQLite store, oldest first, with the
// customer as recipient; a delivery's channel and last error come from its
// attempts.
func TestTicketNotificationsOnTheTimeline(t *testing.T) {
	ctx := t.Context()
	store, err := ticketing.Open(ctx, ticketing.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "fw.db")})
	require.NoError(t, err)
	defer store.Close()
	svc := ticketing.NewService(store, ticketing.Options{Tickets: ticketing.DefaultTicketsConfig(), Registry: ticketing.DefaultRegistryConfig()})
	_, _, err = svc.PutCustomer(ctx, ticketing.Customer{ID: "c1", Name: "Ada", Tier: ticketing.TierStandard, Language: "en",
		Timezone: "UTC", Channels: []ticketing.Channel{{Type: "email", Address: "ada@example.invalid"}}}, "admin")
	require.NoError(t, err)
	_, _, err = svc.PutDevice(ctx, ticketing.Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "c1"}, "admin")
	require.NoError(t, err)
	at := time.Now().Add(-time.Hour).UTC()
	require.NoError(t, svc.Handle(ctx, telemetry.Finding{Device: "hp-1", Model: "heatpump-a2", Fault: "overheating",
		Rule: "supply_temp_c/threshold", State: telemetry.Raised, Severity: telemetry.SeverityMajor, CustomerVisible: true, At: at,
		Evidence: telemetry.Evidence{Detector: "threshold", Metric: "supply_temp_c", Value: 80, Limit: 60, Op: "above"}}))
	ns, _, err := store.ListNotifications(ctx, ticketing.NotificationFilter{})
	require.NoError(t, err)
	require.Len(t, ns, 1)
	ticket := ns[0].TicketID
	_, err = svc.ApplyTicket(ctx, ticket, ticketing.Action{Kind: ticketing.ActAcknowledge, Actor: "bo"})
	require.NoError(t, err)

	views, err := ticketNotifications{store}.TicketNotifications(ctx, ticket)
	require.NoError(t, err)
	require.Len(t, views, 2)
	require.Equal(t, "ticket.opened", views[0].Event, "oldest first")
	require.Equal(t, "ticket.acknowledged", views[1].Event)
	for _, v := range views {
		require.Equal(t, "c1", v.Recipient)
		require.Equal(t, "pending", v.Status)
		require.Zero(t, v.Attempts)
	}
	none, err := ticketNotifications{store}.TicketNotifications(ctx, ticket+100)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestNotificationViews(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	views := notificationViews([]ticketing.Notification{ // newest first, as listed
		{Event: "staff.ticket_critical", Audience: "staff", Status: ticketing.NotifyDead, AttemptCount: 8, CreatedAt: t0.Add(time.Minute),
			Attempts: []ticketing.Attempt{{Channel: "chat", Outcome: "retry", Error: "503"}, {Channel: "chat", Outcome: "failed", Error: "410 gone"}}},
		{Event: "ticket.opened", Audience: "customer", CustomerID: "c9", Status: ticketing.NotifyDelivered, AttemptCount: 2, Channel: "email", CreatedAt: t0,
			Attempts: []ticketing.Attempt{{Channel: "webhook", Outcome: "failed", Error: "400"}, {Channel: "email", Outcome: "delivered"}}},
		{Event: "ticket.resolved", Audience: "customer", CustomerID: "c9", Status: ticketing.NotifyPending, Note: "quiet hours until 07:00", CreatedAt: t0},
	})
	require.Len(t, views, 3)
	require.Equal(t, "ticket.resolved", views[0].Event)
	require.Equal(t, "quiet hours until 07:00", views[0].LastError, "a waiting row says why")
	require.Equal(t, "email", views[1].Channel, "the channel that delivered")
	require.Empty(t, views[1].LastError, "delivered at the last attempt: no error")
	require.Equal(t, "c9", views[1].Recipient)
	require.Equal(t, "staff", views[2].Recipient)
	require.Equal(t, "chat", views[2].Channel)
	require.Equal(t, "410 gone", views[2].LastError)
	require.Equal(t, "dead", views[2].Status)
}
