package httpapi

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

func TestNotificationsAPI(t *testing.T) {
	srv, _, svc := newTestServerSvc(t, nil)
	ctx := t.Context()
	_, _, err := svc.PutCustomer(ctx, ticketing.Customer{ID: "c1"}, "admin")
	require.NoError(t, err)
	_, _, err = svc.PutDevice(ctx, ticketing.Device{ID: "hp-9", Model: "heatpump-a2", CustomerID: "c1"}, "admin")
	require.NoError(t, err)
	require.NoError(t, svc.Handle(ctx, telemetry.Finding{Device: "hp-9", Model: "heatpump-a2", Fault: "overheating", Rule: "r",
		State: telemetry.Raised, Severity: telemetry.SeverityMajor, CustomerVisible: true, At: time.Now(),
		Evidence: telemetry.Evidence{Detector: "threshold", Value: 70, Limit: 60}}))

	type page struct {
		Items []ticketing.Notification `json:"items"`
		Next  string                   `json:"next"`
	}
	var all page
	status, body := call(t, srv, http.MethodGet, "/api/v1/notifications", token, "", "", &all)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, all.Items, 2, "the staff row of the critical fixture ticket and the customer's")
	mine := all.Items[0]
	require.Equal(t, "c1", mine.CustomerID)
	require.Equal(t, ticketing.EventTicketOpened, mine.Event)
	require.NotNil(t, mine.Attempts)

	for _, tc := range []struct {
		query string
		n     int
		code  int
	}{
		{"?status=pending", 2, 200},
		{"?status=dead", 0, 200},
		{fmt.Sprintf("?ticket=%d", mine.TicketID), 1, 200},
		{"?customer=c1", 1, 200},
		{"?limit=1", 1, 200},
		{"?status=lost", 0, 400},
		{"?ticket=x", 0, 400},
		{"?colour=red", 0, 400},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var p page
			status, body := call(t, srv, http.MethodGet, "/api/v1/notifications"+tc.query, token, "", "", &p)
			require.Equal(t, tc.code, status, body)
			if tc.code == 200 {
				require.Len(t, p.Items, tc.n)
			}
		})
	}

	var one ticketing.Notification
	status, body = call(t, srv, http.MethodGet, fmt.Sprintf("/api/v1/notifications/%d", mine.ID), token, "", "", &one)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, mine.ID, one.ID)
	require.Equal(t, ticketing.IdempotencyKey(mine.ID), one.IdempotencyKey)
	status, _ = call(t, srv, http.MethodGet, "/api/v1/notifications/999999", token, "", "", nil)
	require.Equal(t, http.StatusNotFound, status)

	// Retry: only a dead one.
	status, body = call(t, srv, http.MethodPost, fmt.Sprintf("/api/v1/notifications/%d/retry", mine.ID), token, "", "", nil)
	require.Equal(t, http.StatusConflict, status, body)
	store := svc.Store()
	claimed, err := store.ClaimNotifications(ctx, time.Now(), time.Now(), time.Minute, 10)
	require.NoError(t, err)
	for _, n := range claimed {
		require.NoError(t, store.CompleteNotification(ctx, ticketing.Completion{ID: n.ID, Claim: n.Claim, Status: ticketing.NotifyDead, Now: time.Now(),
			Attempts: []ticketing.Attempt{{At: time.Now(), Channel: "webhook", Outcome: ticketing.AttemptFailed, StatusCode: 410, Error: "gone"}}}))
	}
	var dead page
	status, _ = call(t, srv, http.MethodGet, "/api/v1/notifications?status=dead", token, "", "", &dead)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, dead.Items, 2)
	viewerTok := issue(t, srv, "vic", ticketing.RoleViewer, "")
	status, _ = call(t, srv, http.MethodPost, fmt.Sprintf("/api/v1/notifications/%d/retry", mine.ID), viewerTok, "", "", nil)
	require.Equal(t, http.StatusForbidden, status)
	var retried ticketing.Notification
	status, body = call(t, srv, http.MethodPost, fmt.Sprintf("/api/v1/notifications/%d/retry", mine.ID), token, "", `{"note":"customer fixed their endpoint"}`, &retried)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, ticketing.NotifyPending, retried.Status)
	require.Len(t, retried.Attempts, 1)

	// A customer-scoped token sees its own customer's only.
	scoped := issue(t, srv, "app", ticketing.RoleViewer, "c1")
	var sp page
	status, _ = call(t, srv, http.MethodGet, "/api/v1/notifications", scoped, "", "", &sp)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, sp.Items, 1)
	staffRow := all.Items[1]
	status, _ = call(t, srv, http.MethodGet, fmt.Sprintf("/api/v1/notifications/%d", staffRow.ID), scoped, "", "", nil)
	require.Equal(t, http.StatusNotFound, status)
}
