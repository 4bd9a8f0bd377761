package ticketing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forewarn/forewarn/telemetry"
)

// ActionKind names a staff action on a ticket or an incident.
type ActionKind string

// Staff actions (DESIGN "Tickets"; issue 5 "Lifecycle").
const (
	ActAcknowledge ActionKind = "acknowledge"
	ActAssign      ActionKind = "assign"
	ActComment     ActionKind = "comment"
	ActSeverity    ActionKind = "severity"
	ActResolve     ActionKind = "resolve"
	ActReopen      ActionKind = "reopen"
	ActOutcome     ActionKind = "outcome"
)

// Limits on staff input.
const (
	MaxCommentLen = 4000 // characters
	MaxNameLen    = 200  // characters of an assignee, actor, or name
)

// An Action is one staff change. Kind says which fields count: Assignee
// for assign ("" unassigns), Comment for comment, Severity for severity,
// Outcome for outcome and (optionally) resolve. Note is an optional
// explanation kept in the audit trail.
type Action struct {
	Kind     ActionKind
	Actor    string // who: a token's name; required
	Assignee string
	Comment  string
	Severity telemetry.Severity
	Outcome  Outcome
	Note     string
}

// Validate checks the Action's fields for its Kind; messages name the field.
func (a Action) Validate() error {
	var errs []error
	if strings.TrimSpace(a.Actor) == "" {
		errs = append(errs, errors.New("actor: required"))
	}
	if utf8.RuneCountInString(a.Note) > MaxCommentLen {
		errs = append(errs, fmt.Errorf("note: longer than %d characters", MaxCommentLen))
	}
	switch a.Kind {
	case ActAcknowledge, ActReopen:
	case ActAssign:
		if utf8.RuneCountInString(a.Assignee) > MaxNameLen {
			errs = append(errs, fmt.Errorf("assignee: longer than %d characters", MaxNameLen))
		}
	case ActComment:
		switch n := utf8.RuneCountInString(a.Comment); {
		case strings.TrimSpace(a.Comment) == "":
			errs = append(errs, errors.New("comment: required"))
		case n > MaxCommentLen:
			errs = append(errs, fmt.Errorf("comment: %d characters, at most %d", n, MaxCommentLen))
		}
	case ActSeverity:
		if !a.Severity.Valid() {
			errs = append(errs, errors.New("severity: want info, minor, major or critical"))
		}
	case ActResolve:
		if a.Outcome != "" && !a.Outcome.Valid() {
			errs = append(errs, fmt.Errorf("outcome: %q is not one of true_fault, false_alarm, customer_misuse", a.Outcome))
		}
	case ActOutcome:
		if !a.Outcome.Valid() {
			errs = append(errs, fmt.Errorf("outcome: %q is not one of true_fault, false_alarm, customer_misuse", a.Outcome))
		}
	default:
		errs = append(errs, fmt.Errorf("action: unknown %q", a.Kind))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// change is the column updates and audit entries an action makes.
type change struct {
	sets  map[string]any
	audit []AuditEntry
}

func (c *change) set(col string, v any) {
	if c.sets == nil {
		c.sets = map[string]any{}
	}
	c.sets[col] = v
}

// ticketChange works out what a applies to ticket t, or why it cannot.
func ticketChange(ctx context.Context, tx txn, t Ticket, a Action, now time.Time, cfg TicketsConfig, via int64) (change, error) {
	var c change
	note := a.Note
	if via != 0 {
		note = strings.TrimSpace(fmt.Sprintf("via incident %d. %s", via, a.Note))
	}
	entry := func(action, from, to string) AuditEntry {
		return AuditEntry{TicketID: t.ID, IncidentID: via, At: now, Actor: a.Actor, Action: action, From: from, To: to, Note: note}
	}
	resolved := t.Status == StatusResolved
	needOpen := func() error {
		if resolved {
			return fmt.Errorf("%w: ticket %d is resolved; reopen it first", ErrConflict, t.ID)
		}
		return nil
	}
	switch a.Kind {
	case ActAcknowledge:
		if err := needOpen(); err != nil {
			return c, err
		}
		if t.Status == StatusAcknowledged {
			return c, fmt.Errorf("%w: ticket %d is already acknowledged", ErrConflict, t.ID)
		}
		c.set("status", string(StatusAcknowledged))
		c.set("acknowledged_at", formatTime(now))
		c.audit = append(c.audit, entry(ActionStatus, string(t.Status), string(StatusAcknowledged)))
	case ActAssign:
		if err := needOpen(); err != nil {
			return c, err
		}
		if a.Assignee != t.Assignee {
			c.set("assignee", a.Assignee)
			c.audit = append(c.audit, entry(ActionAssign, t.Assignee, a.Assignee))
		}
	case ActComment:
		c.audit = append(c.audit, AuditEntry{TicketID: t.ID, IncidentID: via, At: now, Actor: a.Actor, Action: ActionComment, To: a.Comment, Note: a.Note})
	case ActSeverity:
		if err := needOpen(); err != nil {
			return c, err
		}
		if a.Severity != t.Severity {
			tier, err := customerTier(ctx, tx, t.CustomerID)
			if err != nil {
				return c, err
			}
			c.set("severity", int(a.Severity))
			c.audit = append(c.audit, entry(ActionSeverity, t.Severity.String(), a.Severity.String()))
			due := t.CreatedAt.Add(cfg.SLA.due(tier, int(a.Severity)))
			c.set("due_at", formatTime(due))
			if t.DueAt == nil || !t.DueAt.Equal(due) {
				c.audit = append(c.audit, entry(ActionDue, fmtOptTime(t.DueAt), formatTime(due)))
			}
		}
	case ActResolve:
		if err := needOpen(); err != nil {
			return c, fmt.Errorf("%w: ticket %d is already resolved", ErrConflict, t.ID)
		}
		c.set("status", string(StatusResolved))
		c.set("resolved_at", formatTime(now))
		c.set("resolve_after", nil)
		c.audit = append(c.audit, entry(ActionStatus, string(t.Status), string(StatusResolved)))
		if a.Outcome != "" && a.Outcome != t.Outcome {
			c.set("outcome", string(a.Outcome))
			c.audit = append(c.audit, entry(ActionOutcome, string(t.Outcome), string(a.Outcome)))
		}
	case ActReopen:
		if !resolved {
			return c, fmt.Errorf("%w: ticket %d is not resolved", ErrConflict, t.ID)
		}
		tier, err := customerTier(ctx, tx, t.CustomerID)
		if err != nil {
			return c, err
		}
		c.set("status", string(StatusOpen))
		c.set("resolved_at", nil)
		c.set("acknowledged_at", nil)
		c.set("reopen_count", t.ReopenCount+1)
		c.set("due_at", formatTime(now.Add(cfg.SLA.due(tier, int(t.Severity)))))
		c.audit = append(c.audit, entry(ActionStatus, string(StatusResolved), string(StatusOpen)))
	case ActOutcome:
		if a.Outcome != t.Outcome {
			c.set("outcome", string(a.Outcome))
			c.audit = append(c.audit, entry(ActionOutcome, string(t.Outcome), string(a.Outcome)))
		}
	}
	return c, nil
}

func fmtOptTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

// applyChange writes c to row id of table in tx.
func applyChange(ctx context.Context, tx txn, table string, id int64, c change, now time.Time) error {
	if len(c.sets) > 0 {
		cols := make([]string, 0, len(c.sets))
		for col := range c.sets {
			cols = append(cols, col)
		}
		slices.Sort(cols)
		args := make([]any, 0, len(cols)+2)
		for i, col := range cols {
			args = append(args, c.sets[col])
			cols[i] = col + " = ?"
		}
		args = append(args, formatTime(now), id)
		if _, err := tx.exec(ctx, `UPDATE `+table+` SET `+strings.Join(cols, ", ")+`, updated_at = ? WHERE id = ?`, args...); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w: another ticket for this device and fault is open", ErrConflict)
			}
			return fmt.Errorf("update %s: %w", table, err)
		}
		if table == "tickets" {
			switch c.sets["status"] {
			case string(StatusResolved):
				if err := enqueueTicketEvent(ctx, tx, id, EventTicketResolved, now); err != nil {
					return err
				}
			case string(StatusAcknowledged):
				if err := enqueueTicketEvent(ctx, tx, id, EventTicketAcknowledged, now); err != nil {
					return err
				}
			}
		}
	}
	for _, e := range c.audit {
		if err := addAudit(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}

// ApplyTicket applies a staff Action to ticket id and records it in the
// audit trail, in one transaction, and returns the ticket as it is after.
// Errors wrap ErrNotFound, ErrInvalidArgument (a bad Action) or ErrConflict
// (the ticket's state does not allow it).
func (s *SQLStore) applyTicket(ctx context.Context, id int64, a Action, now time.Time, cfg TicketsConfig) (Ticket, error) {
	if err := a.Validate(); err != nil {
		return Ticket{}, err
	}
	var t Ticket
	err := s.writeTx(ctx, func(tx txn) error {
		cur, err := getTicket(ctx, tx, id, tx.forUpdate())
		if err != nil {
			return err
		}
		c, err := ticketChange(ctx, tx, cur, a, now, cfg, 0)
		if err != nil {
			return err
		}
		if err := applyChange(ctx, tx, "tickets", id, c, now); err != nil {
			return err
		}
		t, err = getTicket(ctx, tx, id, "")
		return err
	})
	if err != nil {
		return Ticket{}, fmt.Errorf("%s ticket %d: %w", a.Kind, id, err)
	}
	return t, nil
}

// applyIncident applies a staff Action to incident id and to each of its
// member tickets the action suits (acknowledge skips members already
// acknowledged; resolve skips resolved ones), all in one transaction. It
// returns the incident after and the ids of the tickets it changed.
func (s *SQLStore) applyIncident(ctx context.Context, id int64, a Action, now time.Time, cfg TicketsConfig) (Incident, []int64, error) {
	if err := a.Validate(); err != nil {
		return Incident{}, nil, err
	}
	if a.Kind == ActSeverity {
		return Incident{}, nil, fmt.Errorf("severity incident %d: %w: an incident's severity follows its tickets; change theirs", id, ErrInvalidArgument)
	}
	var (
		in      Incident
		changed []int64
	)
	err := s.writeTx(ctx, func(tx txn) error {
		cur, err := scanIncident(tx.queryRow(ctx, `SELECT `+incidentColumns+` FROM incidents i WHERE i.id = ?`+tx.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		c, err := incidentChange(cur, a, now)
		if err != nil {
			return err
		}
		if err := applyChange(ctx, tx, "incidents", id, c, now); err != nil {
			return err
		}
		if a.Kind == ActComment {
			return nil // said once, on the incident
		}
		members, err := ticketIDs(ctx, tx, `SELECT id FROM tickets WHERE incident_id = ? ORDER BY id`, id)
		if err != nil {
			return err
		}
		for _, tid := range members {
			t, err := getTicket(ctx, tx, tid, tx.forUpdate())
			if err != nil {
				return err
			}
			if a.Kind != ActReopen && a.Kind != ActOutcome && t.Status == StatusResolved {
				continue // a member resolved on its own stays so
			}
			if a.Kind == ActReopen && (t.Status != StatusResolved || t.ResolvedAt == nil || cur.ResolvedAt == nil || !t.ResolvedAt.Equal(*cur.ResolvedAt)) {
				continue // reopen only what the incident's resolve closed
			}
			tc, err := ticketChange(ctx, tx, t, a, now, cfg, id)
			if errors.Is(err, ErrConflict) {
				continue // e.g. already acknowledged
			}
			if err != nil {
				return err
			}
			if len(tc.sets) == 0 && len(tc.audit) == 0 {
				continue
			}
			if err := applyChange(ctx, tx, "tickets", tid, tc, now); err != nil {
				return err
			}
			changed = append(changed, tid)
		}
		return nil
	})
	if err != nil {
		return Incident{}, nil, fmt.Errorf("%s incident %d: %w", a.Kind, id, err)
	}
	in, err = s.GetIncident(ctx, id)
	return in, changed, err
}

func incidentChange(in Incident, a Action, now time.Time) (change, error) {
	var c change
	entry := func(action, from, to string) AuditEntry {
		return AuditEntry{IncidentID: in.ID, At: now, Actor: a.Actor, Action: action, From: from, To: to, Note: a.Note}
	}
	resolved := in.Status == StatusResolved
	switch a.Kind {
	case ActAcknowledge:
		if resolved || in.Status == StatusAcknowledged {
			return c, fmt.Errorf("%w: incident %d is %s", ErrConflict, in.ID, in.Status)
		}
		c.set("status", string(StatusAcknowledged))
		c.set("acknowledged_at", formatTime(now))
		c.audit = append(c.audit, entry(ActionStatus, string(in.Status), string(StatusAcknowledged)))
	case ActAssign:
		if resolved {
			return c, fmt.Errorf("%w: incident %d is resolved", ErrConflict, in.ID)
		}
		if a.Assignee != in.Assignee {
			c.set("assignee", a.Assignee)
			c.audit = append(c.audit, entry(ActionAssign, in.Assignee, a.Assignee))
		}
	case ActComment:
		c.audit = append(c.audit, AuditEntry{IncidentID: in.ID, At: now, Actor: a.Actor, Action: ActionComment, To: a.Comment, Note: a.Note})
	case ActResolve:
		if resolved {
			return c, fmt.Errorf("%w: incident %d is already resolved", ErrConflict, in.ID)
		}
		c.set("status", string(StatusResolved))
		c.set("resolved_at", formatTime(now))
		c.audit = append(c.audit, entry(ActionStatus, string(in.Status), string(StatusResolved)))
		if a.Outcome != "" && a.Outcome != in.Outcome {
			c.set("outcome", string(a.Outcome))
			c.audit = append(c.audit, entry(ActionOutcome, string(in.Outcome), string(a.Outcome)))
		}
	case ActReopen:
		if !resolved {
			return c, fmt.Errorf("%w: incident %d is not resolved", ErrConflict, in.ID)
		}
		c.set("status", string(StatusOpen))
		c.set("resolved_at", nil)
		c.set("acknowledged_at", nil)
		c.audit = append(c.audit, entry(ActionStatus, string(StatusResolved), string(StatusOpen)))
	case ActOutcome:
		if a.Outcome != in.Outcome {
			c.set("outcome", string(a.Outcome))
			c.audit = append(c.audit, entry(ActionOutcome, string(in.Outcome), string(a.Outcome)))
		}
	}
	return c, nil
}

// sweep resolves open tickets whose fault stayed clear until their
// resolve_after, and open incidents none of whose tickets is open any more.
func (s *SQLStore) sweep(ctx context.Context, now time.Time, cfg TicketsConfig) (tickets, incidents []int64, err error) {
	const batch = 200
	for {
		var ids []int64
		err := s.writeTx(ctx, func(tx txn) error {
			cands, err := ticketIDs(ctx, tx, `SELECT id FROM tickets
				WHERE status <> 'resolved' AND resolve_after IS NOT NULL AND resolve_after <= ? ORDER BY id LIMIT ?`,
				formatTime(now), batch)
			if err != nil {
				return err
			}
			for _, id := range cands {
				var status string
				// Checked again under the lock: a raise since the SELECT
				// cancels the resolve.
				err := tx.queryRow(ctx, `SELECT status FROM tickets
					WHERE id = ? AND status <> 'resolved' AND resolve_after IS NOT NULL AND resolve_after <= ?`+tx.forUpdate(),
					id, formatTime(now)).Scan(&status)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return fmt.Errorf("recheck ticket %d: %w", id, err)
				}
				c := change{audit: []AuditEntry{{TicketID: id, At: now, Actor: SystemActor, Action: ActionStatus,
					From: status, To: string(StatusResolved), Note: fmt.Sprintf("the fault stayed clear for %s", cfg.ResolveHold)}}}
				c.set("status", string(StatusResolved))
				c.set("resolved_at", formatTime(now))
				c.set("resolve_after", nil)
				if err := applyChange(ctx, tx, "tickets", id, c, now); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			if len(cands) == batch && len(ids) == 0 {
				return errors.New("no progress")
			}
			return nil
		})
		if err != nil {
			return tickets, incidents, fmt.Errorf("sweep tickets: %w", err)
		}
		tickets = append(tickets, ids...)
		if len(ids) < batch {
			break
		}
	}
	err = s.writeTx(ctx, func(tx txn) error {
		ids, err := ticketIDs(ctx, tx, `SELECT i.id FROM incidents i WHERE i.status <> 'resolved'
			AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.incident_id = i.id AND t.status <> 'resolved') ORDER BY i.id`)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var status string
			if err := tx.queryRow(ctx, `SELECT status FROM incidents WHERE id = ?`+tx.forUpdate(), id).Scan(&status); err != nil {
				return fmt.Errorf("read incident %d: %w", id, err)
			}
			c := change{audit: []AuditEntry{{IncidentID: id, At: now, Actor: SystemActor, Action: ActionStatus,
				From: status, To: string(StatusResolved), Note: "all its tickets are resolved"}}}
			c.set("status", string(StatusResolved))
			c.set("resolved_at", formatTime(now))
			if err := applyChange(ctx, tx, "incidents", id, c, now); err != nil {
				return err
			}
		}
		incidents = ids
		return nil
	})
	if err != nil {
		return tickets, incidents, fmt.Errorf("sweep incidents: %w", err)
	}
	return tickets, incidents, nil
}

// ListAudit returns audit entries oldest first, a page at a time.
func (s *SQLStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, string, error) {
	var (
		where []string
		args  []any
	)
	if f.TicketID != 0 {
		where, args = append(where, "ticket_id = ?"), append(args, f.TicketID)
	}
	if f.IncidentID != 0 {
		where, args = append(where, "incident_id = ?"), append(args, f.IncidentID)
	}
	if f.Subject != "" {
		where, args = append(where, "subject = ?"), append(args, f.Subject)
	}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, formatTime(f.Since))
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
		where, args = append(where, "id > ?"), append(args, after)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	q := `SELECT id, ticket_id, incident_id, subject, at, actor, action, from_value, to_value, note FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id LIMIT ?`
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q), append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	items := []AuditEntry{}
	for rows.Next() {
		var (
			e                AuditEntry
			ticket, incident sql.NullInt64
			at               string
		)
		if err := rows.Scan(&e.ID, &ticket, &incident, &e.Subject, &at, &e.Actor, &e.Action, &e.From, &e.To, &e.Note); err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
		e.TicketID, e.IncidentID = ticket.Int64, incident.Int64
		if e.At, err = parseTime(at); err != nil {
			return nil, "", fmt.Errorf("list audit: at: %w", err)
		}
		items = append(items, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(items[limit-1].ID)
	}
	return items, next, nil
}
