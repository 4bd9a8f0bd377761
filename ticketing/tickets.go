package ticketing

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// errLostRace reports that a concurrent writer changed the row a step
// meant to change; the caller starts the step again.
var errLostRace = errors.New("lost a race to a concurrent writer")

// raiseResult says what a raise did.
type raiseResult struct {
	id        int64
	opened    bool // a new ticket
	reopened  bool // a resolved ticket came back
	escalated bool // severity went up
	incident  int64
	newIncid  bool // the raise made an incident
}

// raise records a raised Finding: it adds to the open ticket of f's
// (device, fault); without one it reopens the key's ticket resolved within
// the reopen window; else it opens a ticket. When two writers race, the
// unique index refuses the loser's reopen or insert, and the loser starts
// again and finds the winner's ticket.
func (s *SQLStore) raise(ctx context.Context, f telemetry.Finding, now time.Time, cfg TicketsConfig) (raiseResult, error) {
	ev, err := json.Marshal(f.Evidence)
	if err != nil {
		return raiseResult{}, fmt.Errorf("%w: encode evidence: %w", ErrInvalidArgument, err)
	}
	for attempt := 1; ; attempt++ {
		res, found, err := s.raiseOpen(ctx, f, ev, now, cfg)
		if err != nil || found {
			return res, err
		}
		if s.beforeInsert != nil {
			s.beforeInsert()
		}
		err = s.writeTx(ctx, func(tx txn) error {
			var err error
			res, err = reopenOrInsert(ctx, tx, f, ev, now, cfg)
			return err
		})
		if err == nil {
			return res, nil
		}
		if !(isUniqueViolation(err) || errors.Is(err, errLostRace)) || attempt == maxRaiseAttempts {
			return raiseResult{}, err
		}
		// Another writer opened or reopened this ticket since raiseOpen
		// looked: raise onto theirs.
	}
}

// raiseOpen adds a raise to the open ticket of f's (device, fault), if there
// is one. It escalates severity (never lowers it), forgets an earlier clear
// and its pending auto-resolve, and pulls the SLA due time in if the new
// severity asks for it.
func (s *SQLStore) raiseOpen(ctx context.Context, f telemetry.Finding, ev []byte, now time.Time, cfg TicketsConfig) (res raiseResult, found bool, err error) {
	err = s.writeTx(ctx, func(tx txn) error {
		var (
			sev               telemetry.Severity
			created, customer string
			due               sql.NullString
			incident          sql.NullInt64
		)
		err := tx.queryRow(ctx, `SELECT id, severity, created_at, due_at, customer_id, incident_id FROM tickets
			WHERE device_id = ? AND fault = ? AND status <> 'resolved'`+tx.forUpdate(),
			string(f.Device), f.Fault).Scan(&res.id, &sev, &created, &due, &customer, &incident)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find open ticket: %w", err)
		}
		found = true
		res.incident = incident.Int64
		newSev, dueAt := sev, due
		if f.Severity > sev {
			newSev, res.escalated = f.Severity, true
			if dueAt, err = escalatedDue(ctx, tx, cfg, customer, created, due, newSev); err != nil {
				return err
			}
		}
		if _, err := tx.exec(ctx, `UPDATE tickets SET
				raise_count = raise_count + 1, last_raised_at = ?, evidence = ?, severity = ?,
				cleared_at = NULL, resolve_after = NULL, due_at = ?, updated_at = ?
			WHERE id = ?`,
			formatTime(f.At), string(ev), int(newSev), dueAt, formatTime(now), res.id); err != nil {
			return fmt.Errorf("update ticket: %w", err)
		}
		if res.escalated {
			if err := addAudit(ctx, tx, AuditEntry{TicketID: res.id, At: now, Actor: SystemActor, Action: ActionSeverity,
				From: sev.String(), To: newSev.String(), Note: "a worse finding arrived"}); err != nil {
				return err
			}
			if err := escalateIncident(ctx, tx, res.incident, newSev, now); err != nil {
				return err
			}
		}
		return insertEvent(ctx, tx, res.id, f.At, EventRaised, f.Severity, ev)
	})
	return res, found, err
}

// escalatedDue returns the due time of a ticket whose severity rises to
// sev: the earlier of its current one and created + the SLA of sev.
func escalatedDue(ctx context.Context, tx txn, cfg TicketsConfig, customer, created string, due sql.NullString, sev telemetry.Severity) (sql.NullString, error) {
	tier, err := customerTier(ctx, tx, customer)
	if err != nil {
		return due, err
	}
	c, err := parseTime(created)
	if err != nil {
		return due, fmt.Errorf("created_at: %w", err)
	}
	d := formatTime(c.Add(cfg.SLA.due(tier, int(sev))))
	if !due.Valid || d < due.String {
		return sql.NullString{String: d, Valid: true}, nil
	}
	return due, nil
}

func customerTier(ctx context.Context, tx txn, customer string) (Tier, error) {
	if customer == "" {
		return TierStandard, nil
	}
	var tier string
	err := tx.queryRow(ctx, `SELECT tier FROM customers WHERE id = ?`, customer).Scan(&tier)
	if errors.Is(err, sql.ErrNoRows) {
		return TierStandard, nil
	}
	if err != nil {
		return "", fmt.Errorf("read customer tier: %w", err)
	}
	return Tier(tier), nil
}

// reopenOrInsert runs when f's key has no open ticket: it reopens the
// key's latest ticket when that was resolved within the reopen window, and
// opens a new ticket otherwise. Either may fail with a unique violation
// (or errLostRace) when a concurrent writer got there first.
func reopenOrInsert(ctx context.Context, tx txn, f telemetry.Finding, ev []byte, now time.Time, cfg TicketsConfig) (raiseResult, error) {
	if cfg.ReopenWindow > 0 {
		res, found, err := reopenForRaise(ctx, tx, f, ev, now, cfg)
		if err != nil || found {
			return res, err
		}
	}
	return insertTicket(ctx, tx, f, ev, now, cfg)
}

func reopenForRaise(ctx context.Context, tx txn, f telemetry.Finding, ev []byte, now time.Time, cfg TicketsConfig) (res raiseResult, found bool, err error) {
	var (
		sev               telemetry.Severity
		outcome, customer string
		incident          sql.NullInt64
	)
	err = tx.queryRow(ctx, `SELECT id, severity, outcome, customer_id, incident_id FROM tickets
		WHERE device_id = ? AND fault = ? AND status = 'resolved' AND resolved_at >= ?
		ORDER BY resolved_at DESC, id DESC LIMIT 1`,
		string(f.Device), f.Fault, formatTime(now.Add(-cfg.ReopenWindow))).Scan(&res.id, &sev, &outcome, &customer, &incident)
	if errors.Is(err, sql.ErrNoRows) {
		return res, false, nil
	}
	if err != nil {
		return res, false, fmt.Errorf("find recently resolved ticket: %w", err)
	}
	newSev := max(sev, f.Severity)
	tier, err := customerTier(ctx, tx, customer)
	if err != nil {
		return res, false, err
	}
	r, err := tx.exec(ctx, `UPDATE tickets SET
			status = 'open', resolved_at = NULL, acknowledged_at = NULL, outcome = '', reopen_count = reopen_count + 1,
			raise_count = raise_count + 1, last_raised_at = ?, evidence = ?, severity = ?,
			cleared_at = NULL, resolve_after = NULL, due_at = ?, updated_at = ?
		WHERE id = ? AND status = 'resolved'`,
		formatTime(f.At), string(ev), int(newSev), formatTime(now.Add(cfg.SLA.due(tier, int(newSev)))), formatTime(now), res.id)
	if err != nil {
		return res, false, fmt.Errorf("reopen ticket: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return res, false, errLostRace
	}
	found, res.reopened = true, true
	audit := []AuditEntry{{TicketID: res.id, At: now, Actor: SystemActor, Action: ActionStatus,
		From: string(StatusResolved), To: string(StatusOpen), Note: "the fault returned within the reopen window"}}
	if outcome != "" {
		audit = append(audit, AuditEntry{TicketID: res.id, At: now, Actor: SystemActor, Action: ActionOutcome, From: outcome, Note: "reopened"})
	}
	if newSev != sev {
		res.escalated = true
		audit = append(audit, AuditEntry{TicketID: res.id, At: now, Actor: SystemActor, Action: ActionSeverity,
			From: sev.String(), To: newSev.String(), Note: "a worse finding arrived"})
	}
	for _, a := range audit {
		if err := addAudit(ctx, tx, a); err != nil {
			return res, false, err
		}
	}
	if err := insertEvent(ctx, tx, res.id, f.At, EventRaised, f.Severity, ev); err != nil {
		return res, false, err
	}
	if !incidentOpen(ctx, tx, incident) {
		if _, err := tx.exec(ctx, `UPDATE tickets SET incident_id = NULL WHERE id = ?`, res.id); err != nil {
			return res, false, fmt.Errorf("detach from resolved incident: %w", err)
		}
		if res.incident, res.newIncid, err = groupIncident(ctx, tx, res.id, f, now, cfg); err != nil {
			return res, false, err
		}
	} else {
		res.incident = incident.Int64
		if err := escalateIncident(ctx, tx, res.incident, newSev, now); err != nil {
			return res, false, err
		}
	}
	return res, true, enqueueTicketEvent(ctx, tx, res.id, EventTicketOpened, now)
}

func incidentOpen(ctx context.Context, tx txn, id sql.NullInt64) bool {
	if !id.Valid {
		return false
	}
	var status string
	if err := tx.queryRow(ctx, `SELECT status FROM incidents WHERE id = ?`, id.Int64).Scan(&status); err != nil {
		return false
	}
	return status != string(StatusResolved)
}

// insertTicket opens a ticket for f with the device's registry data and
// its SLA due time, and groups it into an incident when enough devices
// share the fault. It fails with a unique violation when (device, fault)
// already has an open ticket.
func insertTicket(ctx context.Context, tx txn, f telemetry.Finding, ev []byte, now time.Time, cfg TicketsConfig) (raiseResult, error) {
	var (
		res                             raiseResult
		model, firmware, site, customer string
		tier                            = string(TierStandard)
	)
	err := tx.queryRow(ctx, `SELECT d.model, d.firmware, d.site, COALESCE(d.customer_id, ''), COALESCE(c.tier, 'standard')
		FROM devices d LEFT JOIN customers c ON c.id = d.customer_id WHERE d.id = ?`, string(f.Device)).
		Scan(&model, &firmware, &site, &customer, &tier)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("read device: %w", err)
	}
	if f.Model != "" {
		model = f.Model // what the device said on the raising reading
	}
	due := now.Add(cfg.SLA.due(Tier(tier), int(f.Severity)))
	err = tx.queryRow(ctx, `INSERT INTO tickets
			(device_id, model, firmware, site, customer_id, fault, rule, severity, status, customer_visible, remedy,
			 opened_at, created_at, updated_at, last_raised_at, raise_count, evidence, due_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, 1, ?, ?)
		RETURNING id`,
		string(f.Device), model, firmware, site, customer, f.Fault, f.Rule, int(f.Severity), f.CustomerVisible, f.Remedy,
		formatTime(f.At), formatTime(now), formatTime(now), formatTime(f.At), string(ev), formatTime(due),
	).Scan(&res.id)
	if err != nil {
		return res, fmt.Errorf("insert ticket: %w", err)
	}
	res.opened = true
	if err := addAudit(ctx, tx, AuditEntry{TicketID: res.id, At: now, Actor: SystemActor, Action: ActionOpen,
		To: string(StatusOpen), Note: f.Severity.String() + " " + f.Fault + " raised by " + f.Rule}); err != nil {
		return res, err
	}
	if err := insertEvent(ctx, tx, res.id, f.At, EventRaised, f.Severity, ev); err != nil {
		return res, err
	}
	res.incident, res.newIncid, err = groupIncident(ctx, tx, res.id, f, now, cfg)
	if err != nil {
		return res, err
	}
	return res, enqueueTicketEvent(ctx, tx, res.id, EventTicketOpened, now)
}

// clear records a cleared Finding on the open ticket of f's (device,
// fault): it notes when the fault cleared and schedules the auto-resolve
// hold. found is false when there is none; then nothing changes.
func (s *SQLStore) clear(ctx context.Context, f telemetry.Finding, now time.Time, cfg TicketsConfig) (id int64, found bool, err error) {
	ev, err := json.Marshal(f.Evidence)
	if err != nil {
		return 0, false, fmt.Errorf("%w: encode evidence: %w", ErrInvalidArgument, err)
	}
	err = s.writeTx(ctx, func(tx txn) error {
		var sev telemetry.Severity
		err := tx.queryRow(ctx, `UPDATE tickets SET cleared_at = ?, resolve_after = ?, updated_at = ?
			WHERE device_id = ? AND fault = ? AND status <> 'resolved'
			RETURNING id, severity`,
			formatTime(f.At), formatTime(now.Add(cfg.ResolveHold)), formatTime(now), string(f.Device), f.Fault,
		).Scan(&id, &sev)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("update ticket: %w", err)
		}
		found = true
		if f.Severity.Valid() {
			sev = f.Severity
		}
		return insertEvent(ctx, tx, id, f.At, EventCleared, sev, ev)
	})
	return id, found, err
}

func insertEvent(ctx context.Context, tx txn, ticketID int64, at time.Time, kind string, sev telemetry.Severity, ev []byte) error {
	if _, err := tx.exec(ctx, `INSERT INTO ticket_events (ticket_id, at, kind, severity, evidence) VALUES (?, ?, ?, ?, ?)`,
		ticketID, formatTime(at), kind, int(sev), string(ev)); err != nil {
		return fmt.Errorf("insert %s event: %w", kind, err)
	}
	return nil
}

// addAudit appends one entry to the audit trail, in the caller's
// transaction, so a change and its record commit together.
func addAudit(ctx context.Context, tx txn, a AuditEntry) error {
	var ticket, incident any
	if a.TicketID != 0 {
		ticket = a.TicketID
	}
	if a.IncidentID != 0 {
		incident = a.IncidentID
	}
	if _, err := tx.exec(ctx, `INSERT INTO audit (ticket_id, incident_id, subject, at, actor, action, from_value, to_value, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ticket, incident, a.Subject, formatTime(a.At), a.Actor, a.Action, a.From, a.To, a.Note); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	return nil
}

const ticketColumns = `id, device_id, model, firmware, site, customer_id, fault, rule, severity, status, customer_visible, remedy,
	assignee, outcome, incident_id, opened_at, created_at, updated_at, last_raised_at, raise_count, reopen_count,
	cleared_at, resolve_after, acknowledged_at, resolved_at, due_at, evidence`

// ListTickets returns the tickets f selects, newest (highest id) first, one
// page at a time. next is the Cursor of the following page, "" on the last
// page. Pages follow ids, so tickets opened while a client pages appear on
// its next first page, never as duplicates. Timeline stays empty.
func (s *SQLStore) ListTickets(ctx context.Context, f Filter) (items []Ticket, next string, err error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, "", fmt.Errorf("list tickets: %w: status: unknown %q: want open, acknowledged or resolved", ErrInvalidArgument, f.Status)
		}
		add("status = ?", string(f.Status))
	}
	if f.DeviceID != "" {
		add("device_id = ?", f.DeviceID)
	}
	if f.Fault != "" {
		add("fault = ?", f.Fault)
	}
	if f.Severity != 0 {
		if !f.Severity.Valid() {
			return nil, "", fmt.Errorf("list tickets: %w: severity: unknown %d", ErrInvalidArgument, int(f.Severity))
		}
		add("severity = ?", int(f.Severity))
	}
	if f.CustomerID != "" {
		add("customer_id = ?", f.CustomerID)
	}
	if f.IncidentID != 0 {
		add("incident_id = ?", f.IncidentID)
	}
	if f.Assignee != "" {
		add("assignee = ?", f.Assignee)
	}
	if !f.Since.IsZero() {
		add("updated_at >= ?", formatTime(f.Since))
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list tickets: %w", err)
		}
		add("id < ?", after)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list tickets: %w", err)
	}

	q := `SELECT ` + ticketColumns + ` FROM tickets`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1) // one more tells whether a next page exists

	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list tickets: %w", err)
	}
	defer rows.Close()
	items = make([]Ticket, 0, min(limit+1, 64))
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list tickets: %w", err)
		}
		items = append(items, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list tickets: %w", err)
	}
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(items[limit-1].ID)
	}
	return items, next, nil
}

// GetTicket returns ticket id with its Timeline, oldest event first. An
// unknown id gives an error wrapping ErrNotFound.
func (s *SQLStore) GetTicket(ctx context.Context, id int64) (Ticket, error) {
	var t Ticket
	err := s.readTx(ctx, func(tx txn) error {
		var err error
		t, err = getTicket(ctx, tx, id, "")
		if err != nil {
			return err
		}
		t.Timeline, err = ticketEvents(ctx, tx, id)
		return err
	})
	if err != nil {
		return Ticket{}, fmt.Errorf("get ticket %d: %w", id, err)
	}
	return t, nil
}

// getTicket reads one ticket; lock is "" or tx.forUpdate().
func getTicket(ctx context.Context, tx txn, id int64, lock string) (Ticket, error) {
	t, err := scanTicket(tx.queryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = ?`+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, ErrNotFound
	}
	return t, err
}

func ticketEvents(ctx context.Context, tx txn, ticketID int64) ([]Event, error) {
	rows, err := tx.query(ctx, `SELECT at, kind, severity, evidence FROM ticket_events
		WHERE ticket_id = ? ORDER BY at, id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var (
			e      Event
			at, ev string
		)
		if err := rows.Scan(&at, &e.Kind, &e.Severity, &ev); err != nil {
			return nil, fmt.Errorf("read timeline: %w", err)
		}
		if e.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read timeline: at: %w", err)
		}
		if err := json.Unmarshal([]byte(ev), &e.Evidence); err != nil {
			return nil, fmt.Errorf("read timeline: evidence: %w", err)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	return evs, nil
}

// scanTicket reads one row of ticketColumns from a *sql.Row or *sql.Rows.
func scanTicket(r interface{ Scan(dest ...any) error }) (Ticket, error) {
	var (
		t                                           Ticket
		status, outcome, ev                         string
		opened, created, updated, lastRaise         string
		incident                                    sql.NullInt64
		cleared, resolveAfter, acked, resolved, due sql.NullString
	)
	if err := r.Scan(&t.ID, &t.DeviceID, &t.Model, &t.Firmware, &t.Site, &t.CustomerID, &t.Fault, &t.Rule, &t.Severity,
		&status, &t.CustomerVisible, &t.Remedy, &t.Assignee, &outcome, &incident,
		&opened, &created, &updated, &lastRaise, &t.RaiseCount, &t.ReopenCount,
		&cleared, &resolveAfter, &acked, &resolved, &due, &ev); err != nil {
		return Ticket{}, err
	}
	t.Status, t.Outcome, t.IncidentID = Status(status), Outcome(outcome), incident.Int64
	var err error
	for _, p := range []struct {
		name string
		src  string
		dst  *time.Time
	}{{"opened_at", opened, &t.OpenedAt}, {"created_at", created, &t.CreatedAt}, {"updated_at", updated, &t.UpdatedAt}, {"last_raised_at", lastRaise, &t.LastRaisedAt}} {
		if *p.dst, err = parseTime(p.src); err != nil {
			return Ticket{}, fmt.Errorf("ticket %d: %s: %w", t.ID, p.name, err)
		}
	}
	for _, p := range []struct {
		name string
		src  sql.NullString
		dst  **time.Time
	}{{"cleared_at", cleared, &t.ClearedAt}, {"resolve_after", resolveAfter, &t.ResolveAfter}, {"acknowledged_at", acked, &t.AcknowledgedAt},
		{"resolved_at", resolved, &t.ResolvedAt}, {"due_at", due, &t.DueAt}} {
		if *p.dst, err = optTime(p.src); err != nil {
			return Ticket{}, fmt.Errorf("ticket %d: %s: %w", t.ID, p.name, err)
		}
	}
	if err := json.Unmarshal([]byte(ev), &t.Evidence); err != nil {
		return Ticket{}, fmt.Errorf("ticket %d: evidence: %w", t.ID, err)
	}
	return t, nil
}

// Cursors are opaque to clients: base64url of the last id of a page.
func encodeCursor(lastID int64) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt(nil, lastID, 10))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, fmt.Errorf("%w: cursor: malformed", ErrInvalidArgument)
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: cursor: malformed", ErrInvalidArgument)
	}
	return id, nil
}
