package httpapi

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ticketing"
)

// seedConsole fills the SQLite store at path with n tickets in one
// transaction: 20,000 devices of 4 models, 1,000 customers, 100 open
// incidents; 5 % of the tickets not resolved, the rest resolved with
// staff outcomes; created over the last 365 days; a quarter with a
// forecast crossing time. Each ticket has its raise event and open audit
// entry, as a real one would.
func seedConsole(tb testing.TB, path string, n int, now time.Time) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?_pragma=foreign_keys(0)")
	require.NoError(tb, err)
	defer db.Close()
	tx, err := db.Begin()
	require.NoError(tb, err)
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }
	must := func(_ sql.Result, err error) { require.NoError(tb, err) }
	rng := rand.New(rand.NewPCG(1, 2))
	models := []string{"heatpump-a2", "waterheater-w1", "evcharger-e1", "waterpump-p1"}
	faults := []string{"overheating", "no_flow", "filter_clogging", "low_pressure", "sensor_stuck", "offline", "anode_wear", "overcurrent", "leak", "noise"}
	const devices, customers, incidents = 20000, 1000, 100
	stmt := func(q string) *sql.Stmt {
		s, err := tx.Prepare(q)
		require.NoError(tb, err)
		return s
	}
	cust := stmt(`INSERT INTO customers (id, name, tier, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`)
	for i := range customers {
		must(cust.Exec(fmt.Sprintf("c-%d", i), fmt.Sprintf("Customer %d", i), []string{"standard", "premium"}[i%2], ts(now), ts(now)))
	}
	dev := stmt(`INSERT INTO devices (id, model, customer_id, site, firmware, source, last_seen, online, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'import', ?, ?, ?, ?)`)
	for i := range devices {
		var online any
		if i%10 != 0 {
			online = i%7 != 0
		}
		must(dev.Exec(fmt.Sprintf("d-%05d", i), models[i%4], fmt.Sprintf("c-%d", i%customers), fmt.Sprintf("site-%d", i%50),
			fmt.Sprintf("1.%d.%d", i%3, i%2), ts(now), online, ts(now), ts(now)))
	}
	inc := stmt(`INSERT INTO incidents (id, fault, scope, scope_value, severity, status, opened_at, updated_at) VALUES (?, ?, 'site', ?, 3, 'open', ?, ?)`)
	for i := 1; i <= incidents; i++ {
		must(inc.Exec(i, faults[i%len(faults)], fmt.Sprintf("site-x%d", i), ts(now.Add(-time.Hour)), ts(now)))
	}
	tick := stmt(`INSERT INTO tickets (id, device_id, model, firmware, site, customer_id, fault, rule, severity, status, customer_visible, remedy,
		assignee, outcome, incident_id, opened_at, created_at, updated_at, last_raised_at, raise_count, cleared_at, acknowledged_at, resolved_at, due_at, evidence)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 'Check it.', '', ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)`)
	event := stmt(`INSERT INTO ticket_events (ticket_id, at, kind, severity, evidence) VALUES (?, ?, 'raised', ?, ?)`)
	audit := stmt(`INSERT INTO audit (ticket_id, at, actor, action, to_value, note) VALUES (?, ?, 'system', 'open', 'open', 'raised')`)
	open := n / 20
	for i := 1; i <= n; i++ {
		d := (i * 7919) % devices
		fault := faults[i%len(faults)]
		created := now.Add(-time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
		status, outcome := "resolved", ""
		var cleared, acked, resolved, incident any
		if i <= open {
			d, fault = i%devices, faults[(i/devices)%len(faults)] // unique (device, fault) among open tickets
			status = []string{"open", "acknowledged"}[i%2]
			created = now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour))))
			if i%50 == 0 {
				incident = i/50%incidents + 1
			}
		} else {
			outcome = []string{"", "", "true_fault", "false_alarm", "customer_misuse"}[i%5]
			resolved = ts(created.Add(time.Duration(rng.Int64N(int64(48 * time.Hour)))))
			if outcome == "" {
				cleared = ts(created.Add(time.Hour))
			}
		}
		if status != "open" {
			acked = ts(created.Add(time.Duration(rng.Int64N(int64(4 * time.Hour)))))
		}
		sev := 1 + rng.IntN(4)
		ev := fmt.Sprintf(`{"detector":"threshold","metric":"m%d","value":70,"limit":60,"op":"above"}`, i%10)
		if i%4 == 0 {
			ev = fmt.Sprintf(`{"detector":"forecast","metric":"m%d","value":200,"limit":250,"cross_at":%q}`, i%10, created.Add(time.Duration(rng.Int64N(int64(96*time.Hour)))-12*time.Hour).Format(time.RFC3339Nano))
		}
		model := models[d%4]
		must(tick.Exec(i, fmt.Sprintf("d-%05d", d), model, fmt.Sprintf("1.%d.%d", d%3, d%2), fmt.Sprintf("site-%d", d%50), fmt.Sprintf("c-%d", d%customers),
			fault, "m/"+fault, sev, status, outcome, incident, ts(created), ts(created), ts(created), ts(created), cleared, acked, resolved,
			ts(created.Add(time.Duration(4<<sev)*time.Hour)), ev))
		must(event.Exec(i, ts(created), sev, ev))
		must(audit.Exec(i, ts(created)))
	}
	require.NoError(tb, tx.Commit())
}

// BenchmarkConsoleQueue renders the console's pages with 100,000 tickets
// in SQLite, as a signed-in agent: server time per page, the chart drawn
// from 600 points (a fake series: InfluxDB's time is not ours).
func BenchmarkConsoleQueue(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	path := filepath.Join(dir, "t.db")
	store, err := ticketing.Open(b.Context(), ticketing.Config{DSN: "sqlite:" + path})
	require.NoError(b, err)
	b.Cleanup(func() { _ = store.Close() })
	now := time.Now().UTC()
	start := time.Now()
	seedConsole(b, path, n, now)
	b.Logf("seeded %d tickets in %s", n, time.Since(start).Round(time.Millisecond))

	at := now.Add(-time.Hour)
	pts := make([]SeriesPoint, 600)
	for i := range pts {
		pts[i] = SeriesPoint{At: at.Add(time.Duration(i) * 10 * time.Second), Value: 50 + float64(i%40)}
	}
	h := NewHandler(Options{Service: ticketing.NewService(store, ticketing.Options{}), AdminToken: token, Series: &fakeSeries{pts: pts}})
	cookies := benchSignIn(b, h)

	ticketID := n / 20 / 2 // an open ticket
	for _, page := range []struct{ name, path string }{
		{"queue", "/console/queue"},
		{"queue-filtered", "/console/queue?model=heatpump-a2&severity=critical&status=open"},
		{"queue-page-20", "/console/queue?page=20&status=resolved"},
		{"queue-live", "/console/queue/live"},
		{"ticket", fmt.Sprintf("/console/tickets/%d", ticketID)},
		{"incident", "/console/incidents/1"},
		{"incidents", "/console/incidents"},
		{"fleet", "/console/fleet"},
		{"kpis-30d", "/console/kpis?period=30d"},
		{"kpis-365d", "/console/kpis?period=365d"},
	} {
		b.Run(fmt.Sprintf("tickets=%d/page=%s", n, page.name), func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, page.path, nil)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", page.path, rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
		})
	}
}

// benchSignIn signs in with the admin token through the sign-in form and
// returns the session cookie.
func benchSignIn(tb testing.TB, h http.Handler) []*http.Cookie {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/login", nil))
	csrf := csrfRe.FindStringSubmatch(rec.Body.String())
	require.NotNil(tb, csrf)
	req := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"token": {token}, "csrf": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(tb, http.StatusSeeOther, rec.Code, rec.Body.String())
	var out []*http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			out = append(out, c)
		}
	}
	require.Len(tb, out, 1)
	return out
}
