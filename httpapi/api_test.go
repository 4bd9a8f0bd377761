package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ticketing"
)

// call sends method path with body (JSON unless contentType says) as tok
// and decodes the answer into out when it is 2xx.
func call(t *testing.T, srv *httptest.Server, method, path, tok, contentType, body string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode >= 400 {
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), "%s", b)
		var p problem
		require.NoError(t, json.Unmarshal(b, &p))
		require.Equal(t, resp.StatusCode, p.Status)
		return resp.StatusCode, p.Detail // the text a client shows
	} else if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
	return resp.StatusCode, string(b)
}

// issue makes a token with role (limited to customer when set).
func issue(t *testing.T, srv *httptest.Server, name string, role ticketing.Role, customer string) string {
	t.Helper()
	var got struct {
		Token  ticketing.Token `json:"token"`
		Secret string          `json:"secret"`
	}
	body := fmt.Sprintf(`{"name": %q, "role": %q, "customer_id": %q}`, name, role, customer)
	status, raw := call(t, srv, http.MethodPost, "/api/v1/tokens", token, "", body, &got)
	require.Equal(t, http.StatusCreated, status, raw)
	require.True(t, strings.HasPrefix(got.Secret, "fw_"))
	require.NotContains(t, raw, ticketing.HashToken(got.Secret), "the answer never holds the stored hash")
	return got.Secret
}

// TestEveryRouteNeedsAToken walks the chi router and calls every route
// without a token: all but /healthz and /readyz must answer 401.
func TestEveryRouteNeedsAToken(t *testing.T) {
	srv, _, svc := newTestServerSvc(t, nil)
	h := NewHandler(Options{Service: svc, AdminToken: token})
	public := map[string]bool{"GET /healthz": true, "GET /readyz": true}
	n := 0
	require.NoError(t, chi.Walk(h.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if isConsoleRoute(route) {
			return nil // cookie sessions, not bearer tokens: TestConsoleRoutesNeedASession
		}
		n++
		path := strings.NewReplacer("{id}", "1").Replace(route)
		for _, tok := range []string{"", "fw_not-a-real-token"} {
			status, body := call(t, srv, method, path, tok, "", "{}", nil)
			if public[method+" "+route] {
				require.Less(t, status, 400, "%s %s is public", method, route)
				continue
			}
			require.Equal(t, http.StatusUnauthorized, status, "%s %s without a valid token: %s", method, route, body)
		}
		return nil
	}))
	require.Greater(t, n, 30, "the walk saw the routes")
}

// TestOpenAPIDocumentsEveryRoute walks the router and finds each route in
// the served document.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	srv, _, svc := newTestServerSvc(t, nil)
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comp    struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	status, raw := call(t, srv, http.MethodGet, "/api/v1/openapi.json", token, "", "", &doc)
	require.Equal(t, http.StatusOK, status, raw)
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."))
	h := NewHandler(Options{Service: svc, AdminToken: token})
	require.NoError(t, chi.Walk(h.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if isConsoleRoute(route) {
			return nil // HTML pages, not the REST API
		}
		op, ok := doc.Paths[route][strings.ToLower(method)]
		require.True(t, ok, "%s %s is not in openapi.json", method, route)
		require.NotEmpty(t, op["summary"], "%s %s has no summary", method, route)
		return nil
	}))
	// Every schema a route names exists.
	for _, ref := range schemaRefs(raw) {
		require.Contains(t, doc.Comp.Schemas, ref)
	}
	for name, keys := range map[string][]string{
		"DeviceImportItem":   {"id", "model", "customer_id", "site", "firmware"},
		"CustomerImportItem": {"id", "name", "tier", "language", "timezone", "quiet_hours", "channels"},
	} {
		props := doc.Comp.Schemas[name].(map[string]any)["properties"].(map[string]any)
		require.Len(t, props, len(keys), name)
		for _, k := range keys {
			require.Contains(t, props, k, name)
		}
	}
	imp := doc.Paths["/api/v1/customers:import"]["post"]["requestBody"].(map[string]any)["content"].(map[string]any)
	require.Contains(t, imp, "text/csv")
	require.Contains(t, imp, "application/json")
	ticket := doc.Comp.Schemas["Ticket"].(map[string]any)["properties"].(map[string]any)
	for _, k := range []string{"id", "device_id", "fault", "severity", "status", "opened_at", "updated_at", "evidence", "due_at", "assignee", "outcome", "incident_id"} {
		require.Contains(t, ticket, k)
	}
}

// schemaRefs returns the schema names the JSON document s refers to.
func schemaRefs(s string) []string {
	var out []string
	for _, part := range strings.Split(s, `"`) {
		if name, ok := strings.CutPrefix(part, "#/components/schemas/"); ok {
			out = append(out, name)
		}
	}
	return out
}

// TestRoles checks each role against a read, a ticket action and a
// registry change.
func TestRoles(t *testing.T) {
	srv, all := newTestServer(t, nil)
	toks := map[string]string{
		"viewer": issue(t, srv, "vic", ticketing.RoleViewer, ""),
		"agent":  issue(t, srv, "ana", ticketing.RoleAgent, ""),
		"admin":  token,
	}
	id := all[0].ID
	tests := []struct {
		role, method, path, body string
		want                     int
	}{
		{"viewer", http.MethodGet, "/api/v1/tickets", "", 200},
		{"viewer", http.MethodPost, fmt.Sprintf("/api/v1/tickets/%d/ack", id), "", 403},
		{"viewer", http.MethodGet, "/api/v1/audit", "", 403},
		{"agent", http.MethodPost, fmt.Sprintf("/api/v1/tickets/%d/ack", id), "", 200},
		{"agent", http.MethodPut, "/api/v1/devices/hp-9", `{"model": "m"}`, 403},
		{"agent", http.MethodPost, "/api/v1/customers:import", `[{"id": "c9"}]`, 403},
		{"admin", http.MethodPost, "/api/v1/customers:import", `[{"id": "c9"}]`, 200},
		{"agent", http.MethodGet, "/api/v1/tokens", "", 403},
		{"admin", http.MethodPut, "/api/v1/devices/hp-9", `{"model": "m"}`, 201},
		{"admin", http.MethodPut, "/api/v1/devices/hp-9", `{"model": "m2"}`, 200},
		{"admin", http.MethodGet, "/api/v1/audit?subject=device:hp-9", "", 200},
		{"admin", http.MethodGet, "/metrics", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.method+" "+tt.path, func(t *testing.T) {
			status, body := call(t, srv, tt.method, tt.path, toks[tt.role], "", tt.body, nil)
			require.Equal(t, tt.want, status, body)
			if tt.want == 403 {
				require.Contains(t, body, "role")
			}
		})
	}
	// The agent's action is audited under the token's name.
	var trail list[ticketing.AuditEntry]
	status, raw := call(t, srv, http.MethodGet, fmt.Sprintf("/api/v1/tickets/%d/audit", id), toks["viewer"], "", "", &trail)
	require.Equal(t, 200, status, raw)
	require.Equal(t, "ana", trail.Items[len(trail.Items)-1].Actor)
	require.Equal(t, "open", trail.Items[len(trail.Items)-1].From)
	require.Equal(t, "acknowledged", trail.Items[len(trail.Items)-1].To)

	// A revoked token stops working at once.
	var toksList list[ticketing.Token]
	_, _ = call(t, srv, http.MethodGet, "/api/v1/tokens", token, "", "", &toksList)
	status, raw = call(t, srv, http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", toksList.Items[0].ID), token, "", "", nil)
	require.Equal(t, http.StatusNoContent, status, raw)
	status, _ = call(t, srv, http.MethodGet, "/api/v1/tickets", toks["viewer"], "", "", nil)
	require.Equal(t, http.StatusUnauthorized, status)
}

// TestTicketActionsAPI walks one ticket through every staff action over
// HTTP and checks validation and conflicts.
func TestTicketActionsAPI(t *testing.T) {
	srv, all := newTestServer(t, nil)
	base := fmt.Sprintf("/api/v1/tickets/%d", all[0].ID)
	steps := []struct {
		path, body string
		want       int
		detail     string // for errors: a fragment naming the field or state
		check      func(t *testing.T, tk ticketing.Ticket)
	}{
		{"/ack", "", 200, "", func(t *testing.T, tk ticketing.Ticket) { require.Equal(t, ticketing.StatusAcknowledged, tk.Status) }},
		{"/ack", "", 409, "already acknowledged", nil},
		{"/assign", `{}`, 400, "assignee: required", nil},
		{"/assign", `{"assignee": 7}`, 400, "assignee: want a string, got number", nil},
		{"/assign", `{"assignee": "bo", "colour": "red"}`, 400, `unknown field "colour"`, nil},
		{"/assign", `{"assignee": "bo"}`, 200, "", func(t *testing.T, tk ticketing.Ticket) { require.Equal(t, "bo", tk.Assignee) }},
		{"/comments", `{"comment": ""}`, 400, "comment: required", nil},
		{"/comments", `{"comment": "called the owner"}`, 201, "", nil},
		{"/severity", `{"severity": "apocalyptic"}`, 400, "severity:", nil},
		{"/severity", `{"severity": "critical"}`, 200, "", func(t *testing.T, tk ticketing.Ticket) {
			require.Equal(t, "critical", tk.Severity.String())
			require.NotNil(t, tk.DueAt)
		}},
		{"/outcome", `{"outcome": "maybe"}`, 400, `outcome: "maybe" is not one of`, nil},
		{"/resolve", `{"outcome": "true_fault", "note": "replaced the pump"}`, 200, "", func(t *testing.T, tk ticketing.Ticket) {
			require.Equal(t, ticketing.StatusResolved, tk.Status)
			require.Equal(t, ticketing.OutcomeTrueFault, tk.Outcome)
		}},
		{"/assign", `{"assignee": "cy"}`, 409, "resolved; reopen it first", nil},
		{"/reopen", "", 200, "", func(t *testing.T, tk ticketing.Ticket) {
			require.Equal(t, ticketing.StatusOpen, tk.Status)
			require.Equal(t, 1, tk.ReopenCount)
		}},
		{"/ack", "{not json", 400, "malformed JSON", nil},
	}
	for i, st := range steps {
		var tk ticketing.Ticket
		status, body := call(t, srv, http.MethodPost, base+st.path, token, "", st.body, &tk)
		require.Equal(t, st.want, status, "step %d %s: %s", i, st.path, body)
		if st.detail != "" {
			require.Contains(t, body, st.detail, "step %d", i)
		}
		if st.check != nil {
			st.check(t, tk)
		}
	}
	status, body := call(t, srv, http.MethodPost, "/api/v1/tickets/999/ack", token, "", "", nil)
	require.Equal(t, http.StatusNotFound, status, body)
}

func TestBodyLimit(t *testing.T) {
	srv, all := newTestServer(t, nil)
	big := `{"comment": "` + strings.Repeat("x", 2<<20) + `"}`
	status, body := call(t, srv, http.MethodPost, fmt.Sprintf("/api/v1/tickets/%d/comments", all[0].ID), token, "", big, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, body)
	require.Contains(t, body, "larger than the limit of 1048576 bytes")
}

// TestRegistryAPI covers customers, devices, import, and a
// customer-scoped token.
func TestRegistryAPI(t *testing.T) {
	srv, _, svc := newTestServerSvc(t, nil)
	customer := `{"name": "Ana", "tier": "premium", "language": "en", "timezone": "Europe/Paris",
		"quiet_hours": {"start": "22:00", "end": "07:00"},
		"channels": [{"type": "webhook", "url": "https://example.com/hook", "secret": "0123456789abcdef0123"}, {"type": "email", "address": "ana@example.com"}, {"type": "mqtt"}]}`
	var c ticketing.Customer
	status, raw := call(t, srv, http.MethodPut, "/api/v1/customers/c1", token, "", customer, &c)
	require.Equal(t, http.StatusCreated, status, raw)
	require.Equal(t, "*****", c.Channels[0].Secret, "secrets are write-only")
	require.NotContains(t, raw, "0123456789abcdef0123")

	for _, tt := range []struct{ body, detail string }{
		{`{"tier": "gold"}`, `tier: "gold" is not one of standard, premium`},
		{`{"channels": [{"type": "email", "address": "nope"}]}`, "channels[0].address"},
		{`{"quiet_hours": {"start": "7pm", "end": "07:00"}}`, "quiet_hours.start"},
		{`{"name": 5}`, "name: want a string"},
	} {
		status, raw = call(t, srv, http.MethodPut, "/api/v1/customers/c2", token, "", tt.body, nil)
		require.Equal(t, http.StatusBadRequest, status, raw)
		require.Contains(t, raw, tt.detail)
	}

	var d ticketing.Device
	status, raw = call(t, srv, http.MethodPut, "/api/v1/devices/hp-1", token, "", `{"model": "heatpump-a2", "customer_id": "c1", "site": "lyon", "firmware": "1.4.2"}`, &d)
	require.Equal(t, http.StatusCreated, status, raw)
	require.Equal(t, ticketing.SourceAPI, d.Source)
	status, raw = call(t, srv, http.MethodPut, "/api/v1/devices/hp-2", token, "", `{"model": "heatpump-a2", "customer_id": "nobody"}`, nil)
	require.Equal(t, http.StatusBadRequest, status, raw)
	require.Contains(t, raw, `customer_id: no customer "nobody"`)
	status, raw = call(t, srv, http.MethodPut, "/api/v1/devices/bad%20id", token, "", `{"model": "m"}`, nil)
	require.Equal(t, http.StatusBadRequest, status, raw)
	require.Contains(t, raw, "id: invalid device id")

	var rep ticketing.ImportReport
	csvDoc := "id,model,customer_id,site\nhp-3,heatpump-a2,c1,lyon\nhp 4,heatpump-a2,c1,lyon\nhp-5,heatpump-a2,c7,lyon\n"
	status, raw = call(t, srv, http.MethodPost, "/api/v1/devices:import", token, "text/csv", csvDoc, &rep)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, 3, rep.Received)
	require.Equal(t, 1, rep.Created)
	require.Equal(t, 2, rep.Rejected)
	require.Equal(t, 3, rep.Errors[0].Row)
	require.Contains(t, rep.Errors[1].Reason, "customer_id")
	status, raw = call(t, srv, http.MethodPost, "/api/v1/devices:import", token, "application/json", `[{"id": "hp-6", "model": "m"}, {"id": "hp-7", "size": 3}]`, &rep)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, 1, rep.Created)
	require.Contains(t, rep.Errors[0].Reason, `unknown field "size"`)
	status, raw = call(t, srv, http.MethodPost, "/api/v1/devices:import", token, "application/xml", `<x/>`, nil)
	require.Equal(t, http.StatusBadRequest, status, raw)
	require.Contains(t, raw, "Content-Type")

	// A customer-scoped token sees its customer's devices and tickets only.
	require.NoError(t, svc.Handle(t.Context(), findingFor("hp-3")))
	scoped := issue(t, srv, "c1-portal", ticketing.RoleViewer, "c1")
	var tickets list[ticketing.Ticket]
	status, raw = call(t, srv, http.MethodGet, "/api/v1/tickets", scoped, "", "", &tickets)
	require.Equal(t, http.StatusOK, status, raw)
	require.Len(t, tickets.Items, 1, "only hp-3's ticket belongs to c1")
	require.Equal(t, "hp-3", tickets.Items[0].DeviceID)
	status, _ = call(t, srv, http.MethodGet, "/api/v1/tickets?customer=c2", scoped, "", "", nil)
	require.Equal(t, http.StatusForbidden, status)
	var all list[ticketing.Ticket]
	_, _ = call(t, srv, http.MethodGet, "/api/v1/tickets?device=hp-2", token, "", "", &all)
	require.NotEmpty(t, all.Items)
	status, _ = call(t, srv, http.MethodGet, fmt.Sprintf("/api/v1/tickets/%d", all.Items[0].ID), scoped, "", "", nil)
	require.Equal(t, http.StatusNotFound, status, "another customer's ticket does not exist for this token")
	var devs list[ticketing.Device]
	status, _ = call(t, srv, http.MethodGet, "/api/v1/devices", scoped, "", "", &devs)
	require.Equal(t, http.StatusOK, status)
	for _, d := range devs.Items {
		require.Equal(t, "c1", d.CustomerID)
	}
	status, _ = call(t, srv, http.MethodGet, "/api/v1/customers/c2", scoped, "", "", nil)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = call(t, srv, http.MethodGet, "/api/v1/incidents", scoped, "", "", nil)
	require.Equal(t, http.StatusForbidden, status, "incidents span customers")

	// The ticket's context carries device, customer and remedy.
	var ctxOut struct {
		Ticket         ticketing.Ticket    `json:"ticket"`
		Device         *ticketing.Device   `json:"device"`
		Customer       *ticketing.Customer `json:"customer"`
		EarlierTickets []ticketing.Ticket  `json:"earlier_tickets"`
		TelemetryError string              `json:"telemetry_error"`
		Remedy         string              `json:"remedy"`
	}
	status, raw = call(t, srv, http.MethodGet, fmt.Sprintf("/api/v1/tickets/%d/context", tickets.Items[0].ID), scoped, "", "", &ctxOut)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, "lyon", ctxOut.Device.Site)
	require.Equal(t, ticketing.TierPremium, ctxOut.Customer.Tier)
	require.Equal(t, "*****", ctxOut.Customer.Channels[0].Secret)
	require.Equal(t, "Check the pump.", ctxOut.Remedy)
	require.Equal(t, "no telemetry source configured", ctxOut.TelemetryError)

	// A customer who owns devices cannot be deleted.
	status, raw = call(t, srv, http.MethodDelete, "/api/v1/customers/c1", token, "", "", nil)
	require.Equal(t, http.StatusConflict, status, raw)
}

// TestCustomerImportAPI imports customers from CSV and JSON with bad rows,
// refuses other media types, requests without a token, and bodies over
// http.max_import_bytes.
func TestCustomerImportAPI(t *testing.T) {
	srv, _, svc := newTestServerSvc(t, nil)
	var rep ticketing.ImportReport
	csvDoc := "id,name,tier,email,mqtt\nc1,Ana,premium,ana@example.com,yes\nc 2,Bo,,,\nc3,Cy,gold,,\nc4,Di,,nope,\n"
	status, raw := call(t, srv, http.MethodPost, "/api/v1/customers:import", token, "text/csv; charset=utf-8", csvDoc, &rep)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, 4, rep.Received)
	require.Equal(t, 1, rep.Created)
	require.Equal(t, 3, rep.Rejected)
	require.Equal(t, []int{3, 4, 5}, []int{rep.Errors[0].Row, rep.Errors[1].Row, rep.Errors[2].Row})
	require.Contains(t, rep.Errors[0].Reason, "id:")
	require.Contains(t, rep.Errors[1].Reason, `tier: "gold"`)
	require.Contains(t, rep.Errors[2].Reason, "channels[0].address")
	var c ticketing.Customer
	status, raw = call(t, srv, http.MethodGet, "/api/v1/customers/c1", token, "", "", &c)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, ticketing.TierPremium, c.Tier)
	require.Equal(t, []ticketing.Channel{{Type: "email", Address: "ana@example.com"}, {Type: "mqtt"}}, c.Channels)

	status, raw = call(t, srv, http.MethodPost, "/api/v1/customers:import", token, "application/json",
		`[{"id": "c1", "name": "Ana B.", "channels": [{"type": "webhook", "url": "https://example.com/h", "secret": "0123456789abcdef"}]}, {"id": "c5", "phone": "1"}]`, &rep)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, 1, rep.Updated)
	require.Equal(t, 1, rep.Rejected)
	require.Equal(t, "c5", rep.Errors[0].ID)
	require.Contains(t, rep.Errors[0].Reason, `unknown field "phone"`)
	status, raw = call(t, srv, http.MethodGet, "/api/v1/customers/c1", token, "", "", &c)
	require.Equal(t, http.StatusOK, status, raw)
	require.Equal(t, "*****", c.Channels[0].Secret, "an imported secret is write-only too")

	for _, tt := range []struct{ contentType, body, detail string }{
		{"application/xml", `<x/>`, "Content-Type"},
		{"text/csv", "id,phone\n", "csv header: unknown column"},
		{"application/json", `{"id": "c1"}`, "want an array of customers"},
	} {
		status, raw = call(t, srv, http.MethodPost, "/api/v1/customers:import", token, tt.contentType, tt.body, nil)
		require.Equal(t, http.StatusBadRequest, status, raw)
		require.Contains(t, raw, tt.detail)
	}
	status, raw = call(t, srv, http.MethodPost, "/api/v1/customers:import", "", "application/json", `[{"id": "c6"}]`, nil)
	require.Equal(t, http.StatusUnauthorized, status, raw)

	// http.max_import_bytes bounds the body; it may exceed max_body_bytes.
	small := httptest.NewServer(NewHandler(Options{Service: svc, AdminToken: token, Limits: Config{MaxBodyBytes: 1024, MaxImportBytes: 4096}}))
	t.Cleanup(small.Close)
	var b strings.Builder
	b.WriteString("id,name\n")
	for i := 0; b.Len() < 3000; i++ {
		fmt.Fprintf(&b, "k%d,Name %d\n", i, i)
	}
	status, raw = call(t, small, http.MethodPost, "/api/v1/customers:import", token, "text/csv", b.String(), &rep)
	require.Equal(t, http.StatusOK, status, "over max_body_bytes, within max_import_bytes: %s", raw)
	require.Zero(t, rep.Rejected)
	require.Positive(t, rep.Created)
	for b.Len() < 5000 {
		b.WriteString("kx,Name\n")
	}
	status, raw = call(t, small, http.MethodPost, "/api/v1/customers:import", token, "text/csv", b.String(), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, raw)
	require.Contains(t, raw, "larger than the limit of 4096 bytes")
}
