package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"math"
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

// queuePageSize is the number of tickets per queue page.
const queuePageSize = 50

// chartMaxPoints bounds the points the ticket chart draws.
const chartMaxPoints = 600

// consoleFuncs are the helpers the templates use.
func consoleFuncs() template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"whenp": func(t *time.Time) string {
			if t == nil {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"dur": humanDuration,
		"pct": func(n, d int) string {
			if d == 0 {
				return "—"
			}
			return strconv.FormatFloat(100*float64(n)/float64(d), 'f', 1, 64) + " %"
		},
		"rate": func(r float64) string {
			if r < 0 {
				return "not judged yet"
			}
			return strconv.FormatFloat(100*r, 'f', 1, 64) + " %"
		},
		"evidence": evidenceText,
		"severities": func() []telemetry.Severity {
			return []telemetry.Severity{telemetry.SeverityCritical, telemetry.SeverityMajor, telemetry.SeverityMinor, telemetry.SeverityInfo}
		},
		"outcomes": func() []ticketing.Outcome {
			return []ticketing.Outcome{ticketing.OutcomeTrueFault, ticketing.OutcomeFalseAlarm, ticketing.OutcomeCustomerMisuse}
		},
		"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
		"deref": func(b *bool) bool { return b != nil && *b },
		"minus": func(a, b int) int { return a - b },
		"dict": func(kv ...any) map[string]any {
			m := make(map[string]any, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
	}
}

// parsePages parses each page with the shared layout and partials.
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(consoleFuncs()).ParseFS(webFS, "web/templates/layout.html", "web/templates/partials.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "error", "queue", "ticket", "incidents", "incident", "fleet", "kpis"} {
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(webFS, "web/templates/"+name+".html"))
	}
	return pages
}

// humanDuration says d in the two largest units: "2d 3h", "4h 10m", "45s".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, d := d/time.Hour, d%time.Hour
	mins, secs := d/time.Minute, (d%time.Minute)/time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, secs)
	}
	return fmt.Sprintf("%ds", secs)
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// evidenceText says in words what decided a ticket's latest raise.
func evidenceText(t ticketing.Ticket) string {
	ev := t.Evidence
	metric := ev.Metric
	var b strings.Builder
	switch ev.Detector {
	case "forecast", "usage":
		fmt.Fprintf(&b, "%s is trending %s %s per hour (latest %s, trend %s); it is forecast to reach the limit %s",
			metric, map[bool]string{true: "up", false: "down"}[ev.Score >= 0], num(math.Abs(ev.Score)), num(ev.Value), num(ev.Expected), num(ev.Limit))
		if !ev.CrossAt.IsZero() {
			fmt.Fprintf(&b, " at %s (%s after the finding)", ev.CrossAt.UTC().Format("2006-01-02 15:04 UTC"), humanDuration(ev.CrossAt.Sub(t.LastRaisedAt)))
		}
		if ev.Confidence > 0 {
			fmt.Fprintf(&b, ", confidence %.0f %%", 100*ev.Confidence)
		}
		b.WriteString(".")
	case "offline":
		b.WriteString("The device stopped reporting.")
		if ev.For != "" {
			fmt.Fprintf(&b, " No reading for %s.", ev.For)
		}
	case "event":
		fmt.Fprintf(&b, "The device reported fault code %s.", ev.Code)
	case "anomaly":
		fmt.Fprintf(&b, "%s was %s where about %s (± %s) was expected: a z-score of %s.", metric, num(ev.Value), num(ev.Expected), num(ev.Spread), num(ev.Score))
	case "rate":
		fmt.Fprintf(&b, "%s changed by %s per unit of time, beyond the limit of %s.", metric, num(ev.Score), num(ev.Limit))
	case "flatline":
		fmt.Fprintf(&b, "%s stayed at about %s (spread %s) for %s: the sensor may be stuck.", metric, num(ev.Value), num(ev.Spread), ev.Window)
	default:
		op := ev.Op
		if op == "" {
			op = "past"
		}
		fmt.Fprintf(&b, "%s was %s, %s the limit of %s", metric, num(ev.Value), op, num(ev.Limit))
		if ev.For != "" {
			fmt.Fprintf(&b, " for at least %s", ev.For)
		}
		if !ev.Since.IsZero() {
			fmt.Fprintf(&b, " (since %s", ev.Since.UTC().Format("2006-01-02 15:04:05 UTC"))
			if ev.Samples > 0 {
				fmt.Fprintf(&b, ", %d readings", ev.Samples)
			}
			b.WriteString(")")
		}
		b.WriteString(".")
	}
	if ev.Note != "" {
		b.WriteString(" " + ev.Note)
	}
	return b.String()
}

// --- queue

// queueRow is one ticket of the queue with its SLA state at render time.
type queueRow struct {
	ticketing.Ticket
	DueText string
	Overdue bool
}

type queueData struct {
	page
	F        queueForm
	Rows     []queueRow
	Counts   ticketing.QueueCounts
	PageNo   int
	PrevURL  string
	NextURL  string
	LiveURL  string
	Statuses []ticketing.Status
	History  bool // resolved tickets: newest first, no live counts
}

// queueForm is the queue's filter form, as submitted.
type queueForm struct {
	Status, Severity, Fault, Model, Customer, Incident string
}

func (c *console) queueFilter(r *http.Request) (ticketing.QueueFilter, queueForm, int, error) {
	q := r.URL.Query()
	form := queueForm{Status: q.Get("status"), Severity: q.Get("severity"), Fault: strings.TrimSpace(q.Get("fault")),
		Model: strings.TrimSpace(q.Get("model")), Customer: strings.TrimSpace(q.Get("customer")), Incident: strings.TrimSpace(q.Get("incident"))}
	f := ticketing.QueueFilter{Status: ticketing.Status(form.Status), Fault: form.Fault, Model: form.Model, CustomerID: form.Customer, Limit: queuePageSize}
	if form.Severity != "" {
		sev, err := telemetry.ParseSeverity(form.Severity)
		if err != nil {
			return f, form, 0, fmt.Errorf("%w: severity: %w", errBadRequest, err)
		}
		f.Severity = sev
	}
	if form.Incident != "" {
		id, err := int64Param("incident", form.Incident)
		if err != nil {
			return f, form, 0, err
		}
		f.IncidentID = id
	}
	pageNo := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			return f, form, 0, fmt.Errorf("%w: page: want 1..10000", errBadRequest)
		}
		pageNo = n
	}
	f.Offset = (pageNo - 1) * queuePageSize
	return f, form, pageNo, nil
}

func (c *console) queueRows(items []ticketing.Ticket) []queueRow {
	now := c.now()
	rows := make([]queueRow, len(items))
	for i, t := range items {
		rows[i] = queueRow{Ticket: t}
		if t.DueAt != nil && t.Status != ticketing.StatusResolved {
			d := t.DueAt.Sub(now)
			rows[i].Overdue = d < 0
			if d < 0 {
				rows[i].DueText = "overdue " + humanDuration(d)
			} else {
				rows[i].DueText = "due in " + humanDuration(d)
			}
		}
	}
	return rows
}

func (c *console) queueData(r *http.Request) (queueData, error) {
	f, form, pageNo, err := c.queueFilter(r)
	if err != nil {
		return queueData{}, err
	}
	items, more, err := c.h.store.Queue(r.Context(), f)
	if err != nil {
		return queueData{}, err
	}
	var counts ticketing.QueueCounts
	history := f.Status == ticketing.StatusResolved // history: newest first, not counted
	if !history {
		if counts, err = c.h.store.CountQueue(r.Context(), f, c.now()); err != nil {
			return queueData{}, err
		}
	}
	d := queueData{page: c.page(r, "Queue", "queue"), F: form, Rows: c.queueRows(items), Counts: counts, PageNo: pageNo, History: history,
		Statuses: []ticketing.Status{ticketing.StatusOpen, ticketing.StatusAcknowledged, ticketing.StatusResolved}}
	link := func(p int) string {
		q := r.URL.Query()
		q.Del("page")
		if p > 1 {
			q.Set("page", strconv.Itoa(p))
		}
		if len(q) == 0 {
			return consolePrefix + "/queue"
		}
		return consolePrefix + "/queue?" + q.Encode()
	}
	if pageNo > 1 {
		d.PrevURL = link(pageNo - 1)
	}
	if more {
		d.NextURL = link(pageNo + 1)
	}
	lq := r.URL.Query()
	d.LiveURL = consolePrefix + "/queue/live"
	if len(lq) > 0 {
		d.LiveURL += "?" + lq.Encode()
	}
	return d, nil
}

func (c *console) queue(w http.ResponseWriter, r *http.Request) {
	d, err := c.queueData(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "queue", d)
}

// queueLive answers the queue's rows and counts as HTML fragments in JSON,
// for the page's script to swap in: new tickets appear without a reload.
func (c *console) queueLive(w http.ResponseWriter, r *http.Request) {
	d, err := c.queueData(r)
	if err != nil {
		status, detail, _ := errorStatus(err)
		http.Error(w, detail, status)
		return
	}
	t := c.pages["queue"]
	var rows, counts bytes.Buffer
	if err := t.ExecuteTemplate(&rows, "queue-rows", d); err != nil {
		c.fail(w, r, err)
		return
	}
	if err := t.ExecuteTemplate(&counts, "queue-counts", d); err != nil {
		c.fail(w, r, err)
		return
	}
	ids := make([]int64, len(d.Rows))
	for i, row := range d.Rows {
		ids[i] = row.ID
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows.String(), "counts": counts.String(), "ids": ids, "total": d.Counts.Total})
}

// --- ticket

// timelineItem is one line of a ticket's timeline.
type timelineItem struct {
	At    time.Time
	Kind  string // raised, cleared, action, notification
	Title string
	Text  string
	Who   string
}

type ticketData struct {
	page
	T             ticketing.Ticket
	Evidence      string
	Chart         template.HTML
	Device        *ticketing.Device
	Customer      *ticketing.Customer
	Earlier       []ticketing.Ticket
	Timeline      []timelineItem
	Notifications string // a note when none can be listed
	Incident      *ticketing.Incident
	DueText       string
	Overdue       bool
	PreferredChan string
}

func (c *console) ticketByID(r *http.Request) (ticketing.Ticket, error) {
	id, err := int64Param("ticket id", chi.URLParam(r, "id"))
	if err != nil {
		return ticketing.Ticket{}, err
	}
	return c.h.store.GetTicket(r.Context(), id)
}

func (c *console) ticket(w http.ResponseWriter, r *http.Request) {
	t, err := c.ticketByID(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	ctx := r.Context()
	d := ticketData{page: c.page(r, fmt.Sprintf("#%d %s on %s", t.ID, strings.ReplaceAll(t.Fault, "_", " "), t.DeviceID), "queue"),
		T: t, Evidence: evidenceText(t)}
	if rows := c.queueRows([]ticketing.Ticket{t}); rows[0].DueText != "" {
		d.DueText, d.Overdue = rows[0].DueText, rows[0].Overdue
	}
	if dev, err := c.h.store.GetDevice(ctx, t.DeviceID); err == nil {
		d.Device = &dev
	} else if !errors.Is(err, ticketing.ErrNotFound) {
		c.fail(w, r, err)
		return
	}
	owner := t.CustomerID
	if owner == "" && d.Device != nil {
		owner = d.Device.CustomerID
	}
	if owner != "" {
		if cu, err := c.h.store.GetCustomer(ctx, owner); err == nil {
			cu = maskSecrets(cu)
			d.Customer = &cu
			if len(cu.Channels) > 0 {
				d.PreferredChan = cu.Channels[0].Type
			}
		} else if !errors.Is(err, ticketing.ErrNotFound) {
			c.fail(w, r, err)
			return
		}
	}
	if t.IncidentID != 0 {
		if in, err := c.h.store.GetIncident(ctx, t.IncidentID); err == nil {
			d.Incident = &in
		}
	}
	earlier, _, err := c.h.store.ListTickets(ctx, ticketing.Filter{DeviceID: t.DeviceID, Limit: 11})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for _, e := range earlier {
		if e.ID != t.ID && len(d.Earlier) < 10 {
			d.Earlier = append(d.Earlier, e)
		}
	}
	audit, _, err := c.h.store.ListAudit(ctx, ticketing.AuditFilter{TicketID: t.ID, Limit: ticketing.MaxLimit})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d.Timeline = timeline(t, audit)
	if c.h.opts.Notifications == nil {
		d.Notifications = "No notifications recorded (no notification store is connected)."
	} else if ns, err := c.h.opts.Notifications.TicketNotifications(ctx, t.ID); err != nil {
		c.log.Warn("list notifications of a ticket failed", "ticket_id", t.ID, "err", err)
		d.Notifications = "Notifications could not be read: " + err.Error()
	} else {
		for _, n := range ns {
			text := n.Channel
			if n.Recipient != "" {
				text += " to " + n.Recipient
			}
			text += ": " + n.Status
			if n.Attempts > 0 {
				text += fmt.Sprintf(" after %d attempt(s)", n.Attempts)
			}
			if n.LastError != "" {
				text += " (last error: " + n.LastError + ")"
			}
			d.Timeline = append(d.Timeline, timelineItem{At: n.At, Kind: "notification", Title: "Notification " + n.Event, Text: text})
		}
		if len(ns) == 0 {
			d.Notifications = "No notifications were sent for this ticket."
		}
		slices.SortStableFunc(d.Timeline, func(a, b timelineItem) int { return a.At.Compare(b.At) })
	}
	d.Chart = c.chart(r, t)
	c.render(w, r, http.StatusOK, "ticket", d)
}

// timeline merges the ticket's raises and clears with its audit trail.
func timeline(t ticketing.Ticket, audit []ticketing.AuditEntry) []timelineItem {
	items := make([]timelineItem, 0, len(t.Timeline)+len(audit))
	for _, e := range t.Timeline {
		it := timelineItem{At: e.At, Kind: e.Kind, Who: ticketing.SystemActor}
		if e.Kind == ticketing.EventRaised {
			it.Title = "Raised (" + e.Severity.String() + ")"
		} else {
			it.Title = "Cleared"
		}
		it.Text = evidenceText(ticketing.Ticket{Evidence: e.Evidence, LastRaisedAt: e.At})
		items = append(items, it)
	}
	for _, a := range audit {
		it := timelineItem{At: a.At, Kind: "action", Who: a.Actor}
		switch a.Action {
		case ticketing.ActionComment:
			it.Title, it.Text = "Comment", a.To
		case ticketing.ActionOpen:
			it.Title, it.Text = "Opened", a.Note
		default:
			it.Title = strings.ToUpper(a.Action[:1]) + a.Action[1:]
			switch {
			case a.From != "" && a.To != "":
				it.Text = a.From + " → " + a.To
			case a.To != "":
				it.Text = a.To
			case a.From != "":
				it.Text = "was " + a.From
			}
			if a.Note != "" {
				it.Text = strings.TrimSpace(it.Text + " — " + a.Note)
			}
		}
		items = append(items, it)
	}
	slices.SortStableFunc(items, func(a, b timelineItem) int { return a.At.Compare(b.At) })
	return items
}

// actionFromForm reads a staff action from a console form.
func actionFromForm(r *http.Request, kind ticketing.ActionKind) (ticketing.Action, error) {
	f := r.PostForm
	a := ticketing.Action{Kind: kind, Actor: principalOf(r).name, Comment: f.Get("comment"), Note: f.Get("note"),
		Outcome: ticketing.Outcome(f.Get("outcome")), Assignee: strings.TrimSpace(f.Get("assignee"))}
	if kind == ticketing.ActSeverity {
		sev, err := telemetry.ParseSeverity(f.Get("severity"))
		if err != nil {
			return a, fmt.Errorf("%w: severity: %w", errBadRequest, err)
		}
		a.Severity = sev
	}
	return a, nil
}

// consoleActions are the action names of the console's forms.
var consoleActions = map[string]ticketing.ActionKind{
	"ack": ticketing.ActAcknowledge, "assign": ticketing.ActAssign, "comment": ticketing.ActComment,
	"severity": ticketing.ActSeverity, "resolve": ticketing.ActResolve, "reopen": ticketing.ActReopen, "outcome": ticketing.ActOutcome,
}

var actionDone = map[ticketing.ActionKind]string{
	ticketing.ActAcknowledge: "Acknowledged.", ticketing.ActAssign: "Assignment saved.", ticketing.ActComment: "Comment added.",
	ticketing.ActSeverity: "Severity changed.", ticketing.ActResolve: "Resolved.", ticketing.ActReopen: "Reopened.", ticketing.ActOutcome: "Outcome saved.",
}

// ticketAction applies a form's action and redirects back (POST, then
// redirect, then GET: a reload does not repeat the action).
func (c *console) ticketAction(w http.ResponseWriter, r *http.Request) {
	kind, ok := consoleActions[chi.URLParam(r, "action")]
	if !ok {
		c.fail(w, r, fmt.Errorf("%w: no such action", ticketing.ErrNotFound))
		return
	}
	t, err := c.ticketByID(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	a, err := actionFromForm(r, kind)
	if err == nil {
		_, err = c.h.svc.ApplyTicket(r.Context(), t.ID, a)
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s/tickets/%d?done=%s", consolePrefix, t.ID, chi.URLParam(r, "action")), http.StatusSeeOther)
}

// --- incidents

type incidentsData struct {
	page
	Items []ticketing.Incident
	All   bool
}

func (c *console) incidents(w http.ResponseWriter, r *http.Request) {
	all := r.URL.Query().Get("all") == "1"
	f := ticketing.IncidentFilter{Limit: 100}
	items, _, err := c.h.store.ListIncidents(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !all {
		items = slices.DeleteFunc(items, func(in ticketing.Incident) bool { return in.Status == ticketing.StatusResolved })
	}
	c.render(w, r, http.StatusOK, "incidents", incidentsData{page: c.page(r, "Incidents", "incidents"), Items: items, All: all})
}

// attribute is one attribute of an incident's members: the values it
// takes, the most common first.
type attribute struct {
	Name   string
	Values []ticketing.Bucket
	Common bool // every member has the same value
}

type incidentData struct {
	page
	In      ticketing.Incident
	Members []ticketing.Ticket
	More    bool
	Attrs   []attribute
}

func (c *console) incident(w http.ResponseWriter, r *http.Request) {
	id, err := int64Param("incident id", chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	in, err := c.h.store.GetIncident(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	members, next, err := c.h.store.ListTickets(r.Context(), ticketing.Filter{IncidentID: id, Limit: ticketing.MaxLimit})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := incidentData{page: c.page(r, fmt.Sprintf("Incident #%d: %s", in.ID, strings.ReplaceAll(in.Fault, "_", " ")), "incidents"),
		In: in, Members: members, More: next != ""}
	for _, a := range []struct {
		name string
		get  func(ticketing.Ticket) string
	}{
		{"Model", func(t ticketing.Ticket) string { return t.Model }},
		{"Firmware", func(t ticketing.Ticket) string { return t.Firmware }},
		{"Site", func(t ticketing.Ticket) string { return t.Site }},
		{"Customer", func(t ticketing.Ticket) string { return t.CustomerID }},
	} {
		counts := map[string]int{}
		for _, m := range members {
			counts[a.get(m)]++
		}
		at := attribute{Name: a.name}
		for v, n := range counts {
			if v == "" {
				v = "(unknown)"
			}
			at.Values = append(at.Values, ticketing.Bucket{Key: v, Count: n})
		}
		slices.SortFunc(at.Values, func(x, y ticketing.Bucket) int {
			if x.Count != y.Count {
				return y.Count - x.Count
			}
			return strings.Compare(x.Key, y.Key)
		})
		at.Common = len(at.Values) == 1 && len(members) > 0
		d.Attrs = append(d.Attrs, at)
	}
	c.render(w, r, http.StatusOK, "incident", d)
}

func (c *console) incidentAction(w http.ResponseWriter, r *http.Request) {
	kind, ok := consoleActions[chi.URLParam(r, "action")]
	if !ok || kind == ticketing.ActSeverity {
		c.fail(w, r, fmt.Errorf("%w: no such action", ticketing.ErrNotFound))
		return
	}
	id, err := int64Param("incident id", chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	a, err := actionFromForm(r, kind)
	var changed []int64
	if err == nil {
		_, changed, err = c.h.svc.ApplyIncident(r.Context(), id, a)
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s/incidents/%d?done=%s&n=%d", consolePrefix, id, chi.URLParam(r, "action"), len(changed)), http.StatusSeeOther)
}

// --- fleet and KPIs

type fleetData struct {
	page
	F ticketing.Fleet
}

func (c *console) fleet(w http.ResponseWriter, r *http.Request) {
	fl, err := c.h.store.FleetSummary(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "fleet", fleetData{page: c.page(r, "Fleet", "fleet"), F: fl})
}

// kpiPeriods are the periods the KPI page offers.
var kpiPeriods = []struct {
	Value, Label string
	D            time.Duration
}{
	{"1d", "Last 24 hours", 24 * time.Hour},
	{"7d", "Last 7 days", 7 * 24 * time.Hour},
	{"30d", "Last 30 days", 30 * 24 * time.Hour},
	{"90d", "Last 90 days", 90 * 24 * time.Hour},
	{"365d", "Last 365 days", 365 * 24 * time.Hour},
}

type kpiData struct {
	page
	K        ticketing.KPIs
	Period   string
	From, To string // custom period, dates YYYY-MM-DD
	Periods  any
}

func (c *console) kpis(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	period := q.Get("period")
	if period == "" {
		period = "30d"
	}
	now := c.now()
	to, from := now.Add(time.Second), time.Time{} // to is exclusive: include this second's tickets
	d := kpiData{page: c.page(r, "Proactive KPIs", "kpis"), Period: period, Periods: kpiPeriods}
	if period == "custom" {
		d.From, d.To = q.Get("from"), q.Get("to")
		f, err1 := time.Parse(time.DateOnly, d.From)
		t, err2 := time.Parse(time.DateOnly, d.To)
		if err1 != nil || err2 != nil {
			c.fail(w, r, fmt.Errorf("%w: from, to: want dates YYYY-MM-DD for a custom period", errBadRequest))
			return
		}
		from, to = f, t.Add(24*time.Hour) // "to" is inclusive
	} else {
		for _, p := range kpiPeriods {
			if p.Value == period {
				from = now.Add(-p.D)
			}
		}
		if from.IsZero() {
			c.fail(w, r, fmt.Errorf("%w: period: want one of 1d, 7d, 30d, 90d, 365d or custom", errBadRequest))
			return
		}
	}
	k, err := c.h.store.ComputeKPIs(r.Context(), from, to)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d.K = k
	c.render(w, r, http.StatusOK, "kpis", d)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
