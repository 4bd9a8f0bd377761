package simulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFetchTicketsFollowsTheCursor reads two pages of the REST list shape
// (DESIGN "REST API") and rejects a bad token's answer.
func TestFetchTicketsFollowsTheCursor(t *testing.T) {
	var queries, paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"title":"unauthorized"}`)
			return
		}
		paths = append(paths, r.URL.Path)
		queries = append(queries, r.URL.RawQuery)
		if r.URL.Query().Get("cursor") == "" {
			fmt.Fprint(w, `{"items":[{"id":2,"device_id":"sim-00001","fault":"overheating","opened_at":"2026-10-01T10:00:00Z"}],"next":"c2"}`)
			return
		}
		fmt.Fprint(w, `{"items":[{"id":1,"device_id":"sim-00002","fault":"low_pressure","opened_at":"2026-10-02T11:30:00Z"}],"next":""}`)
	}))
	defer srv.Close()
	got, err := FetchTickets(t.Context(), srv.Client(), srv.URL+"/", "tok")
	require.NoError(t, err)
	require.Equal(t, []Ticket{
		{ID: 2, Device: "sim-00001", Fault: "overheating", OpenedAt: time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)},
		{ID: 1, Device: "sim-00002", Fault: "low_pressure", OpenedAt: time.Date(2026, 10, 2, 11, 30, 0, 0, time.UTC)},
	}, got)
	require.Equal(t, []string{"limit=500", "cursor=c2&limit=500"}, queries)
	require.Equal(t, []string{"/api/v1/tickets", "/api/v1/tickets"}, paths)

	_, err = FetchTickets(t.Context(), srv.Client(), srv.URL, "wrong")
	require.ErrorContains(t, err, "401 Unauthorized")
}
