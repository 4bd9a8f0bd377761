package ticketing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// An Incident groups the tickets of many devices that raised the same fault
// together: same site, same model and firmware, or same model
// (TicketsConfig.Incidents). Staff act on the incident once and its open
// member tickets follow.
type Incident struct {
	ID             int64              `json:"id"`
	Fault          string             `json:"fault"`
	Scope          string             `json:"scope"`       // site, firmware or model
	ScopeValue     string             `json:"scope_value"` // the site, "model@firmware", or the model
	Severity       telemetry.Severity `json:"severity"`    // the worst of its tickets
	Status         Status             `json:"status"`
	Assignee       string             `json:"assignee,omitempty"`
	Outcome        Outcome            `json:"outcome,omitempty"`
	OpenedAt       time.Time          `json:"opened_at"` // wall clock
	UpdatedAt      time.Time          `json:"updated_at"`
	AcknowledgedAt *time.Time         `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time         `json:"resolved_at,omitempty"`
	Tickets        int                `json:"tickets"`      // member tickets
	OpenTickets    int                `json:"open_tickets"` // of which not resolved
}

// IncidentFilter selects incidents for ListIncidents.
type IncidentFilter struct {
	Status Status
	Fault  string
	Limit  int
	Cursor string
}

// groupValue returns the value of a ticket's group under scope, "" when
// the ticket lacks the data (an unregistered device has no site).
func groupValue(scope, model, firmware, site string) (cond string, args []any, value string) {
	switch scope {
	case ScopeSite:
		if site != "" {
			return "site = ?", []any{site}, site
		}
	case ScopeFirmware:
		if model != "" && firmware != "" {
			return "model = ? AND firmware = ?", []any{model, firmware}, model + "@" + firmware
		}
	case ScopeModel:
		if model != "" {
			return "model = ?", []any{model}, model
		}
	}
	return "", nil, ""
}

// groupIncident puts ticket id, just opened or reopened, into an incident:
// the open incident of its group if there is one, or a new one when at
// least MinDevices open tickets of its group and fault, none in an
// incident yet, opened within Window. It returns the incident's id (0 for
// none) and whether it made a new one.
func groupIncident(ctx context.Context, tx txn, id int64, f telemetry.Finding, now time.Time, cfg TicketsConfig) (int64, bool, error) {
	ic := cfg.Incidents
	if ic.MinDevices < 2 {
		return 0, false, nil
	}
	if err := tx.lockFault(ctx, f.Fault); err != nil {
		return 0, false, err
	}
	var model, firmware, site string
	var sev telemetry.Severity
	if err := tx.queryRow(ctx, `SELECT model, firmware, site, severity FROM tickets WHERE id = ?`, id).Scan(&model, &firmware, &site, &sev); err != nil {
		return 0, false, fmt.Errorf("read ticket for grouping: %w", err)
	}
	for _, scope := range ic.GroupBy {
		cond, args, value := groupValue(scope, model, firmware, site)
		if value == "" {
			continue
		}
		var incident int64
		err := tx.queryRow(ctx, `SELECT id FROM incidents WHERE fault = ? AND scope = ? AND scope_value = ? AND status <> 'resolved'`,
			f.Fault, scope, value).Scan(&incident)
		if err == nil {
			return incident, false, joinIncident(ctx, tx, incident, []int64{id}, sev, now)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, false, fmt.Errorf("find incident: %w", err)
		}
		members, err := ticketIDs(ctx, tx, `SELECT id FROM tickets
			WHERE fault = ? AND status <> 'resolved' AND incident_id IS NULL AND created_at >= ? AND `+cond+` ORDER BY id`,
			append([]any{f.Fault, formatTime(now.Add(-ic.Window))}, args...)...)
		if err != nil {
			return 0, false, err
		}
		if len(members) < ic.MinDevices {
			continue
		}
		// lockFault serialises grouping per fault; should a writer that
		// skipped it (an older version) race this one, the unique index still
		// keeps one incident per group, and the loser joins it.
		r, err := tx.exec(ctx, `INSERT INTO incidents (fault, scope, scope_value, severity, status, opened_at, updated_at)
			VALUES (?, ?, ?, ?, 'open', ?, ?)
			ON CONFLICT (fault, scope, scope_value) WHERE status <> 'resolved' DO NOTHING`,
			f.Fault, scope, value, int(sev), formatTime(now), formatTime(now))
		if err != nil {
			return 0, false, fmt.Errorf("open incident: %w", err)
		}
		if err := tx.queryRow(ctx, `SELECT id FROM incidents WHERE fault = ? AND scope = ? AND scope_value = ? AND status <> 'resolved'`,
			f.Fault, scope, value).Scan(&incident); err != nil {
			return 0, false, fmt.Errorf("read new incident: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return incident, false, joinIncident(ctx, tx, incident, members, sev, now) // another writer's
		}
		if err := addAudit(ctx, tx, AuditEntry{IncidentID: incident, At: now, Actor: SystemActor, Action: ActionOpen, To: string(StatusOpen),
			Note: fmt.Sprintf("%d devices with %s %s raised %s within %s", len(members), scope, value, f.Fault, ic.Window)}); err != nil {
			return 0, false, err
		}
		if err := enqueue(ctx, tx, EventStaffIncident, AudienceStaff, 0, incident, "", sev, now); err != nil {
			return 0, false, err
		}
		return incident, true, joinIncident(ctx, tx, incident, members, sev, now)
	}
	return 0, false, nil
}

// incidentLockSpace is the first key of the PostgreSQL advisory locks that
// serialise incident grouping; the second is a hash of the fault.
const incidentLockSpace = 0x46570001

// lockFault serialises the incident grouping of one fault across every
// connection to the database, until the transaction ends. Without it, two
// writers opening tickets of one group at once each count the committed
// tickets without the other's, and either may stay below MinDevices (no
// incident, or a ticket left out of one). On PostgreSQL it takes a
// transaction-scoped advisory lock: a holder sees every ticket that earlier
// holders committed, so the last one sees them all. SQLite needs none:
// BEGIN IMMEDIATE already serialises writers, in every process.
func (t txn) lockFault(ctx context.Context, fault string) error {
	if !t.pg {
		return nil
	}
	if _, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(?))`, incidentLockSpace, fault); err != nil {
		return fmt.Errorf("lock incident grouping of %s: %w", fault, err)
	}
	return nil
}

// joinIncident links tickets to incident, records it on each, and raises
// the incident's severity to the worst of theirs.
func joinIncident(ctx context.Context, tx txn, incident int64, tickets []int64, sev telemetry.Severity, now time.Time) error {
	for _, id := range tickets {
		if _, err := tx.exec(ctx, `UPDATE tickets SET incident_id = ?, updated_at = ? WHERE id = ?`, incident, formatTime(now), id); err != nil {
			return fmt.Errorf("join incident: %w", err)
		}
		if err := addAudit(ctx, tx, AuditEntry{TicketID: id, IncidentID: incident, At: now, Actor: SystemActor, Action: ActionIncident,
			To: fmt.Sprint(incident)}); err != nil {
			return err
		}
	}
	var worst telemetry.Severity
	if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(severity), 1) FROM tickets WHERE incident_id = ?`, incident).Scan(&worst); err != nil {
		return fmt.Errorf("incident severity: %w", err)
	}
	return escalateIncident(ctx, tx, incident, max(worst, sev), now)
}

func escalateIncident(ctx context.Context, tx txn, incident int64, sev telemetry.Severity, now time.Time) error {
	if incident == 0 {
		return nil
	}
	if _, err := tx.exec(ctx, `UPDATE incidents SET severity = ?, updated_at = ? WHERE id = ? AND severity < ?`,
		int(sev), formatTime(now), incident, int(sev)); err != nil {
		return fmt.Errorf("escalate incident: %w", err)
	}
	return nil
}

func ticketIDs(ctx context.Context, tx txn, q string, args ...any) ([]int64, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("select tickets: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("select tickets: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

const incidentColumns = `i.id, i.fault, i.scope, i.scope_value, i.severity, i.status, i.assignee, i.outcome,
	i.opened_at, i.updated_at, i.acknowledged_at, i.resolved_at,
	(SELECT COUNT(*) FROM tickets t WHERE t.incident_id = i.id),
	(SELECT COUNT(*) FROM tickets t WHERE t.incident_id = i.id AND t.status <> 'resolved')`

func scanIncident(r interface{ Scan(...any) error }) (Incident, error) {
	var (
		in              Incident
		status, outcome string
		opened, updated string
		acked, resolved sql.NullString
	)
	if err := r.Scan(&in.ID, &in.Fault, &in.Scope, &in.ScopeValue, &in.Severity, &status, &in.Assignee, &outcome,
		&opened, &updated, &acked, &resolved, &in.Tickets, &in.OpenTickets); err != nil {
		return Incident{}, err
	}
	in.Status, in.Outcome = Status(status), Outcome(outcome)
	var err error
	if in.OpenedAt, err = parseTime(opened); err != nil {
		return Incident{}, fmt.Errorf("incident %d: opened_at: %w", in.ID, err)
	}
	if in.UpdatedAt, err = parseTime(updated); err != nil {
		return Incident{}, fmt.Errorf("incident %d: updated_at: %w", in.ID, err)
	}
	if in.AcknowledgedAt, err = optTime(acked); err != nil {
		return Incident{}, fmt.Errorf("incident %d: acknowledged_at: %w", in.ID, err)
	}
	if in.ResolvedAt, err = optTime(resolved); err != nil {
		return Incident{}, fmt.Errorf("incident %d: resolved_at: %w", in.ID, err)
	}
	return in, nil
}

// GetIncident returns incident id; an unknown id wraps ErrNotFound.
func (s *SQLStore) GetIncident(ctx context.Context, id int64) (Incident, error) {
	in, err := scanIncident(s.db.QueryRowContext(ctx, rebind(s.pg, `SELECT `+incidentColumns+` FROM incidents i WHERE i.id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Incident{}, fmt.Errorf("get incident %d: %w", id, err)
	}
	return in, nil
}

// ListIncidents returns incidents newest first, a page at a time.
func (s *SQLStore) ListIncidents(ctx context.Context, f IncidentFilter) ([]Incident, string, error) {
	var (
		where []string
		args  []any
	)
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, "", fmt.Errorf("list incidents: %w: status: unknown %q: want open, acknowledged or resolved", ErrInvalidArgument, f.Status)
		}
		where, args = append(where, "i.status = ?"), append(args, string(f.Status))
	}
	if f.Fault != "" {
		where, args = append(where, "i.fault = ?"), append(args, f.Fault)
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list incidents: %w", err)
		}
		where, args = append(where, "i.id < ?"), append(args, after)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list incidents: %w", err)
	}
	q := `SELECT ` + incidentColumns + ` FROM incidents i`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY i.id DESC LIMIT ?`
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q), append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	items := []Incident{}
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list incidents: %w", err)
		}
		items = append(items, in)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list incidents: %w", err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(items[limit-1].ID)
	}
	return items, next, nil
}
