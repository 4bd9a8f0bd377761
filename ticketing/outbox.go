package ticketing

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// Notification events: what a ticket change tells a customer or staff.
// The outbox row is written in the transaction of the change (DESIGN
// "Notifications"); package notify delivers it.
const (
	EventTicketOpened       = "ticket.opened"       // a customer-visible fault opened (or reopened)
	EventTicketAcknowledged = "ticket.acknowledged" // staff took it on
	EventTicketResolved     = "ticket.resolved"     // fixed, by staff or because the fault stayed clear
	EventStaffCritical      = "staff.ticket_critical"
	EventStaffIncident      = "staff.incident_opened"
	EventDigest             = "digest" // the day's messages beyond the daily cap, in one
)

// Audiences of a notification.
const (
	AudienceCustomer = "customer"
	AudienceStaff    = "staff"
)

// NotificationStatus is where an outbox row is.
type NotificationStatus string

// Notification statuses. Pending rows wait for the dispatcher (or for
// quiet hours to end); delivered, dead, suppressed (merged into another
// message, opted out, no channel) and digested (folded into the day's
// digest) are final but for a retry of a dead one.
const (
	NotifyPending    NotificationStatus = "pending"
	NotifyDelivered  NotificationStatus = "delivered"
	NotifyDead       NotificationStatus = "dead"
	NotifySuppressed NotificationStatus = "suppressed"
	NotifyDigested   NotificationStatus = "digested"
)

// Valid reports whether s is a defined status.
func (s NotificationStatus) Valid() bool {
	switch s {
	case NotifyPending, NotifyDelivered, NotifyDead, NotifySuppressed, NotifyDigested:
		return true
	}
	return false
}

// Attempt outcomes.
const (
	AttemptDelivered = "delivered"
	AttemptRetry     = "retry"  // a temporary failure: tried again after a backoff
	AttemptFailed    = "failed" // a permanent failure of this channel
)

// A Notification is one outbox row: one message to one customer (or to
// staff) about one ticket change, and every attempt to deliver it.
type Notification struct {
	ID             int64              `json:"id"`
	IdempotencyKey string             `json:"idempotency_key"` // the same on every attempt: X-Forewarn-Delivery
	Event          string             `json:"event"`
	Audience       string             `json:"audience"`
	TicketID       int64              `json:"ticket_id,omitempty"`
	IncidentID     int64              `json:"incident_id,omitempty"`
	CustomerID     string             `json:"customer_id,omitempty"`
	Severity       telemetry.Severity `json:"severity"`
	Status         NotificationStatus `json:"status"`
	AttemptCount   int                `json:"attempt_count"`
	Channel        string             `json:"channel,omitempty"`    // the channel that delivered it
	Note           string             `json:"note,omitempty"`       // why it waits, was suppressed or died
	DigestID       int64              `json:"digest_id,omitempty"`  // digested: the digest that carries it
	DigestDay      string             `json:"digest_day,omitempty"` // a digest: the customer's local day it covers
	CreatedAt      time.Time          `json:"created_at"`
	UpdatedAt      time.Time          `json:"updated_at"`
	NotBefore      time.Time          `json:"not_before"` // pending: not sent before this
	DeliveredAt    *time.Time         `json:"delivered_at,omitempty"`
	Attempts       []Attempt          `json:"attempts"` // oldest first

	// Claim is the lease token of a claimed row (ClaimNotifications); the
	// row's updates must present it.
	Claim string `json:"-"`
}

// An Attempt is one try to deliver a notification on one channel.
type Attempt struct {
	At         time.Time `json:"at"`
	Channel    string    `json:"channel"`
	Outcome    string    `json:"outcome"` // delivered, retry, failed
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// IdempotencyKey is the delivery key of outbox row id.
func IdempotencyKey(id int64) string { return fmt.Sprintf("forewarn-%d", id) }

// NotificationFilter selects notifications. Zero fields match everything.
type NotificationFilter struct {
	Status     NotificationStatus
	TicketID   int64
	CustomerID string
	Limit      int
	Cursor     string
}

// enqueue writes one outbox row in the caller's transaction.
func enqueue(ctx context.Context, tx txn, event, audience string, ticket, incident int64, customer string, sev telemetry.Severity, now time.Time) error {
	var t, i any
	if ticket != 0 {
		t = ticket
	}
	if incident != 0 {
		i = incident
	}
	if !sev.Valid() {
		sev = telemetry.SeverityInfo
	}
	if _, err := tx.exec(ctx, `INSERT INTO outbox (event, audience, ticket_id, incident_id, customer_id, severity, created_at, updated_at, not_before)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, event, audience, t, i, customer, int(sev), formatTime(now), formatTime(now), formatTime(now)); err != nil {
		return fmt.Errorf("write outbox row: %w", err)
	}
	return nil
}

// enqueueTicketEvent writes the customer row for event on ticket id when
// the ticket concerns its customer (customer visible, with an owner), and
// a staff row for a new critical ticket.
func enqueueTicketEvent(ctx context.Context, tx txn, id int64, event string, now time.Time) error {
	var (
		customer string
		visible  bool
		sev      telemetry.Severity
		incident sql.NullInt64
	)
	if err := tx.queryRow(ctx, `SELECT customer_id, customer_visible, severity, incident_id FROM tickets WHERE id = ?`, id).
		Scan(&customer, &visible, &sev, &incident); err != nil {
		return fmt.Errorf("read ticket %d for the outbox: %w", id, err)
	}
	if visible && customer != "" {
		if err := enqueue(ctx, tx, event, AudienceCustomer, id, incident.Int64, customer, sev, now); err != nil {
			return err
		}
	}
	if event == EventTicketOpened && sev == telemetry.SeverityCritical {
		return enqueue(ctx, tx, EventStaffCritical, AudienceStaff, id, incident.Int64, customer, sev, now)
	}
	return nil
}

const notificationColumns = `id, event, audience, ticket_id, incident_id, customer_id, severity, status, attempts, channel, note,
	digest_id, COALESCE(digest_day, ''), created_at, updated_at, not_before, delivered_at, claim`

func scanNotification(r interface{ Scan(...any) error }) (Notification, error) {
	var (
		n                        Notification
		ticket, incident, digest sql.NullInt64
		status, cr, up, nb       string
		delivered                sql.NullString
	)
	if err := r.Scan(&n.ID, &n.Event, &n.Audience, &ticket, &incident, &n.CustomerID, &n.Severity, &status, &n.AttemptCount,
		&n.Channel, &n.Note, &digest, &n.DigestDay, &cr, &up, &nb, &delivered, &n.Claim); err != nil {
		return Notification{}, err
	}
	n.TicketID, n.IncidentID, n.DigestID = ticket.Int64, incident.Int64, digest.Int64
	n.Status = NotificationStatus(status)
	n.IdempotencyKey = IdempotencyKey(n.ID)
	n.Attempts = []Attempt{}
	var err error
	if n.CreatedAt, err = parseTime(cr); err != nil {
		return Notification{}, fmt.Errorf("notification %d: created_at: %w", n.ID, err)
	}
	if n.UpdatedAt, err = parseTime(up); err != nil {
		return Notification{}, fmt.Errorf("notification %d: updated_at: %w", n.ID, err)
	}
	if n.NotBefore, err = parseTime(nb); err != nil {
		return Notification{}, fmt.Errorf("notification %d: not_before: %w", n.ID, err)
	}
	if n.DeliveredAt, err = optTime(delivered); err != nil {
		return Notification{}, fmt.Errorf("notification %d: delivered_at: %w", n.ID, err)
	}
	return n, nil
}

func newClaim() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ClaimNotifications leases up to limit pending rows that are due (not
// before now, created at or before createdBefore) and not leased by a
// live claim, for lease. Each returned row carries its Claim token; a
// process killed while it holds a row loses it when the lease ends, and
// another claims it again. On PostgreSQL concurrent claimers skip each
// other's rows (FOR UPDATE SKIP LOCKED); SQLite has one writer at a time.
func (s *SQLStore) ClaimNotifications(ctx context.Context, now, createdBefore time.Time, lease time.Duration, limit int) ([]Notification, error) {
	if limit <= 0 {
		limit = 1
	}
	claim := newClaim()
	skip := ""
	if s.pg {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	var out []Notification
	err := s.writeTx(ctx, func(tx txn) error {
		rows, err := tx.query(ctx, `UPDATE outbox SET claimed_until = ?, claim = ?
			WHERE id IN (SELECT id FROM outbox
				WHERE status = 'pending' AND not_before <= ? AND created_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)
				ORDER BY not_before, id LIMIT ?`+skip+`)
			RETURNING `+notificationColumns,
			formatTime(now.Add(lease)), claim, formatTime(now), formatTime(createdBefore), formatTime(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			n, err := scanNotification(rows)
			if err != nil {
				return err
			}
			out = append(out, n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim notifications: %w", err)
	}
	// RETURNING has no order: oldest due first.
	sortNotifications(out)
	return out, nil
}

func sortNotifications(ns []Notification) {
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && ns[j].ID < ns[j-1].ID; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

// A Completion is what the dispatcher made of a claimed row: the attempts
// it made (none when it only deferred the row) and where the row goes.
type Completion struct {
	ID       int64
	Claim    string
	Attempts []Attempt
	Status   NotificationStatus // pending (retry later or deferred), delivered, dead, suppressed
	// NotBefore is when a pending row is due again.
	NotBefore time.Time
	Channel   string // delivered: the channel that did it
	Note      string
	// CountDay, for a delivered customer row, is the customer's local day
	// ("2026-11-22") whose daily-cap counter it counts against; "" counts
	// nothing.
	CountDay string
	Now      time.Time // the wall clock of the change

}

// ErrLeaseLost is wrapped by the error of a Completion whose claim expired
// and was taken by another dispatcher: that one will deliver the row.
var ErrLeaseLost = errors.New("lease lost")

// CompleteNotification records c in one transaction: its attempts, the
// row's new status, and the daily counter of a delivery. The row must
// still be held by c.Claim; else nothing changes and the error wraps
// ErrLeaseLost.
func (s *SQLStore) CompleteNotification(ctx context.Context, c Completion) error {
	if !c.Status.Valid() || c.Status == NotifyDigested {
		return fmt.Errorf("complete notification %d: %w: status %q", c.ID, ErrInvalidArgument, c.Status)
	}
	err := s.writeTx(ctx, func(tx txn) error {
		var delivered any
		if c.Status == NotifyDelivered {
			delivered = formatTime(c.Now)
		}
		nb := c.NotBefore
		if nb.IsZero() {
			nb = c.Now
		}
		r, err := tx.exec(ctx, `UPDATE outbox SET status = ?, attempts = attempts + ?, channel = ?, note = ?, not_before = ?,
				delivered_at = COALESCE(delivered_at, ?), claimed_until = NULL, claim = '', updated_at = ?
			WHERE id = ? AND claim = ? AND status = 'pending'`,
			string(c.Status), len(c.Attempts), c.Channel, c.Note, formatTime(nb), delivered, formatTime(c.Now), c.ID, c.Claim)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return ErrLeaseLost
		}
		for _, a := range c.Attempts {
			if err := insertAttempt(ctx, tx, c.ID, a); err != nil {
				return err
			}
		}
		if c.Status == NotifyDelivered && c.CountDay != "" {
			if err := countDaily(ctx, tx, c.ID, c.CountDay); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("complete notification %d: %w", c.ID, err)
	}
	return nil
}

func insertAttempt(ctx context.Context, tx txn, id int64, a Attempt) error {
	if _, err := tx.exec(ctx, `INSERT INTO outbox_attempts (outbox_id, at, channel, outcome, status_code, error, duration_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, id, formatTime(a.At), a.Channel, a.Outcome, a.StatusCode, a.Error, a.DurationMS); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

func countDaily(ctx context.Context, tx txn, id int64, day string) error {
	var customer string
	if err := tx.queryRow(ctx, `SELECT customer_id FROM outbox WHERE id = ?`, id).Scan(&customer); err != nil {
		return fmt.Errorf("count daily: %w", err)
	}
	if _, err := tx.exec(ctx, `INSERT INTO notify_daily (customer_id, day, sent) VALUES (?, ?, 1)
		ON CONFLICT (customer_id, day) DO UPDATE SET sent = notify_daily.sent + 1`, customer, day); err != nil {
		return fmt.Errorf("count daily: %w", err)
	}
	return nil
}

// DailySent returns how many messages customer got on local day.
func (s *SQLStore) DailySent(ctx context.Context, customer, day string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, rebind(s.pg, `SELECT sent FROM notify_daily WHERE customer_id = ? AND day = ?`), customer, day).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("daily sent of %s: %w", customer, err)
	}
	return n, nil
}

// MergeNotification gives claimed row id the storm key group (one
// message per customer and group, e.g. one per incident and event). When
// another row of the same customer already has the key, row id is
// suppressed as merged into it and MergeNotification returns that row's
// id; else it returns 0 and the row goes on.
func (s *SQLStore) MergeNotification(ctx context.Context, id int64, claim, group string, now time.Time) (int64, error) {
	var into int64
	err := s.writeTx(ctx, func(tx txn) error {
		var customer string
		if err := tx.queryRow(ctx, `SELECT customer_id FROM outbox WHERE id = ? AND claim = ? AND status = 'pending'`, id, claim).Scan(&customer); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrLeaseLost
			}
			return err
		}
		err := tx.queryRow(ctx, `SELECT id FROM outbox WHERE customer_id = ? AND group_key = ? AND id <> ?`, customer, group, id).Scan(&into)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if into != 0 {
			_, err := tx.exec(ctx, `UPDATE outbox SET status = 'suppressed', note = ?, claimed_until = NULL, claim = '', updated_at = ? WHERE id = ?`,
				fmt.Sprintf("merged into notification %d (%s)", into, group), formatTime(now), id)
			return err
		}
		_, err = tx.exec(ctx, `UPDATE outbox SET group_key = ? WHERE id = ?`, group, id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("merge notification %d: %w", id, err)
	}
	return into, nil
}

// DigestNotification folds claimed row id into its customer's digest of
// local day, due at at: the digest row is made once per customer and day.
// It returns the digest's id.
func (s *SQLStore) DigestNotification(ctx context.Context, id int64, claim, day string, at, now time.Time) (int64, error) {
	var digest int64
	err := s.writeTx(ctx, func(tx txn) error {
		var (
			customer string
			sev      telemetry.Severity
		)
		if err := tx.queryRow(ctx, `SELECT customer_id, severity FROM outbox WHERE id = ? AND claim = ? AND status = 'pending'`, id, claim).
			Scan(&customer, &sev); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrLeaseLost
			}
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO outbox (event, audience, customer_id, severity, digest_day, created_at, updated_at, not_before)
			VALUES (?, 'customer', ?, ?, ?, ?, ?, ?)
			ON CONFLICT (customer_id, digest_day) WHERE digest_day IS NOT NULL DO NOTHING`,
			EventDigest, customer, int(sev), day, formatTime(now), formatTime(now), formatTime(at)); err != nil {
			return fmt.Errorf("write digest row: %w", err)
		}
		if err := tx.queryRow(ctx, `SELECT id FROM outbox WHERE customer_id = ? AND digest_day = ?`, customer, day).Scan(&digest); err != nil {
			return fmt.Errorf("read digest row: %w", err)
		}
		_, err := tx.exec(ctx, `UPDATE outbox SET status = 'digested', digest_id = ?, note = ?, claimed_until = NULL, claim = '', updated_at = ? WHERE id = ?`,
			digest, fmt.Sprintf("daily cap reached; in the digest of %s (notification %d)", day, digest), formatTime(now), id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("digest notification %d: %w", id, err)
	}
	return digest, nil
}

// DigestMembers returns the rows folded into digest id, oldest first.
func (s *SQLStore) DigestMembers(ctx context.Context, id int64) ([]Notification, error) {
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, `SELECT `+notificationColumns+` FROM outbox WHERE digest_id = ? ORDER BY id`), id)
	if err != nil {
		return nil, fmt.Errorf("digest members of %d: %w", id, err)
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("digest members of %d: %w", id, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// ListNotifications returns notifications newest first, each with its
// attempts, a page at a time. The console's ticket page calls it with
// NotificationFilter{TicketID: id}.
func (s *SQLStore) ListNotifications(ctx context.Context, f NotificationFilter) ([]Notification, string, error) {
	var (
		where []string
		args  []any
	)
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, "", fmt.Errorf("list notifications: %w: status: unknown %q: want pending, delivered, dead, suppressed or digested", ErrInvalidArgument, f.Status)
		}
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.TicketID != 0 {
		where, args = append(where, "ticket_id = ?"), append(args, f.TicketID)
	}
	if f.CustomerID != "" {
		where, args = append(where, "customer_id = ?"), append(args, f.CustomerID)
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list notifications: %w", err)
		}
		where, args = append(where, "id < ?"), append(args, after)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list notifications: %w", err)
	}
	q := `SELECT ` + notificationColumns + ` FROM outbox`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	items := []Notification{}
	err = s.readTx(ctx, func(tx txn) error {
		rows, err := tx.query(ctx, q, append(args, limit+1)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			n, err := scanNotification(rows)
			if err != nil {
				rows.Close()
				return err
			}
			items = append(items, n)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range items {
			if items[i].Attempts, err = attempts(ctx, tx, items[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list notifications: %w", err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(items[limit-1].ID)
	}
	return items, next, nil
}

func attempts(ctx context.Context, tx txn, id int64) ([]Attempt, error) {
	rows, err := tx.query(ctx, `SELECT at, channel, outcome, status_code, error, duration_ms FROM outbox_attempts WHERE outbox_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		var (
			a  Attempt
			at string
		)
		if err := rows.Scan(&at, &a.Channel, &a.Outcome, &a.StatusCode, &a.Error, &a.DurationMS); err != nil {
			return nil, fmt.Errorf("read attempts: %w", err)
		}
		if a.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read attempts: at: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// GetNotification returns notification id with its attempts; an unknown
// id wraps ErrNotFound.
func (s *SQLStore) GetNotification(ctx context.Context, id int64) (Notification, error) {
	var n Notification
	err := s.readTx(ctx, func(tx txn) error {
		var err error
		n, err = scanNotification(tx.queryRow(ctx, `SELECT `+notificationColumns+` FROM outbox WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		n.Attempts, err = attempts(ctx, tx, id)
		return err
	})
	if err != nil {
		return Notification{}, fmt.Errorf("get notification %d: %w", id, err)
	}
	return n, nil
}

// RetryNotification sends a dead notification again: pending, due now,
// its attempt count reset (its attempts stay on record), audited on its
// ticket. A notification that is not dead is a conflict.
func (s *SQLStore) RetryNotification(ctx context.Context, id int64, actor string, now time.Time) (Notification, error) {
	err := s.writeTx(ctx, func(tx txn) error {
		var (
			status string
			ticket sql.NullInt64
		)
		err := tx.queryRow(ctx, `SELECT status, ticket_id FROM outbox WHERE id = ?`+tx.forUpdate(), id).Scan(&status, &ticket)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if status != string(NotifyDead) {
			return fmt.Errorf("%w: notification %d is %s; only dead ones are retried", ErrConflict, id, status)
		}
		if _, err := tx.exec(ctx, `UPDATE outbox SET status = 'pending', attempts = 0, note = ?, not_before = ?, claimed_until = NULL, claim = '', updated_at = ?
			WHERE id = ?`, "retried by "+actor, formatTime(now), formatTime(now), id); err != nil {
			return err
		}
		return addAudit(ctx, tx, AuditEntry{TicketID: ticket.Int64, Subject: fmt.Sprintf("notification:%d", id), At: now, Actor: actor,
			Action: ActionNotifyRetry, From: string(NotifyDead), To: string(NotifyPending)})
	})
	if err != nil {
		return Notification{}, fmt.Errorf("retry notification %d: %w", id, err)
	}
	return s.GetNotification(ctx, id)
}

// CreateCallbackTask records a staff call-back task on ticket id (a tier
// rule, e.g. premium customers get a call), once per ticket, with an audit
// entry on the ticket. created is false when the ticket had one.
func (s *SQLStore) CreateCallbackTask(ctx context.Context, ticketID int64, customer string, now time.Time) (created bool, err error) {
	err = s.writeTx(ctx, func(tx txn) error {
		r, err := tx.exec(ctx, `INSERT INTO callback_tasks (ticket_id, customer_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT (ticket_id) DO NOTHING`, ticketID, customer, formatTime(now))
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return nil
		}
		created = true
		return addAudit(ctx, tx, AuditEntry{TicketID: ticketID, At: now, Actor: SystemActor, Action: ActionCallback,
			To: customer, Note: "call the customer back (tier rule)"})
	})
	if err != nil {
		return false, fmt.Errorf("create call-back task on ticket %d: %w", ticketID, err)
	}
	return created, nil
}

// OutboxDepth returns how many rows are pending and when the oldest was
// written (zero when none), for the dispatcher's gauges.
func (s *SQLStore) OutboxDepth(ctx context.Context) (int, time.Time, error) {
	var (
		n      int
		oldest sql.NullString
	)
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'`).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox depth: %w", err)
	}
	t, err := optTime(oldest)
	if err != nil || t == nil {
		return n, time.Time{}, err
	}
	return n, *t, nil
}
