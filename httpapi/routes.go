package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

const (
	viewer = ticketing.RoleViewer
	agent  = ticketing.RoleAgent
	admin  = ticketing.RoleAdmin
)

var listParams = []string{"limit", "cursor"}

// routeTable lists every endpoint; NewHandler registers them and
// openapi.json documents them from this table.
func (h *Handler) routeTable() []route {
	ticketAct := func(kind ticketing.ActionKind, summary, body string, status int) route {
		path := map[ticketing.ActionKind]string{ticketing.ActAcknowledge: "ack", ticketing.ActComment: "comments"}[kind]
		if path == "" {
			path = string(kind)
		}
		return route{method: http.MethodPost, pattern: "/api/v1/tickets/{id}/" + path, role: agent, scoped: true, summary: summary,
			body: body, resp: "Ticket", status: status, handle: h.ticketAction(kind)}
	}
	incidentAct := func(kind ticketing.ActionKind, summary, body string, status int) route {
		path := map[ticketing.ActionKind]string{ticketing.ActAcknowledge: "ack", ticketing.ActComment: "comments"}[kind]
		if path == "" {
			path = string(kind)
		}
		return route{method: http.MethodPost, pattern: "/api/v1/incidents/{id}/" + path, role: agent, summary: summary,
			body: body, resp: "IncidentChange", status: status, handle: h.incidentAction(kind)}
	}
	return []route{
		{method: http.MethodGet, pattern: "/healthz", summary: "Liveness: 200 while the process runs.", resp: "Status", status: 200, handle: h.healthz},
		{method: http.MethodGet, pattern: "/readyz", summary: "Readiness: 200 when every dependency answers, else 503.", resp: "Status", status: 200, handle: h.readyz},
		{method: http.MethodGet, pattern: "/metrics", role: viewer, summary: "Prometheus metrics (text exposition format).", status: 200, handle: h.metrics()},
		{method: http.MethodGet, pattern: "/api/v1/openapi.json", role: viewer, scoped: true, summary: "This document.", status: 200, handle: h.openapi},

		{method: http.MethodGet, pattern: "/api/v1/tickets", role: viewer, scoped: true, summary: "List tickets, newest first.",
			query: append([]string{"status", "device", "fault", "severity", "customer", "incident", "assignee", "since"}, listParams...), resp: "TicketList", status: 200, handle: h.listTickets},
		{method: http.MethodGet, pattern: "/api/v1/tickets/{id}", role: viewer, scoped: true, summary: "One ticket with its timeline.", resp: "Ticket", status: 200, handle: h.getTicket},
		{method: http.MethodGet, pattern: "/api/v1/tickets/{id}/audit", role: viewer, scoped: true, summary: "The ticket's audit trail, oldest first.", query: listParams, resp: "AuditList", status: 200, handle: h.ticketAudit},
		{method: http.MethodGet, pattern: "/api/v1/tickets/{id}/context", role: viewer, scoped: true, summary: "Everything needed to act: evidence, device, customer, earlier tickets, recent telemetry, remedy.", resp: "TicketContext", status: 200, handle: h.ticketContext},
		ticketAct(ticketing.ActAcknowledge, "Acknowledge an open ticket.", "Note", 200),
		ticketAct(ticketing.ActAssign, "Assign the ticket (an empty assignee unassigns).", "Assign", 200),
		ticketAct(ticketing.ActComment, "Add a comment to the ticket's audit trail.", "Comment", 201),
		ticketAct(ticketing.ActSeverity, "Change the ticket's severity; its SLA due time follows.", "Severity", 200),
		ticketAct(ticketing.ActResolve, "Resolve the ticket, optionally with an outcome.", "Resolve", 200),
		ticketAct(ticketing.ActReopen, "Reopen a resolved ticket.", "Note", 200),
		ticketAct(ticketing.ActOutcome, "Mark the outcome: true_fault, false_alarm or customer_misuse.", "Outcome", 200),

		{method: http.MethodGet, pattern: "/api/v1/incidents", role: viewer, summary: "List incidents, newest first.", query: append([]string{"status", "fault"}, listParams...), resp: "IncidentList", status: 200, handle: h.listIncidents},
		{method: http.MethodGet, pattern: "/api/v1/incidents/{id}", role: viewer, summary: "One incident; its tickets are GET /api/v1/tickets?incident={id}.", resp: "Incident", status: 200, handle: h.getIncident},
		incidentAct(ticketing.ActAcknowledge, "Acknowledge the incident and its open tickets.", "Note", 200),
		incidentAct(ticketing.ActAssign, "Assign the incident and its open tickets.", "Assign", 200),
		incidentAct(ticketing.ActComment, "Comment on the incident.", "Comment", 201),
		incidentAct(ticketing.ActResolve, "Resolve the incident and its open tickets.", "Resolve", 200),
		incidentAct(ticketing.ActReopen, "Reopen the incident and the tickets its resolve closed.", "Note", 200),
		incidentAct(ticketing.ActOutcome, "Mark the outcome of the incident and its tickets.", "Outcome", 200),

		{method: http.MethodGet, pattern: "/api/v1/devices", role: viewer, scoped: true, summary: "List devices by id.", query: append([]string{"customer", "model", "site"}, listParams...), resp: "DeviceList", status: 200, handle: h.listDevices},
		{method: http.MethodGet, pattern: "/api/v1/devices/{id}", role: viewer, scoped: true, summary: "One device.", resp: "Device", status: 200, handle: h.getDevice},
		{method: http.MethodPut, pattern: "/api/v1/devices/{id}", role: admin, summary: "Create or replace a device (201 created, 200 replaced).", body: "DevicePut", resp: "Device", status: 200, handle: h.putDevice},
		{method: http.MethodDelete, pattern: "/api/v1/devices/{id}", role: admin, summary: "Delete a device from the registry; its tickets stay.", status: 204, handle: h.deleteDevice},
		{method: http.MethodPost, pattern: "/api/v1/devices:import", role: admin, summary: "Bulk import devices from CSV (text/csv) or JSON (application/json); reports rejected rows and why.", body: "DeviceImport", resp: "ImportReport", status: 200, maxBody: h.opts.Limits.MaxImportBytes, handle: h.importDevices},

		{method: http.MethodGet, pattern: "/api/v1/customers", role: viewer, scoped: true, summary: "List customers by id.", query: listParams, resp: "CustomerList", status: 200, handle: h.listCustomers},
		{method: http.MethodGet, pattern: "/api/v1/customers/{id}", role: viewer, scoped: true, summary: "One customer; webhook secrets are masked.", resp: "Customer", status: 200, handle: h.getCustomer},
		{method: http.MethodPut, pattern: "/api/v1/customers/{id}", role: admin, summary: "Create or replace a customer (201 created, 200 replaced).", body: "CustomerPut", resp: "Customer", status: 200, handle: h.putCustomer},
		{method: http.MethodPost, pattern: "/api/v1/customers:import", role: admin, summary: "Bulk import customers from CSV (text/csv) or JSON (application/json); reports rejected rows and why.", body: "CustomerImport", resp: "ImportReport", status: 200, maxBody: h.opts.Limits.MaxImportBytes, handle: h.importCustomers},
		{method: http.MethodDelete, pattern: "/api/v1/customers/{id}", role: admin, summary: "Delete a customer who owns no devices or tokens.", status: 204, handle: h.deleteCustomer},

		{method: http.MethodGet, pattern: "/api/v1/notifications", role: viewer, scoped: true, summary: "Customer and staff notifications (the outbox), newest first, each with its delivery attempts.",
			query: append([]string{"status", "ticket", "customer"}, listParams...), resp: "NotificationList", status: 200, handle: h.listNotifications},
		{method: http.MethodGet, pattern: "/api/v1/notifications/{id}", role: viewer, scoped: true, summary: "One notification with every delivery attempt (time, channel, outcome, error).", resp: "Notification", status: 200, handle: h.getNotification},
		{method: http.MethodPost, pattern: "/api/v1/notifications/{id}/retry", role: agent, summary: "Send a dead-lettered notification again (409 unless it is dead).", body: "Note", resp: "Notification", status: 200, handle: h.retryNotification},

		{method: http.MethodGet, pattern: "/api/v1/audit", role: admin, summary: "The audit trail, oldest first.", query: append([]string{"ticket", "incident", "subject", "actor", "since"}, listParams...), resp: "AuditList", status: 200, handle: h.listAudit},
		{method: http.MethodGet, pattern: "/api/v1/tokens", role: admin, summary: "List API tokens (never their secrets).", resp: "TokenList", status: 200, handle: h.listTokens},
		{method: http.MethodPost, pattern: "/api/v1/tokens", role: admin, summary: "Issue an API token; the secret is in this answer only.", body: "TokenPost", resp: "IssuedToken", status: 201, handle: h.issueToken},
		{method: http.MethodDelete, pattern: "/api/v1/tokens/{id}", role: admin, summary: "Revoke an API token.", status: 204, handle: h.revokeToken},
	}
}

// list is the shape of every list response.
type list[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// query parses the query string and refuses parameters not in allowed: a
// misspelt filter silently ignored would return everything.
func query(r *http.Request, allowed []string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed query string: %w", errBadRequest, err)
	}
	for k := range q {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("%w: unknown query parameter %q; supported: %s", errBadRequest, k, strings.Join(allowed, ", "))
		}
	}
	return q, nil
}

func limitParam(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > ticketing.MaxLimit {
		return 0, fmt.Errorf("%w: limit %q: want 1..%d", errBadRequest, s, ticketing.MaxLimit)
	}
	return n, nil
}

func int64Param(name, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: %s %q is not a positive integer", errBadRequest, name, s)
	}
	return n, nil
}

func sinceParam(q url.Values) (time.Time, error) {
	s := q.Get("since")
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: since %q: want an RFC 3339 time such as 2026-11-22T15:30:00Z", errBadRequest, s)
	}
	return t, nil
}

// decode reads a JSON body into v strictly: one object, no unknown
// fields. An empty body leaves v as it is when optional. Errors name the
// field.
func decode(r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err // *http.MaxBytesError maps to 413
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if optional {
			return nil
		}
		return fmt.Errorf("%w: body: want a JSON object", errBadRequest)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return fmt.Errorf("%w: %s: want a %s, got %s", errBadRequest, te.Field, jsonType(te.Type.String()), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("%w: %s", errBadRequest, strings.TrimPrefix(err.Error(), "json: "))
		}
		return fmt.Errorf("%w: body: malformed JSON: %s", errBadRequest, strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return fmt.Errorf("%w: body: data after the JSON object", errBadRequest)
	}
	return nil
}

func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "bool":
		return "boolean"
	case goType == "string", strings.HasSuffix(goType, "Tier"), strings.HasSuffix(goType, "Role"), strings.HasSuffix(goType, "Outcome"):
		return "string"
	}
	return "object"
}

// scope checks that a customer-scoped caller may see an object of owner.
func scope(r *http.Request, owner, what string) error {
	p := principalOf(r)
	if p.customer != "" && p.customer != owner {
		return fmt.Errorf("%s: %w", what, ticketing.ErrNotFound) // do not reveal that it exists
	}
	return nil
}

func (h *Handler) listTickets(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, h.route(r).query)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	f := ticketing.Filter{Status: ticketing.Status(q.Get("status")), DeviceID: q.Get("device"), Fault: q.Get("fault"),
		CustomerID: q.Get("customer"), Assignee: q.Get("assignee"), Cursor: q.Get("cursor")}
	if f.Status != "" && !f.Status.Valid() {
		writeError(h.log, w, r, fmt.Errorf("%w: status %q: want open, acknowledged or resolved", errBadRequest, f.Status))
		return
	}
	if s := q.Get("severity"); s != "" {
		if f.Severity, err = telemetry.ParseSeverity(s); err != nil {
			writeError(h.log, w, r, fmt.Errorf("%w: severity: %w", errBadRequest, err))
			return
		}
	}
	if s := q.Get("incident"); s != "" {
		if f.IncidentID, err = int64Param("incident", s); err != nil {
			writeError(h.log, w, r, err)
			return
		}
	}
	if f.Since, err = sinceParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	if f.Limit, err = limitParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	if f.CustomerID, err = scopeCustomer(r, f.CustomerID); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	items, next, err := h.store.ListTickets(r.Context(), f)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.Ticket]{Items: items, Next: next})
}

// scopeCustomer applies a customer-scoped token to a list's customer
// filter: such a token lists its own customer only, whatever was asked;
// asking for another customer is forbidden. Other tokens keep the filter.
func scopeCustomer(r *http.Request, asked string) (string, error) {
	p := principalOf(r)
	switch {
	case p.customer == "":
		return asked, nil
	case asked != "" && asked != p.customer:
		return "", fmt.Errorf("%w: customer: this token sees customer %s only", errForbidden, p.customer)
	}
	return p.customer, nil
}

// route returns the route of r, for its documented query parameters.
func (h *Handler) route(r *http.Request) route {
	pattern := chi.RouteContext(r.Context()).RoutePattern()
	for _, rt := range h.routes {
		if rt.pattern == pattern && rt.method == r.Method {
			return rt
		}
	}
	return route{}
}

// ticket reads the ticket named by the path, within the caller's scope.
func (h *Handler) ticket(r *http.Request) (ticketing.Ticket, error) {
	id, err := int64Param("ticket id", chi.URLParam(r, "id"))
	if err != nil {
		return ticketing.Ticket{}, err
	}
	t, err := h.store.GetTicket(r.Context(), id)
	if err != nil {
		return ticketing.Ticket{}, err
	}
	if err := scope(r, t.CustomerID, fmt.Sprintf("get ticket %d", id)); err != nil {
		return ticketing.Ticket{}, err
	}
	return t, nil
}

func (h *Handler) getTicket(w http.ResponseWriter, r *http.Request) {
	t, err := h.ticket(r)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (h *Handler) ticketAudit(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, listParams)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	t, err := h.ticket(r)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	limit, err := limitParam(q)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	items, next, err := h.store.ListAudit(r.Context(), ticketing.AuditFilter{TicketID: t.ID, Limit: limit, Cursor: q.Get("cursor")})
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.AuditEntry]{Items: items, Next: next})
}

// actionBody is the body of every ticket and incident action; each action
// reads its own fields and refuses none (DisallowUnknownFields still
// catches misspellings).
type actionBody struct {
	Assignee *string `json:"assignee"`
	Comment  string  `json:"comment"`
	Severity string  `json:"severity"`
	Outcome  string  `json:"outcome"`
	Note     string  `json:"note"`
}

func actionFrom(r *http.Request, kind ticketing.ActionKind) (ticketing.Action, error) {
	var b actionBody
	optional := kind == ticketing.ActAcknowledge || kind == ticketing.ActReopen || kind == ticketing.ActResolve
	if err := decode(r, &b, optional); err != nil {
		return ticketing.Action{}, err
	}
	a := ticketing.Action{Kind: kind, Actor: principalOf(r).name, Comment: b.Comment, Outcome: ticketing.Outcome(b.Outcome), Note: b.Note}
	if kind == ticketing.ActAssign {
		if b.Assignee == nil {
			return a, fmt.Errorf("%w: assignee: required (\"\" unassigns)", errBadRequest)
		}
		a.Assignee = *b.Assignee
	}
	if kind == ticketing.ActSeverity {
		sev, err := telemetry.ParseSeverity(b.Severity)
		if err != nil {
			return a, fmt.Errorf("%w: severity: %w", errBadRequest, err)
		}
		a.Severity = sev
	}
	return a, nil
}

func (h *Handler) ticketAction(kind ticketing.ActionKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := h.ticket(r)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		a, err := actionFrom(r, kind)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		t, err = h.svc.ApplyTicket(r.Context(), t.ID, a)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		status := http.StatusOK
		if kind == ticketing.ActComment {
			status = http.StatusCreated
		}
		writeJSON(w, status, t)
	}
}

func (h *Handler) ticketContext(w http.ResponseWriter, r *http.Request) {
	t, err := h.ticket(r)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	out := ticketContext{Ticket: t, Evidence: t.Evidence, Remedy: t.Remedy, EarlierTickets: []ticketing.Ticket{}}
	if d, err := h.store.GetDevice(r.Context(), t.DeviceID); err == nil {
		out.Device = &d
	} else if !errors.Is(err, ticketing.ErrNotFound) {
		writeError(h.log, w, r, err)
		return
	}
	owner := t.CustomerID
	if owner == "" && out.Device != nil {
		owner = out.Device.CustomerID
	}
	if owner != "" {
		if c, err := h.store.GetCustomer(r.Context(), owner); err == nil {
			c = maskSecrets(c)
			out.Customer = &c
		} else if !errors.Is(err, ticketing.ErrNotFound) {
			writeError(h.log, w, r, err)
			return
		}
	}
	earlier, _, err := h.store.ListTickets(r.Context(), ticketing.Filter{DeviceID: t.DeviceID, Limit: 11})
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	for _, e := range earlier {
		if e.ID != t.ID && len(out.EarlierTickets) < 10 {
			out.EarlierTickets = append(out.EarlierTickets, e)
		}
	}
	if h.opts.Telemetry != nil {
		ctx, cancel := contextWithTimeout(r, 3*time.Second)
		defer cancel()
		sum, err := h.opts.Telemetry.Summarize(ctx, t.DeviceID, t.LastRaisedAt.Add(-24*time.Hour))
		if err != nil {
			out.TelemetryError = err.Error()
		} else {
			out.Telemetry = sum
		}
	} else {
		out.TelemetryError = "no telemetry source configured"
	}
	writeJSON(w, http.StatusOK, out)
}

// ticketContext is what staff need to act on a ticket without asking the
// customer again (DESIGN "Tickets").
type ticketContext struct {
	Ticket         ticketing.Ticket    `json:"ticket"`
	Evidence       telemetry.Evidence  `json:"evidence"`
	Device         *ticketing.Device   `json:"device"`
	Customer       *ticketing.Customer `json:"customer"`
	EarlierTickets []ticketing.Ticket  `json:"earlier_tickets"` // the device's other tickets, newest first, at most 10
	Telemetry      any                 `json:"telemetry"`       // the last 24 h before the latest raise
	TelemetryError string              `json:"telemetry_error,omitempty"`
	Remedy         string              `json:"remedy"`
}

func (h *Handler) listIncidents(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, h.route(r).query)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	f := ticketing.IncidentFilter{Status: ticketing.Status(q.Get("status")), Fault: q.Get("fault"), Cursor: q.Get("cursor")}
	if f.Limit, err = limitParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	items, next, err := h.store.ListIncidents(r.Context(), f)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.Incident]{Items: items, Next: next})
}

func (h *Handler) getIncident(w http.ResponseWriter, r *http.Request) {
	id, err := int64Param("incident id", chi.URLParam(r, "id"))
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	in, err := h.store.GetIncident(r.Context(), id)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (h *Handler) incidentAction(kind ticketing.ActionKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := int64Param("incident id", chi.URLParam(r, "id"))
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		a, err := actionFrom(r, kind)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		in, changed, err := h.svc.ApplyIncident(r.Context(), id, a)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		if changed == nil {
			changed = []int64{}
		}
		status := http.StatusOK
		if kind == ticketing.ActComment {
			status = http.StatusCreated
		}
		writeJSON(w, status, map[string]any{"incident": in, "changed_tickets": changed})
	}
}

func (h *Handler) listDevices(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, h.route(r).query)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	f := ticketing.DeviceFilter{CustomerID: q.Get("customer"), Model: q.Get("model"), Site: q.Get("site"), Cursor: q.Get("cursor")}
	if f.Limit, err = limitParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	if f.CustomerID, err = scopeCustomer(r, f.CustomerID); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	items, next, err := h.store.ListDevices(r.Context(), f)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.Device]{Items: items, Next: next})
}

func (h *Handler) getDevice(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	d, err := h.store.GetDevice(r.Context(), id)
	if err == nil {
		err = scope(r, d.CustomerID, "get device "+id)
	}
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// devicePut is the PUT /devices/{id} body (DESIGN "Registry shapes").
type devicePut struct {
	Model      string `json:"model"`
	CustomerID string `json:"customer_id"`
	Site       string `json:"site"`
	Firmware   string `json:"firmware"`
}

func (h *Handler) putDevice(w http.ResponseWriter, r *http.Request) {
	var b devicePut
	if err := decode(r, &b, false); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	d, created, err := h.svc.PutDevice(r.Context(), ticketing.Device{ID: chi.URLParam(r, "id"), Model: b.Model,
		CustomerID: b.CustomerID, Site: b.Site, Firmware: b.Firmware}, principalOf(r).name)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, createdStatus(created), d)
}

func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (h *Handler) deleteDevice(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteDevice(r.Context(), chi.URLParam(r, "id"), principalOf(r).name); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) importDevices(w http.ResponseWriter, r *http.Request) {
	bulkImport(h, w, r, ticketing.ParseDevicesCSV, ticketing.ParseDevicesJSON, h.svc.ImportDevices)
}

func (h *Handler) importCustomers(w http.ResponseWriter, r *http.Request) {
	bulkImport(h, w, r, ticketing.ParseCustomersCSV, ticketing.ParseCustomersJSON, h.svc.ImportCustomers)
}

// bulkImport parses the body by its Content-Type (text/csv or
// application/json) and imports the rows, answering the ImportReport.
func bulkImport[Row any](h *Handler, w http.ResponseWriter, r *http.Request,
	parseCSV, parseJSON func(io.Reader) ([]Row, []ticketing.RowError, error),
	imp func(context.Context, []Row, []ticketing.RowError, string) (ticketing.ImportReport, error),
) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		rows []Row
		bad  []ticketing.RowError
		err  error
	)
	switch mt {
	case "text/csv":
		rows, bad, err = parseCSV(r.Body)
	case "application/json":
		rows, bad, err = parseJSON(r.Body)
	default:
		err = fmt.Errorf("%w: Content-Type: want text/csv or application/json, got %q", errBadRequest, mt)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = tooLarge
		}
		writeError(h.log, w, r, err)
		return
	}
	rep, err := imp(r.Context(), rows, bad, principalOf(r).name)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// maskSecrets replaces webhook secrets with "*****": they are write-only.
func maskSecrets(c ticketing.Customer) ticketing.Customer {
	chs := make([]ticketing.Channel, len(c.Channels))
	for i, ch := range c.Channels {
		if ch.Secret != "" {
			ch.Secret = "*****"
		}
		chs[i] = ch
	}
	c.Channels = chs
	return c
}

func (h *Handler) listCustomers(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, listParams)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	limit, err := limitParam(q)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	var items []ticketing.Customer
	next := ""
	if p := principalOf(r); p.customer != "" {
		c, err := h.store.GetCustomer(r.Context(), p.customer)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		items = []ticketing.Customer{c}
	} else if items, next, err = h.store.ListCustomers(r.Context(), limit, q.Get("cursor")); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	for i := range items {
		items[i] = maskSecrets(items[i])
	}
	writeJSON(w, http.StatusOK, list[ticketing.Customer]{Items: items, Next: next})
}

func (h *Handler) getCustomer(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	err := scope(r, id, "get customer "+id)
	var c ticketing.Customer
	if err == nil {
		c, err = h.store.GetCustomer(r.Context(), id)
	}
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, maskSecrets(c))
}

// customerPut is the PUT /customers/{id} body (DESIGN "Registry shapes").
type customerPut struct {
	Name       string                `json:"name"`
	Tier       ticketing.Tier        `json:"tier"`
	Language   string                `json:"language"`
	Timezone   string                `json:"timezone"`
	QuietHours *ticketing.QuietHours `json:"quiet_hours"`
	Channels   []ticketing.Channel   `json:"channels"`
}

func (h *Handler) putCustomer(w http.ResponseWriter, r *http.Request) {
	var b customerPut
	if err := decode(r, &b, false); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	c, created, err := h.svc.PutCustomer(r.Context(), ticketing.Customer{ID: chi.URLParam(r, "id"), Name: b.Name, Tier: b.Tier,
		Language: b.Language, Timezone: b.Timezone, QuietHours: b.QuietHours, Channels: b.Channels}, principalOf(r).name)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, createdStatus(created), maskSecrets(c))
}

func (h *Handler) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteCustomer(r.Context(), chi.URLParam(r, "id"), principalOf(r).name); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, h.route(r).query)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	f := ticketing.AuditFilter{Subject: q.Get("subject"), Actor: q.Get("actor"), Cursor: q.Get("cursor")}
	if s := q.Get("ticket"); s != "" {
		if f.TicketID, err = int64Param("ticket", s); err != nil {
			writeError(h.log, w, r, err)
			return
		}
	}
	if s := q.Get("incident"); s != "" {
		if f.IncidentID, err = int64Param("incident", s); err != nil {
			writeError(h.log, w, r, err)
			return
		}
	}
	if f.Since, err = sinceParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	if f.Limit, err = limitParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	items, next, err := h.store.ListAudit(r.Context(), f)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.AuditEntry]{Items: items, Next: next})
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) {
	items, err := h.store.ListTokens(r.Context())
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.Token]{Items: items})
}

// tokenPost is the POST /tokens body.
type tokenPost struct {
	Name       string         `json:"name"`
	Role       ticketing.Role `json:"role"`
	CustomerID string         `json:"customer_id"`
}

func (h *Handler) issueToken(w http.ResponseWriter, r *http.Request) {
	var b tokenPost
	if err := decode(r, &b, false); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	t, secret, err := h.svc.IssueToken(r.Context(), b.Name, b.Role, b.CustomerID, principalOf(r).name)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": secret})
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, err := int64Param("token id", chi.URLParam(r, "id"))
	if err == nil {
		err = h.svc.RevokeToken(r.Context(), id, principalOf(r).name)
	}
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) listNotifications(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, h.route(r).query)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	f := ticketing.NotificationFilter{Status: ticketing.NotificationStatus(q.Get("status")), CustomerID: q.Get("customer"), Cursor: q.Get("cursor")}
	if f.Status != "" && !f.Status.Valid() {
		writeError(h.log, w, r, fmt.Errorf("%w: status %q: want pending, delivered, dead, suppressed or digested", errBadRequest, f.Status))
		return
	}
	if s := q.Get("ticket"); s != "" {
		if f.TicketID, err = int64Param("ticket", s); err != nil {
			writeError(h.log, w, r, err)
			return
		}
	}
	if f.Limit, err = limitParam(q); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	if f.CustomerID, err = scopeCustomer(r, f.CustomerID); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	items, next, err := h.store.ListNotifications(r.Context(), f)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[ticketing.Notification]{Items: items, Next: next})
}

func (h *Handler) getNotification(w http.ResponseWriter, r *http.Request) {
	id, err := int64Param("notification id", chi.URLParam(r, "id"))
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	n, err := h.store.GetNotification(r.Context(), id)
	if err == nil {
		err = scope(r, n.CustomerID, fmt.Sprintf("get notification %d", id))
	}
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (h *Handler) retryNotification(w http.ResponseWriter, r *http.Request) {
	id, err := int64Param("notification id", chi.URLParam(r, "id"))
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	var b struct {
		Note string `json:"note"`
	}
	if err := decode(r, &b, true); err != nil {
		writeError(h.log, w, r, err)
		return
	}
	n, err := h.svc.RetryNotification(r.Context(), id, principalOf(r).name)
	if err != nil {
		writeError(h.log, w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}
