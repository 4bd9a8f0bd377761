package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

func isConsoleRoute(route string) bool {
	return route == "/" || strings.HasPrefix(route, consolePrefix)
}

// fakeSeries records what the chart asked for and answers pts.
type fakeSeries struct {
	mu    sync.Mutex
	calls []string
	pts   []SeriesPoint
}

func (f *fakeSeries) Series(_ context.Context, device, metric string, from, to time.Time, maxPoints int) ([]SeriesPoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, device+"/"+metric)
	return f.pts, nil
}

type fakeNotifications map[int64][]NotificationView

func (f fakeNotifications) TicketNotifications(_ context.Context, id int64) ([]NotificationView, error) {
	return f[id], nil
}

type consoleEnv struct {
	srv     *httptest.Server
	svc     *ticketing.Service
	store   *ticketing.SQLStore
	series  *fakeSeries
	tickets map[string]int64 // device/fault -> id
	now     time.Time
}

// newConsoleEnv serves a handler with three tickets (hp-2/no_flow
// critical, hp-1/overheating major, hp-2/overheating minor), a customer
// and a device, on a TLS server when tls is set.
func newConsoleEnv(t *testing.T, tls bool) *consoleEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	store, err := ticketing.Open(t.Context(), ticketing.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "t.db")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	now := time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)
	svc := ticketing.NewService(store, ticketing.Options{Logger: log, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	_, _, err = svc.PutCustomer(t.Context(), ticketing.Customer{ID: "c-1", Name: "Ada Lovelace", Tier: ticketing.TierPremium,
		Channels: []ticketing.Channel{{Type: "email", Address: "ada@example.com"}}}, "test")
	require.NoError(t, err)
	_, _, err = svc.PutDevice(t.Context(), ticketing.Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "c-1", Site: "lyon", Firmware: "1.4.2"}, "test")
	require.NoError(t, err)
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
			Device: telemetry.DeviceID(f.dev), Model: "heatpump-a2", Fault: f.fault, Rule: "supply_temp_c/threshold", State: telemetry.Raised,
			Severity: f.sev, At: at.Add(time.Duration(i) * time.Minute), Remedy: "Check the circulation pump.",
			Evidence: telemetry.Evidence{Detector: "threshold", Metric: "supply_temp_c", Value: 70, Limit: 60, Op: "above", For: "1m0s"},
		}))
	}
	env := &consoleEnv{svc: svc, store: store, now: now, tickets: map[string]int64{},
		series: &fakeSeries{pts: []SeriesPoint{{at.Add(-time.Minute), 50}, {at, 70}, {at.Add(time.Minute), 72}}}}
	all, _, err := store.ListTickets(t.Context(), ticketing.Filter{})
	require.NoError(t, err)
	for _, tk := range all {
		env.tickets[tk.DeviceID+"/"+tk.Fault] = tk.ID
	}
	h := NewHandler(Options{Service: svc, AdminToken: token, Logger: log, Series: env.series, Now: func() time.Time { return now },
		Notifications: fakeNotifications{env.tickets["hp-1/overheating"]: {{At: now, Event: "ticket.opened", Channel: "email", Recipient: "c-1", Status: "delivered", Attempts: 1}}}})
	if tls {
		env.srv = httptest.NewTLSServer(h)
	} else {
		env.srv = httptest.NewServer(h)
	}
	t.Cleanup(env.srv.Close)
	return env
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see each 303.
func (e *consoleEnv) browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (e *consoleEnv) issue(t *testing.T, name string, role ticketing.Role, customer string) (ticketing.Token, string) {
	t.Helper()
	tok, secret, err := e.svc.IssueToken(t.Context(), name, role, customer, "test")
	require.NoError(t, err)
	return tok, secret
}

type answer struct {
	status   int
	body     string
	location string
	resp     *http.Response
}

func browse(t *testing.T, c *http.Client, method, u string, form url.Values) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, body: string(b), location: resp.Header.Get("Location"), resp: resp}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	require.NotNil(t, m, "no CSRF field in the page")
	return m[1]
}

// signIn signs c in with secret and returns the queue page.
func (e *consoleEnv) signIn(t *testing.T, c *http.Client, secret string) answer {
	t.Helper()
	login := browse(t, c, http.MethodGet, e.srv.URL+"/console/login", nil)
	require.Equal(t, http.StatusOK, login.status)
	a := browse(t, c, http.MethodPost, e.srv.URL+"/console/login", url.Values{"token": {secret}, "csrf": {csrfOf(t, login.body)}, "next": {"/console/queue"}})
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	require.Equal(t, "/console/queue", a.location)
	q := browse(t, c, http.MethodGet, e.srv.URL+a.location, nil)
	require.Equal(t, http.StatusOK, q.status, q.body)
	return q
}

func TestConsoleSignInQueueTicketAcknowledge(t *testing.T) {
	e := newConsoleEnv(t, false)
	_, secret := e.issue(t, "ana", ticketing.RoleAgent, "")
	c := e.browser(t)

	// Without a session the queue sends the browser to sign in, and back after.
	a := browse(t, c, http.MethodGet, e.srv.URL+"/console/queue?severity=major", nil)
	require.Equal(t, http.StatusSeeOther, a.status)
	require.Equal(t, "/console/login?next="+url.QueryEscape("/console/queue?severity=major"), a.location)

	// A wrong token is refused with a message tied to the field.
	login := browse(t, c, http.MethodGet, e.srv.URL+"/console/login", nil)
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/login", url.Values{"token": {"fw_wrong"}, "csrf": {csrfOf(t, login.body)}})
	require.Equal(t, http.StatusUnauthorized, a.status)
	require.Contains(t, a.body, `aria-describedby="login-error"`)
	require.Contains(t, a.body, "not valid")

	q := e.signIn(t, c, secret)
	// Work order: critical, major, minor.
	iNoFlow := strings.Index(q.body, `data-id="`+itoa(e.tickets["hp-2/no_flow"])+`"`)
	iMajor := strings.Index(q.body, `data-id="`+itoa(e.tickets["hp-1/overheating"])+`"`)
	iMinor := strings.Index(q.body, `data-id="`+itoa(e.tickets["hp-2/overheating"])+`"`)
	require.True(t, iNoFlow > 0 && iNoFlow < iMajor && iMajor < iMinor, "queue order")
	require.Contains(t, q.body, `data-count="total">3<`)
	require.Contains(t, q.body, "data-due=")
	require.Contains(t, q.body, `ana <span class="role">(agent)</span>`)

	id := e.tickets["hp-1/overheating"]
	tp := browse(t, c, http.MethodGet, e.srv.URL+"/console/tickets/"+itoa(id), nil)
	require.Equal(t, http.StatusOK, tp.status, tp.body)
	for _, want := range []string{
		"supply_temp_c was 70, above the limit of 60 for at least 1m0s", // evidence in words
		`<svg class="chart"`, `class="limit"`, `class="series"`, // the chart
		"Check the circulation pump.",              // remedy
		"Ada Lovelace", "premium", "email", "lyon", // customer and device
		"Notification ticket.opened", "email to c-1: delivered after 1 attempt(s)", // timeline
		`action="/console/tickets/` + itoa(id) + `/ack"`,
	} {
		require.Contains(t, tp.body, want)
	}
	require.NotContains(t, tp.body, `class="forecast"`, "a threshold finding has no forecast line")
	require.Equal(t, []string{"hp-1/supply_temp_c"}, e.series.calls)

	// A POST without the session's CSRF token is refused and changes nothing.
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+itoa(id)+"/ack", url.Values{"csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, a.status)
	got, err := e.store.GetTicket(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, ticketing.StatusOpen, got.Status)

	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+itoa(id)+"/ack", url.Values{"csrf": {csrfOf(t, tp.body)}})
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	require.Equal(t, "/console/tickets/"+itoa(id)+"?done=ack", a.location)
	tp = browse(t, c, http.MethodGet, e.srv.URL+a.location, nil)
	require.Contains(t, tp.body, `class="flash" role="status">Acknowledged.`)
	require.Contains(t, tp.body, "status-acknowledged")
	require.Contains(t, tp.body, "by ana", "the audit names the signed-in token")

	// The other actions, each through its form.
	csrf := csrfOf(t, tp.body)
	for _, tc := range []struct {
		action string
		form   url.Values
		check  func(ticketing.Ticket)
	}{
		{"assign", url.Values{"assignee": {"bob"}}, func(tk ticketing.Ticket) { require.Equal(t, "bob", tk.Assignee) }},
		{"comment", url.Values{"comment": {"called the customer"}}, func(ticketing.Ticket) {}},
		{"severity", url.Values{"severity": {"critical"}}, func(tk ticketing.Ticket) { require.Equal(t, telemetry.SeverityCritical, tk.Severity) }},
		{"resolve", url.Values{"outcome": {"true_fault"}, "note": {"pump replaced"}}, func(tk ticketing.Ticket) {
			require.Equal(t, ticketing.StatusResolved, tk.Status)
			require.Equal(t, ticketing.OutcomeTrueFault, tk.Outcome)
		}},
	} {
		t.Run(tc.action, func(t *testing.T) {
			tc.form.Set("csrf", csrf)
			a := browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+itoa(id)+"/"+tc.action, tc.form)
			require.Equal(t, http.StatusSeeOther, a.status, a.body)
			tk, err := e.store.GetTicket(t.Context(), id)
			require.NoError(t, err)
			tc.check(tk)
		})
	}
	tp = browse(t, c, http.MethodGet, e.srv.URL+"/console/tickets/"+itoa(id), nil)
	require.Contains(t, tp.body, "called the customer")
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+itoa(id)+"/severity", url.Values{"csrf": {csrf}, "severity": {"dire"}})
	require.Equal(t, http.StatusBadRequest, a.status)
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+itoa(id)+"/ack", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusConflict, a.status, "a resolved ticket cannot be acknowledged")

	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+itoa(id)+"/comment", url.Values{"csrf": {csrf}, "comment": {strings.Repeat("x", 100<<10)}})
	require.Equal(t, http.StatusRequestEntityTooLarge, a.status, "a form is bounded")

	// Sign out ends the session.
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/logout", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, a.status)
	a = browse(t, c, http.MethodGet, e.srv.URL+"/console/queue", nil)
	require.Equal(t, http.StatusSeeOther, a.status)
}

func TestConsoleLiveQueue(t *testing.T) {
	e := newConsoleEnv(t, false)
	_, secret := e.issue(t, "ana", ticketing.RoleAgent, "")
	c := e.browser(t)
	e.signIn(t, c, secret)
	var live struct {
		Rows   string  `json:"rows"`
		Counts string  `json:"counts"`
		IDs    []int64 `json:"ids"`
		Total  int     `json:"total"`
	}
	a := browse(t, c, http.MethodGet, e.srv.URL+"/console/queue/live?model=heatpump-a2", nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.NoError(t, json.Unmarshal([]byte(a.body), &live))
	require.Equal(t, 3, live.Total)
	require.Len(t, live.IDs, 3)

	// A new ticket is in the next answer.
	require.NoError(t, e.svc.Handle(t.Context(), telemetry.Finding{Device: "hp-9", Model: "heatpump-a2", Fault: "no_flow", Rule: "r",
		State: telemetry.Raised, Severity: telemetry.SeverityCritical, At: e.now}))
	a = browse(t, c, http.MethodGet, e.srv.URL+"/console/queue/live?model=heatpump-a2", nil)
	require.NoError(t, json.Unmarshal([]byte(a.body), &live))
	require.Equal(t, 4, live.Total)
	require.Contains(t, live.Rows, "hp-9")
	require.Contains(t, live.Counts, "2 critical")

	// Signed out, the script gets 401 (it then goes to the sign-in page).
	a = browse(t, e.browser(t), http.MethodGet, e.srv.URL+"/console/queue/live", nil)
	require.Equal(t, http.StatusUnauthorized, a.status)
}

func TestConsoleQueueFilters(t *testing.T) {
	e := newConsoleEnv(t, false)
	_, secret := e.issue(t, "ana", ticketing.RoleAgent, "")
	c := e.browser(t)
	e.signIn(t, c, secret)
	for _, tc := range []struct {
		query  string
		status int
		want   []string // device/fault keys listed
		not    []string
	}{
		{"", 200, []string{"hp-1/overheating", "hp-2/overheating", "hp-2/no_flow"}, nil},
		{"severity=critical", 200, []string{"hp-2/no_flow"}, []string{"hp-1/overheating"}},
		{"fault=overheating", 200, []string{"hp-1/overheating", "hp-2/overheating"}, []string{"hp-2/no_flow"}},
		{"customer=c-1", 200, []string{"hp-1/overheating"}, []string{"hp-2/no_flow"}},
		{"model=heatpump-a2&status=open", 200, []string{"hp-1/overheating", "hp-2/no_flow"}, nil},
		{"status=resolved", 200, nil, []string{"hp-1/overheating"}},
		{"severity=dire", 400, nil, nil},
		{"status=closed", 400, nil, nil},
		{"page=0", 400, nil, nil},
		{"incident=x", 400, nil, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			a := browse(t, c, http.MethodGet, e.srv.URL+"/console/queue?"+tc.query, nil)
			require.Equal(t, tc.status, a.status, a.body)
			for _, k := range tc.want {
				require.Contains(t, a.body, `data-id="`+itoa(e.tickets[k])+`"`, k)
			}
			for _, k := range tc.not {
				require.NotContains(t, a.body, `data-id="`+itoa(e.tickets[k])+`"`, k)
			}
		})
	}
}

func TestConsoleSessions(t *testing.T) {
	e := newConsoleEnv(t, true)
	tok, secret := e.issue(t, "ana", ticketing.RoleAgent, "")
	c := e.browser(t)
	login := browse(t, c, http.MethodGet, e.srv.URL+"/console/login", nil)
	require.Equal(t, "DENY", login.resp.Header.Get("X-Frame-Options"))
	require.Contains(t, login.resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
	a := browse(t, c, http.MethodPost, e.srv.URL+"/console/login", url.Values{"token": {secret}, "csrf": {csrfOf(t, login.body)}})
	require.Equal(t, http.StatusSeeOther, a.status)
	var session *http.Cookie
	for _, ck := range a.resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	require.NotNil(t, session)
	require.True(t, session.HttpOnly)
	require.True(t, session.Secure, "Secure on TLS")
	require.Equal(t, http.SameSiteLaxMode, session.SameSite)
	require.Equal(t, "/console/", session.Path)

	// A tampered cookie is no session.
	bad := e.browser(t)
	u, _ := url.Parse(e.srv.URL + "/console/")
	bad.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: strings.Replace(session.Value, "v1."+itoa(tok.ID), "v1.0", 1), Path: "/console/"}})
	require.Equal(t, http.StatusSeeOther, browse(t, bad, http.MethodGet, e.srv.URL+"/console/queue", nil).status)

	// Revoking the token ends its sessions at once.
	require.Equal(t, http.StatusOK, browse(t, c, http.MethodGet, e.srv.URL+"/console/queue", nil).status)
	require.NoError(t, e.svc.RevokeToken(t.Context(), tok.ID, "test"))
	require.Equal(t, http.StatusSeeOther, browse(t, c, http.MethodGet, e.srv.URL+"/console/queue", nil).status)

	// The login form's CSRF cookie must match its field.
	login = browse(t, c, http.MethodGet, e.srv.URL+"/console/login", nil)
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/login", url.Values{"token": {token}, "csrf": {"not-the-cookie"}})
	require.Equal(t, http.StatusForbidden, a.status)

	// The bootstrap admin token signs in too; a customer-scoped one does not.
	e.signIn(t, e.browser(t), token)
	_, _, err := e.svc.PutCustomer(t.Context(), ticketing.Customer{ID: "c-2"}, "test")
	require.NoError(t, err)
	_, scoped := e.issue(t, "app", ticketing.RoleViewer, "c-2")
	c = e.browser(t)
	login = browse(t, c, http.MethodGet, e.srv.URL+"/console/login", nil)
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/login", url.Values{"token": {scoped}, "csrf": {csrfOf(t, login.body)}})
	require.Equal(t, http.StatusForbidden, a.status)

	// A viewer sees pages but cannot act.
	_, viewer := e.issue(t, "vic", ticketing.RoleViewer, "")
	c = e.browser(t)
	e.signIn(t, c, viewer)
	id := itoa(e.tickets["hp-1/overheating"])
	tp := browse(t, c, http.MethodGet, e.srv.URL+"/console/tickets/"+id, nil)
	require.Contains(t, tp.body, "you can look, not act")
	a = browse(t, c, http.MethodPost, e.srv.URL+"/console/tickets/"+id+"/ack", url.Values{"csrf": {csrfOf(t, tp.body)}})
	require.Equal(t, http.StatusForbidden, a.status)
	require.Contains(t, a.body, "agent role")
}

// TestConsoleRoutesNeedASession walks the router: every console route but
// sign-in and the static assets sends a browser without a session to the
// sign-in page (the live endpoint answers 401).
func TestConsoleRoutesNeedASession(t *testing.T) {
	e := newConsoleEnv(t, false)
	h := NewHandler(Options{Service: e.svc, AdminToken: token})
	n := 0
	require.NoError(t, chi.Walk(h.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !isConsoleRoute(route) {
			return nil
		}
		n++
		path := strings.NewReplacer("{id}", "1", "{action}", "ack", "*", "console.css").Replace(route)
		a := browse(t, e.browser(t), method, e.srv.URL+path, url.Values{})
		switch {
		case route == "/console/login" && method == http.MethodPost:
			require.Equal(t, http.StatusForbidden, a.status, "sign-in without the form's CSRF token")
		case route == "/" || route == "/console/login" || strings.HasPrefix(route, "/console/static/"):
			require.Less(t, a.status, 400, "%s %s is public", method, route)
		case strings.HasSuffix(route, "/live"):
			require.Equal(t, http.StatusUnauthorized, a.status)
		default:
			require.Equal(t, http.StatusSeeOther, a.status, "%s %s", method, route)
			require.True(t, strings.HasPrefix(a.location, "/console/login"), "%s %s goes to %s", method, route, a.location)
		}
		return nil
	}))
	require.Greater(t, n, 12)
}

func TestConsolePages(t *testing.T) {
	e := newConsoleEnv(t, false)
	// Four devices at one site make an incident (the default grouping).
	for _, d := range []string{"s-1", "s-2", "s-3", "s-4", "s-5"} {
		_, _, err := e.svc.PutDevice(t.Context(), ticketing.Device{ID: d, Model: "heatpump-a2", Site: "paris", Firmware: "2.0"}, "test")
		require.NoError(t, err)
		require.NoError(t, e.svc.Handle(t.Context(), telemetry.Finding{Device: telemetry.DeviceID(d), Model: "heatpump-a2", Fault: "low_pressure",
			Rule: "p/threshold", State: telemetry.Raised, Severity: telemetry.SeverityMajor, At: e.now}))
	}
	ins, _, err := e.store.ListIncidents(t.Context(), ticketing.IncidentFilter{})
	require.NoError(t, err)
	require.NotEmpty(t, ins, "the fixture makes an incident")
	in := itoa(ins[0].ID)

	_, secret := e.issue(t, "ana", ticketing.RoleAgent, "")
	c := e.browser(t)
	e.signIn(t, c, secret)
	for _, tc := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/console/fleet", 200, []string{"Fleet", "Open tickets by fault", "low pressure", "Firmware distribution", "2.0", "<meter"}},
		{"/console/kpis", 200, []string{"Proactive KPIs", "p/threshold", "mean time to acknowledge", "opened before the customer would have noticed"}},
		{"/console/kpis?period=7d", 200, []string{"Last 7 days"}},
		{"/console/kpis?period=custom&from=2026-11-01&to=2026-11-22", 200, []string{"2026-11-23 00:00 UTC"}},
		{"/console/kpis?period=custom&from=x", 400, nil},
		{"/console/kpis?period=2y", 400, nil},
		{"/console/incidents", 200, []string{"#" + in + " low pressure", "paris"}},
		{"/console/incidents/" + in, 200, []string{"What the devices have in common", "all <strong>paris</strong>", "all <strong>2.0</strong>", "s-3", "Acknowledge all"}},
		{"/console/incidents/999", 404, nil},
		{"/console/tickets/999", 404, nil},
		{"/console/tickets/x", 400, nil},
		{"/console/static/console.css", 200, []string{"--crit"}},
		{"/console/static/console.js", 200, []string{"data-live"}},
		{"/console/", 303, nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			a := browse(t, c, http.MethodGet, e.srv.URL+tc.path, nil)
			require.Equal(t, tc.status, a.status, a.body)
			for _, w := range tc.want {
				require.Contains(t, a.body, w)
			}
		})
	}
	// One action for all the incident's tickets.
	ip := browse(t, c, http.MethodGet, e.srv.URL+"/console/incidents/"+in, nil)
	a := browse(t, c, http.MethodPost, e.srv.URL+"/console/incidents/"+in+"/ack", url.Values{"csrf": {csrfOf(t, ip.body)}})
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	members, _, err := e.store.ListTickets(t.Context(), ticketing.Filter{IncidentID: ins[0].ID})
	require.NoError(t, err)
	for _, m := range members {
		require.Equal(t, ticketing.StatusAcknowledged, m.Status, "ticket %d", m.ID)
	}
	ip = browse(t, c, http.MethodGet, e.srv.URL+a.location, nil)
	require.Contains(t, ip.body, "Acknowledged. 5 ticket(s) changed.")

	// A crafted link cannot put its own words in the confirmation.
	tp := browse(t, c, http.MethodGet, e.srv.URL+"/console/incidents/"+in+"?done=Call+555-0100+now", nil)
	require.Equal(t, http.StatusOK, tp.status)
	require.NotContains(t, tp.body, "555-0100")
	require.NotContains(t, tp.body, `class="flash"`)
}

func TestConsoleDisabled(t *testing.T) {
	e := newConsoleEnv(t, false)
	cfg := DefaultConfig()
	cfg.ConsoleEnabled = false
	srv := httptest.NewServer(NewHandler(Options{Service: e.svc, AdminToken: token, Limits: cfg}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/console/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/console/tickets/4", "/console/tickets/4"},
		{"/console/queue?severity=major", "/console/queue?severity=major"},
		{"", "/console/queue"},
		{"https://evil.example/console/", "/console/queue"},
		{"//evil.example", "/console/queue"},
		{"/console//evil.example", "/console/queue"},
		{"/api/v1/tokens", "/console/queue"},
	} {
		t.Run(tc.in, func(t *testing.T) { require.Equal(t, tc.want, safeNext(tc.in)) })
	}
}

func TestDrawChart(t *testing.T) {
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	pts := []SeriesPoint{{at.Add(-2 * time.Hour), 150}, {at.Add(-time.Hour), 170}, {at, 190}}
	for _, tc := range []struct {
		name    string
		ev      telemetry.Evidence
		pts     []SeriesPoint
		want    []string
		notWant []string
	}{
		{"threshold: the limit, no forecast", telemetry.Evidence{Detector: "threshold", Metric: "supply_temp_c", Value: 190, Limit: 180},
			pts, []string{`class="limit"`, "limit 180", `class="series"`, "<title", "The limit is 180."}, []string{`class="forecast"`}},
		{"forecast: the forecast line to the crossing", telemetry.Evidence{Detector: "forecast", Metric: "filter_dp_pa", Value: 190, Expected: 188,
			Limit: 250, Score: 20, CrossAt: at.Add(3 * time.Hour)}, pts, []string{`class="forecast"`, "limit 250", "The forecast reaches it at 2026-11-22 15:00 UTC."}, nil},
		{"forecast far away: clipped at the edge", telemetry.Evidence{Detector: "forecast", Metric: "filter_dp_pa", Value: 190, Limit: 250,
			CrossAt: at.Add(60 * 24 * time.Hour)}, pts, []string{`class="forecast"`}, nil},
		{"one reading: a dot", telemetry.Evidence{Detector: "threshold", Metric: "m", Limit: 1}, pts[:1], []string{`class="series-dot"`}, nil},
		{"no readings: a sentence", telemetry.Evidence{Detector: "threshold", Metric: "m"}, nil, []string{"holds no m readings"}, []string{"<svg"}},
		{"markup is escaped", telemetry.Evidence{Detector: "threshold", Metric: "<b>x</b>"}, pts, []string{"&lt;b&gt;x&lt;/b&gt;"}, []string{"<b>x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := string(drawChart(ticketing.Ticket{DeviceID: "hp-1", LastRaisedAt: at, OpenedAt: at, Evidence: tc.ev}, tc.pts))
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			for _, w := range tc.notWant {
				require.NotContains(t, out, w)
			}
			require.NotContains(t, out, "NaN")
		})
	}
}

func TestEvidenceText(t *testing.T) {
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev   telemetry.Evidence
		want string
	}{
		{telemetry.Evidence{Detector: "threshold", Metric: "supply_temp_c", Value: 19.5, Limit: 18, Op: "above", For: "10m0s", Since: at, Samples: 10},
			"supply_temp_c was 19.5, above the limit of 18 for at least 10m0s (since 2026-11-22 12:00:00 UTC, 10 readings)."},
		{telemetry.Evidence{Detector: "forecast", Metric: "filter_dp_pa", Value: 180, Expected: 178, Limit: 250, Score: 3.2, CrossAt: at.Add(51 * time.Hour), Confidence: 0.85},
			"filter_dp_pa is trending up 3.2 per hour (latest 180, trend 178); it is forecast to reach the limit 250 at 2026-11-24 15:00 UTC (2d 3h after the finding), confidence 85 %."},
		{telemetry.Evidence{Detector: "event", Code: "E42"}, "The device reported fault code E42."},
		{telemetry.Evidence{Detector: "offline", For: "10m0s"}, "The device stopped reporting. No reading for 10m0s."},
	} {
		t.Run(tc.ev.Detector, func(t *testing.T) {
			require.Equal(t, tc.want, evidenceText(ticketing.Ticket{LastRaisedAt: at, Evidence: tc.ev}))
		})
	}
}
