package ticketing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// This file holds the read models of the support console (httpapi
// console*.go): the work queue, live counts, fleet and KPI figures. They
// are plain reads; every one is bounded (a page, or an aggregate).

// QueueFilter selects tickets for the console's queue. Zero fields match
// everything; Status "" means every ticket that is not resolved.
type QueueFilter struct {
	Status     Status
	Severity   telemetry.Severity
	Fault      string
	Model      string
	CustomerID string
	IncidentID int64
	Limit      int // 0: DefaultLimit; above MaxLimit: MaxLimit
	Offset     int // tickets to skip, for page 2, 3, ...
}

func (f QueueFilter) where() (string, []any, error) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, arg any) { conds, args = append(conds, cond), append(args, arg) }
	switch {
	case f.Status == "":
		conds = append(conds, "status <> 'resolved'")
	case f.Status == StatusResolved:
		add("status = ?", string(f.Status))
	case f.Status.Valid():
		// The literal term lets SQLite use the partial index tickets_queue.
		conds = append(conds, "status <> 'resolved'")
		add("status = ?", string(f.Status))
	default:
		return "", nil, fmt.Errorf("%w: status: unknown %q: want open, acknowledged or resolved", ErrInvalidArgument, f.Status)
	}
	if f.Severity != 0 {
		if !f.Severity.Valid() {
			return "", nil, fmt.Errorf("%w: severity: unknown %d", ErrInvalidArgument, int(f.Severity))
		}
		add("severity = ?", int(f.Severity))
	}
	if f.Fault != "" {
		add("fault = ?", f.Fault)
	}
	if f.Model != "" {
		add("model = ?", f.Model)
	}
	if f.CustomerID != "" {
		add("customer_id = ?", f.CustomerID)
	}
	if f.IncidentID != 0 {
		add("incident_id = ?", f.IncidentID)
	}
	if f.Offset < 0 {
		return "", nil, fmt.Errorf("%w: offset: negative (%d)", ErrInvalidArgument, f.Offset)
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// Queue returns one page of the tickets f selects in work order: the most
// severe first, then the earliest SLA due time (tickets without one last),
// then the oldest. Resolved tickets are history, not work: they come
// newest first. more says whether a further page exists.
func (s *SQLStore) Queue(ctx context.Context, f QueueFilter) (items []Ticket, more bool, err error) {
	where, args, err := f.where()
	if err != nil {
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	// due_at IS NULL sorts last in both dialects with this CASE.
	order := ` ORDER BY severity DESC, CASE WHEN due_at IS NULL THEN 1 ELSE 0 END, due_at, id`
	if f.Status == StatusResolved {
		order = ` ORDER BY id DESC`
	}
	// The page's ids come from the covering index alone; only its rows are read.
	q := `SELECT ` + ticketColumns + ` FROM tickets WHERE id IN (SELECT id FROM tickets` + where + order + ` LIMIT ? OFFSET ?)` + order
	args = append(args, limit+1, f.Offset)
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q), args...)
	if err != nil {
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	defer rows.Close()
	items = make([]Ticket, 0, min(limit+1, 64))
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, false, fmt.Errorf("queue: %w", err)
		}
		items = append(items, t)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	if len(items) > limit {
		return items[:limit], true, nil
	}
	return items, false, nil
}

// QueueCounts are the live counts of the queue's tickets.
type QueueCounts struct {
	Total      int                        `json:"total"`
	ByStatus   map[Status]int             `json:"by_status"`
	BySeverity map[telemetry.Severity]int `json:"by_severity"`
	Overdue    int                        `json:"overdue"` // past their SLA due time at now
}

// CountQueue counts the tickets f selects (Limit and Offset aside), by
// status and severity, and how many are past due at now. It counts open
// work only: for Status resolved (history, a scan of most of the store)
// it answers ErrInvalidArgument.
func (s *SQLStore) CountQueue(ctx context.Context, f QueueFilter, now time.Time) (QueueCounts, error) {
	if f.Status == StatusResolved {
		return QueueCounts{}, fmt.Errorf("count queue: %w: resolved tickets are not counted", ErrInvalidArgument)
	}
	f.Limit, f.Offset = 0, 0
	where, args, err := f.where()
	if err != nil {
		return QueueCounts{}, fmt.Errorf("count queue: %w", err)
	}
	// Materialized from the partial covering index: the planner would
	// otherwise walk another index and read every row.
	q := `WITH q AS MATERIALIZED (SELECT status, severity, due_at, fault, model, customer_id, incident_id
			FROM tickets WHERE status <> 'resolved')
		SELECT status, severity, COUNT(*), SUM(CASE WHEN due_at < ? THEN 1 ELSE 0 END)
		FROM q` + where + ` GROUP BY status, severity`
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q), append([]any{formatTime(now)}, args...)...)
	if err != nil {
		return QueueCounts{}, fmt.Errorf("count queue: %w", err)
	}
	defer rows.Close()
	c := QueueCounts{ByStatus: map[Status]int{}, BySeverity: map[telemetry.Severity]int{}}
	for rows.Next() {
		var (
			st       string
			sev      telemetry.Severity
			n, overd int
		)
		if err := rows.Scan(&st, &sev, &n, &overd); err != nil {
			return QueueCounts{}, fmt.Errorf("count queue: %w", err)
		}
		c.Total += n
		c.ByStatus[Status(st)] += n
		c.BySeverity[sev] += n
		c.Overdue += overd
	}
	if err := rows.Err(); err != nil {
		return QueueCounts{}, fmt.Errorf("count queue: %w", err)
	}
	return c, nil
}

// A Bucket is one group of a count: a fault, a model, a firmware.
type Bucket struct {
	Key   string `json:"key"`
	Sub   string `json:"sub,omitempty"` // a second key: the model of a firmware
	Count int    `json:"count"`
}

// Fleet is the state of the device registry and of the open tickets.
type Fleet struct {
	Devices            int      `json:"devices"`
	Online             int      `json:"online"`
	Offline            int      `json:"offline"`
	Unknown            int      `json:"unknown"` // never sent a status
	OpenTickets        int      `json:"open_tickets"`
	OpenByFault        []Bucket `json:"open_by_fault"`
	OpenByModel        []Bucket `json:"open_by_model"`
	Firmware           []Bucket `json:"firmware"`             // devices by model (Sub) and firmware (Key)
	DevicesWithTickets int      `json:"devices_with_tickets"` // distinct devices with an open ticket
}

// maxBuckets bounds each list of a Fleet.
const maxBuckets = 50

// FleetSummary counts devices online and offline, open tickets by fault
// and by model, and devices by model and firmware (the largest groups
// first, at most 50 of each).
func (s *SQLStore) FleetSummary(ctx context.Context) (Fleet, error) {
	var fl Fleet
	err := s.readTx(ctx, func(tx txn) error {
		var on, off, unknown sql.NullInt64
		if err := tx.queryRow(ctx, `SELECT COUNT(*),
				SUM(CASE WHEN online THEN 1 ELSE 0 END),
				SUM(CASE WHEN NOT online THEN 1 ELSE 0 END),
				SUM(CASE WHEN online IS NULL THEN 1 ELSE 0 END) FROM devices`).Scan(&fl.Devices, &on, &off, &unknown); err != nil {
			return fmt.Errorf("count devices: %w", err)
		}
		fl.Online, fl.Offline, fl.Unknown = int(on.Int64), int(off.Int64), int(unknown.Int64)
		if err := tx.queryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT device_id) FROM tickets WHERE status <> 'resolved'`).
			Scan(&fl.OpenTickets, &fl.DevicesWithTickets); err != nil {
			return fmt.Errorf("count open tickets: %w", err)
		}
		var err error
		// Materialized from the partial covering index (see CountQueue).
		const open = `WITH o AS MATERIALIZED (SELECT fault, model FROM tickets WHERE status <> 'resolved') `
		if fl.OpenByFault, err = buckets(ctx, tx, open+`SELECT fault, '', COUNT(*) FROM o
			GROUP BY fault ORDER BY COUNT(*) DESC, fault LIMIT ?`); err != nil {
			return fmt.Errorf("open tickets by fault: %w", err)
		}
		if fl.OpenByModel, err = buckets(ctx, tx, open+`SELECT model, '', COUNT(*) FROM o
			GROUP BY model ORDER BY COUNT(*) DESC, model LIMIT ?`); err != nil {
			return fmt.Errorf("open tickets by model: %w", err)
		}
		if fl.Firmware, err = buckets(ctx, tx, `SELECT firmware, model, COUNT(*) FROM devices
			GROUP BY model, firmware ORDER BY COUNT(*) DESC, model, firmware LIMIT ?`); err != nil {
			return fmt.Errorf("devices by firmware: %w", err)
		}
		return nil
	})
	if err != nil {
		return Fleet{}, fmt.Errorf("fleet summary: %w", err)
	}
	return fl, nil
}

func buckets(ctx context.Context, tx txn, q string) ([]Bucket, error) {
	rows, err := tx.query(ctx, q, maxBuckets)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Bucket
	for rows.Next() {
		var b Bucket
		if err := rows.Scan(&b.Key, &b.Sub, &b.Count); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// KPIs are the proactive-service figures of the tickets opened in a period
// (docs/console.md "KPIs" defines each).
type KPIs struct {
	From, To time.Time
	Opened   int // tickets created in the period

	// Early warning: tickets whose finding predicted when the limit would be
	// reached (forecast and usage detectors: evidence.cross_at). Before that
	// time the customer cannot have noticed the fault, so such a ticket
	// opened before it was opened before the customer would have noticed.
	Known    int           // tickets with a predicted crossing time
	Early    int           // of which opened before it
	LeadTime time.Duration // mean of cross_at - opened_at over Early

	Acknowledged   int
	TimeToAck      time.Duration // mean of acknowledged_at - created_at
	Resolved       int
	TimeToResolve  time.Duration // mean of resolved_at - created_at
	Judged         int           // tickets staff gave an outcome
	FalseAlarms    int
	Rules          []RuleKPI // per rule, the most tickets first
	AutoResolved   int       // resolved by Forewarn (no outcome, resolved after the fault cleared)
	CustomerMisuse int
}

// RuleKPI is one rule's share of false alarms among the tickets staff judged.
type RuleKPI struct {
	Rule        string
	Fault       string
	Tickets     int
	Judged      int
	FalseAlarms int
}

// FalseAlarmRate is FalseAlarms / Judged, or -1 when nothing was judged.
func (r RuleKPI) FalseAlarmRate() float64 {
	if r.Judged == 0 {
		return -1
	}
	return float64(r.FalseAlarms) / float64(r.Judged)
}

// maxRuleKPIs bounds KPIs.Rules.
const maxRuleKPIs = 100

// daysBetween is the SQL of b - a in days, for times stored as text
// (timeLayout, or RFC 3339 inside evidence); NULL when either is NULL. On
// SQLite the KPI index holds these very expressions (migration4), so they
// must stay as they are written there.
func (s *SQLStore) daysBetween(a, b string) string {
	if s.pg {
		return `(EXTRACT(EPOCH FROM (CAST(` + b + ` AS timestamptz) - CAST(` + a + ` AS timestamptz))) / 86400.0)`
	}
	return `(julianday(` + b + `) - julianday(` + a + `))`
}

// crossAtSQL is the SQL of evidence.cross_at, NULL when absent.
func (s *SQLStore) crossAtSQL() string {
	if s.pg {
		return `(CAST(evidence AS jsonb) ->> 'cross_at')`
	}
	return `json_extract(evidence, '$.cross_at')`
}

// ComputeKPIs aggregates the tickets created in [from, to).
func (s *SQLStore) ComputeKPIs(ctx context.Context, from, to time.Time) (KPIs, error) {
	if !to.After(from) {
		return KPIs{}, fmt.Errorf("kpis: %w: the period ends before it starts", ErrInvalidArgument)
	}
	k := KPIs{From: from.UTC(), To: to.UTC()}
	// One pass, grouped by rule; the totals are the rules' sums. On SQLite
	// every value read, the durations included, is in the covering index
	// tickets_kpi, so no ticket row is read and no time is parsed.
	lead := s.daysBetween("opened_at", s.crossAtSQL())
	ack := s.daysBetween("created_at", "acknowledged_at")
	res := s.daysBetween("created_at", "resolved_at")
	q := `SELECT rule, MIN(fault), COUNT(*),
		COUNT(` + lead + `),
		SUM(CASE WHEN ` + lead + ` > 0 THEN 1 ELSE 0 END),
		SUM(CASE WHEN ` + lead + ` > 0 THEN ` + lead + ` ELSE 0 END),
		COUNT(` + ack + `), COALESCE(SUM(` + ack + `), 0),
		COUNT(` + res + `), COALESCE(SUM(` + res + `), 0),
		SUM(CASE WHEN outcome <> '' THEN 1 ELSE 0 END),
		SUM(CASE WHEN outcome = 'false_alarm' THEN 1 ELSE 0 END),
		SUM(CASE WHEN outcome = 'customer_misuse' THEN 1 ELSE 0 END),
		SUM(CASE WHEN status = 'resolved' AND outcome = '' AND cleared_at IS NOT NULL THEN 1 ELSE 0 END)
		FROM tickets WHERE created_at >= ? AND created_at < ?
		GROUP BY rule`
	var leadS, ackS, resS float64
	err := s.readTx(ctx, func(tx txn) error {
		rows, err := tx.query(ctx, q, formatTime(from), formatTime(to))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r                                           RuleKPI
				known, early, acked, resolved, misuse, auto int
				lead, ack, res                              float64
			)
			if err := rows.Scan(&r.Rule, &r.Fault, &r.Tickets, &known, &early, &lead, &acked, &ack, &resolved, &res,
				&r.Judged, &r.FalseAlarms, &misuse, &auto); err != nil {
				return err
			}
			k.Opened += r.Tickets
			k.Known, k.Early, k.Acknowledged, k.Resolved = k.Known+known, k.Early+early, k.Acknowledged+acked, k.Resolved+resolved
			k.Judged, k.FalseAlarms, k.CustomerMisuse, k.AutoResolved = k.Judged+r.Judged, k.FalseAlarms+r.FalseAlarms, k.CustomerMisuse+misuse, k.AutoResolved+auto
			leadS, ackS, resS = leadS+lead, ackS+ack, resS+res
			k.Rules = append(k.Rules, r)
		}
		return rows.Err()
	})
	if err != nil {
		return KPIs{}, fmt.Errorf("kpis: %w", err)
	}
	k.LeadTime, k.TimeToAck, k.TimeToResolve = mean(leadS, k.Early), mean(ackS, k.Acknowledged), mean(resS, k.Resolved)
	slices.SortFunc(k.Rules, func(a, b RuleKPI) int {
		if a.Tickets != b.Tickets {
			return b.Tickets - a.Tickets
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	if len(k.Rules) > maxRuleKPIs {
		k.Rules = k.Rules[:maxRuleKPIs]
	}
	return k, nil
}

// mean is sum/n days as a Duration, rounded to the second; 0 when n is 0.
func mean(sum float64, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return time.Duration(sum / float64(n) * float64(24*time.Hour)).Round(time.Second)
}

// GetToken returns token id, revoked or not; an unknown id wraps
// ErrNotFound. The console checks its sessions' tokens with it.
func (s *SQLStore) GetToken(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, rebind(s.pg, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("get token %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("get token %d: %w", id, err)
	}
	return t, nil
}
