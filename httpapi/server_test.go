package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

const token = "test-token-0123456789"

// newTestServer serves a real SQLite store holding a few tickets.
func newTestServer(t *testing.T, checks map[string]Check) (*httptest.Server, []ticketing.Ticket) {
	t.Helper()
	srv, all, _ := newTestServerSvc(t, checks)
	return srv, all
}

// newTestServerSvc is newTestServer that also returns the Service.
func newTestServerSvc(t *testing.T, checks map[string]Check) (*httptest.Server, []ticketing.Ticket, *ticketing.Service) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	store, err := ticketing.Open(t.Context(), ticketing.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "t.db")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	reg := prometheus.NewRegistry()
	svc := ticketing.NewService(store, ticketing.Options{Logger: log, Registerer: reg})
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i, f := range []struct {
		dev, fault string
		sev        telemetry.Severity
	}{
		{"hp-1", "overheating", telemetry.SeverityMajor},
		{"hp-2", "overheating", telemetry.SeverityMinor},
		{"hp-2", "no_flow", telemetry.SeverityCritical},
	} {
		require.NoError(t, svc.Handle(t.Context(), telemetry.Finding{
			Device: telemetry.DeviceID(f.dev), Model: "heatpump-a2", Fault: f.fault, Rule: "r", State: telemetry.Raised,
			Severity: f.sev, At: at.Add(time.Duration(i) * time.Minute), Evidence: telemetry.Evidence{Detector: "threshold", Value: 70, Limit: 60},
		}))
	}
	all, _, err := store.ListTickets(t.Context(), ticketing.Filter{})
	require.NoError(t, err)
	require.Len(t, all, 3)
	h := NewHandler(Options{Service: svc, AdminToken: token, Checks: checks, Gatherer: reg, Logger: log})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, all, svc
}

func do(t *testing.T, srv *httptest.Server, path, tok string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp, body
}

func TestListTickets(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	tests := []struct {
		name    string
		query   string
		devices []string // expected device_id of items, in order
	}{
		{"all newest first", "", []string{"hp-2", "hp-2", "hp-1"}},
		{"status", "?status=open", []string{"hp-2", "hp-2", "hp-1"}},
		{"resolved none", "?status=resolved", []string{}},
		{"device", "?device=hp-1", []string{"hp-1"}},
		{"fault", "?fault=no_flow", []string{"hp-2"}},
		{"severity", "?severity=minor", []string{"hp-2"}},
		{"combined", "?device=hp-2&fault=overheating", []string{"hp-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, "/api/v1/tickets"+tt.query, token)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var page struct {
				Items []ticketing.Ticket `json:"items"`
				Next  *string            `json:"next"`
			}
			require.NoError(t, json.Unmarshal(body, &page))
			require.NotNil(t, page.Items, "items is [] not null")
			require.NotNil(t, page.Next, "next is always present")
			got := []string{}
			for _, tk := range page.Items {
				got = append(got, tk.DeviceID)
			}
			require.Equal(t, tt.devices, got)
		})
	}
}

func TestListTicketsPagination(t *testing.T) {
	srv, all := newTestServer(t, nil)
	var ids []int64
	cursor := ""
	for range 5 {
		resp, body := do(t, srv, "/api/v1/tickets?limit=2&cursor="+cursor, token)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var page struct {
			Items []ticketing.Ticket `json:"items"`
			Next  string             `json:"next"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		for _, tk := range page.Items {
			ids = append(ids, tk.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	require.Equal(t, []int64{all[0].ID, all[1].ID, all[2].ID}, ids)
}

func TestBadRequestsAreProblems(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	tests := []struct {
		name   string
		path   string
		tok    string
		status int
		detail string
	}{
		{"no token", "/api/v1/tickets", "", http.StatusUnauthorized, "bearer token"},
		{"wrong token", "/api/v1/tickets", "nope-nope-nope-nope", http.StatusUnauthorized, "bearer token"},
		{"bad status", "/api/v1/tickets?status=closed", token, http.StatusBadRequest, `status "closed"`},
		{"bad severity", "/api/v1/tickets?severity=huge", token, http.StatusBadRequest, "severity"},
		{"bad limit", "/api/v1/tickets?limit=0", token, http.StatusBadRequest, "limit"},
		{"big limit", "/api/v1/tickets?limit=501", token, http.StatusBadRequest, "limit"},
		{"bad cursor", "/api/v1/tickets?cursor=bm90LWEtY3Vyc29y", token, http.StatusBadRequest, "cursor"},
		{"malformed query", "/api/v1/tickets?cursor=%%%", token, http.StatusBadRequest, "malformed query"},
		{"unknown filter", "/api/v1/tickets?colour=red", token, http.StatusBadRequest, `unknown query parameter "colour"`},
		{"bad since", "/api/v1/tickets?since=yesterday", token, http.StatusBadRequest, `since "yesterday": want an RFC 3339 time`},
		{"bad incident", "/api/v1/tickets?incident=x", token, http.StatusBadRequest, `incident "x" is not a positive integer`},
		{"bad id", "/api/v1/tickets/abc", token, http.StatusBadRequest, "not a positive integer"},
		{"unknown id", "/api/v1/tickets/999", token, http.StatusNotFound, "not found"},
		{"unknown route", "/api/v2/x", token, http.StatusNotFound, "no such resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, tt.path, tt.tok)
			require.Equal(t, tt.status, resp.StatusCode, "%s", body)
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
			var p problem
			require.NoError(t, json.Unmarshal(body, &p))
			require.Equal(t, tt.status, p.Status)
			require.Equal(t, http.StatusText(tt.status), p.Title)
			require.Contains(t, p.Detail, tt.detail)
		})
	}
}

func TestGetTicket(t *testing.T) {
	srv, all := newTestServer(t, nil)
	resp, body := do(t, srv, "/api/v1/tickets/"+jsonID(all[2].ID), token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	for _, key := range []string{"id", "device_id", "fault", "severity", "status", "opened_at", "updated_at", "evidence", "timeline"} {
		require.Contains(t, got, key, "DESIGN's ticket contract")
	}
	require.Equal(t, "major", got["severity"])
	require.Equal(t, "open", got["status"])
}

func jsonID(id int64) string { b, _ := json.Marshal(id); return string(b) }

func TestHealthAndReadiness(t *testing.T) {
	failing := errors.New("broker down")
	var brokerErr error
	srv, _ := newTestServer(t, map[string]Check{
		"store": func(context.Context) error { return nil },
		"mqtt":  func(context.Context) error { return brokerErr },
	})
	resp, _ := do(t, srv, "/healthz", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, body := do(t, srv, "/readyz", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

	brokerErr = failing
	resp, body = do(t, srv, "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(body), "broker down")
	require.Contains(t, string(body), `"store":"ok"`)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	mresp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer mresp.Body.Close()
	require.Equal(t, http.StatusOK, mresp.StatusCode)
	require.True(t, strings.HasPrefix(mresp.Header.Get("Content-Type"), "text/plain"))
}

func findingFor(device string) telemetry.Finding {
	return telemetry.Finding{
		Device: telemetry.DeviceID(device), Model: "heatpump-a2", Fault: "overheating", Rule: "r", State: telemetry.Raised,
		Severity: telemetry.SeverityMajor, At: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC), Remedy: "Check the pump.",
		Evidence: telemetry.Evidence{Detector: "threshold", Value: 70, Limit: 60},
	}
}
