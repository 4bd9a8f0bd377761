package ticketing

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// A migration is one step of the schema. Migrations are append-only: never
// edit one that has shipped; add the next version instead. Each runs in its
// own transaction together with its schema_migrations row, so a failed step
// leaves the database at the previous version.
//
// Each step has the same meaning in both dialects. SQLite gets STRICT
// tables and INTEGER AUTOINCREMENT keys; PostgreSQL gets BIGINT identity
// keys and BOOLEAN columns. Times are TEXT in timeLayout in both (fixed
// width UTC with nanoseconds: exact round trips, text order is time order),
// so every query in this package is the same in both but for its
// placeholders. The unique partial indexes that enforce one open ticket per
// (device, fault) and one open incident per group are identical.
type migration struct {
	version  int
	name     string
	sqlite   []string
	postgres []string
}

var migrations = []migration{
	{version: 1, name: "tickets and their timeline",
		sqlite: []string{
			// Severity is telemetry.Severity's rank (1 info .. 4 critical), so SQL
			// can compare and escalate it.
			`CREATE TABLE tickets (
				id               INTEGER PRIMARY KEY AUTOINCREMENT,
				device_id        TEXT    NOT NULL,
				model            TEXT    NOT NULL DEFAULT '',
				fault            TEXT    NOT NULL,
				rule             TEXT    NOT NULL DEFAULT '',
				severity         INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
				status           TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
				customer_visible INTEGER NOT NULL DEFAULT 0 CHECK (customer_visible IN (0, 1)),
				remedy           TEXT    NOT NULL DEFAULT '',
				opened_at        TEXT    NOT NULL,
				updated_at       TEXT    NOT NULL,
				last_raised_at   TEXT    NOT NULL,
				raise_count      INTEGER NOT NULL DEFAULT 1 CHECK (raise_count >= 1),
				cleared_at       TEXT,
				evidence         TEXT    NOT NULL DEFAULT '{}'
			) STRICT`,
			// The one-open-ticket rule (DESIGN "Tickets"), enforced by the database
			// so that concurrent writers cannot open duplicates.
			`CREATE UNIQUE INDEX tickets_one_open_per_fault ON tickets (device_id, fault) WHERE status <> 'resolved'`,
			`CREATE INDEX tickets_status ON tickets (status, id)`,
			`CREATE INDEX tickets_device ON tickets (device_id, id)`,
			`CREATE INDEX tickets_fault ON tickets (fault, id)`,
			`CREATE TABLE ticket_events (
				id        INTEGER PRIMARY KEY,
				ticket_id INTEGER NOT NULL REFERENCES tickets (id),
				at        TEXT    NOT NULL,
				kind      TEXT    NOT NULL CHECK (kind IN ('raised', 'cleared')),
				severity  INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
				evidence  TEXT    NOT NULL DEFAULT '{}'
			) STRICT`,
			`CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at, id)`,
		},
		postgres: []string{
			`CREATE TABLE tickets (
				id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				device_id        TEXT    NOT NULL,
				model            TEXT    NOT NULL DEFAULT '',
				fault            TEXT    NOT NULL,
				rule             TEXT    NOT NULL DEFAULT '',
				severity         INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
				status           TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
				customer_visible BOOLEAN NOT NULL DEFAULT FALSE,
				remedy           TEXT    NOT NULL DEFAULT '',
				opened_at        TEXT    NOT NULL,
				updated_at       TEXT    NOT NULL,
				last_raised_at   TEXT    NOT NULL,
				raise_count      INTEGER NOT NULL DEFAULT 1 CHECK (raise_count >= 1),
				cleared_at       TEXT,
				evidence         TEXT    NOT NULL DEFAULT '{}'
			)`,
			`CREATE UNIQUE INDEX tickets_one_open_per_fault ON tickets (device_id, fault) WHERE status <> 'resolved'`,
			`CREATE INDEX tickets_status ON tickets (status, id)`,
			`CREATE INDEX tickets_device ON tickets (device_id, id)`,
			`CREATE INDEX tickets_fault ON tickets (fault, id)`,
			`CREATE TABLE ticket_events (
				id        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				ticket_id BIGINT  NOT NULL REFERENCES tickets (id),
				at        TEXT    NOT NULL,
				kind      TEXT    NOT NULL CHECK (kind IN ('raised', 'cleared')),
				severity  INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
				evidence  TEXT    NOT NULL DEFAULT '{}'
			)`,
			`CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at, id)`,
		},
	},
	{version: 2, name: "lifecycle, audit, incidents, registry, api tokens",
		sqlite:   migration2(false),
		postgres: migration2(true),
	},
	{version: 3, name: "notification outbox, attempts, daily counters, call-back tasks",
		sqlite:   migration3(false),
		postgres: migration3(true),
	},
	{version: 4, name: "console indexes",
		sqlite:   migration4(false),
		postgres: migration4(true),
	},
}

// migration4 indexes what the support console reads (console.go). The
// work queue, its counts and the fleet page read the few tickets that are
// not resolved through a partial index that covers them, in work order.
// The fleet page counts devices by model, firmware and online state from
// an index. The KPIs read a period of tickets by creation time through an index that
// covers them too (on SQLite with the durations, the forecast's lead time
// included, as indexed expressions), so a year of tickets is read without
// touching the ticket rows or parsing a time.
func migration4(pg bool) []string {
	// The expressions are those ComputeKPIs reads (daysBetween, crossAtSQL).
	kpi := `CREATE INDEX tickets_kpi ON tickets (rule, created_at, fault, outcome, status, cleared_at,
		(julianday(acknowledged_at) - julianday(created_at)),
		(julianday(resolved_at) - julianday(created_at)),
		(julianday(json_extract(evidence, '$.cross_at')) - julianday(opened_at)))`
	if pg {
		kpi = `CREATE INDEX tickets_kpi ON tickets (created_at)
			INCLUDE (rule, fault, outcome, status, opened_at, acknowledged_at, resolved_at, cleared_at)`
	}
	return []string{
		`CREATE INDEX tickets_queue ON tickets (severity, due_at, id, status, fault, model, device_id, customer_id, incident_id)
			WHERE status <> 'resolved'`,
		kpi,
		`CREATE INDEX devices_firmware ON devices (model, firmware, online)`,
	}
}

// migration2 is written once for both dialects: the differences are the
// key and boolean column types and SQLite's STRICT.
func migration2(pg bool) []string {
	id, ref, boolean, strict := "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "INTEGER", " STRICT"
	if pg {
		id, ref, boolean, strict = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT", "BOOLEAN", ""
	}
	r := strings.NewReplacer("$ID", id, "$REF", ref, "$BOOL", boolean, "$STRICT", strict)
	stmts := []string{
		`CREATE TABLE customers (
			id          TEXT NOT NULL PRIMARY KEY,
			name        TEXT NOT NULL DEFAULT '',
			tier        TEXT NOT NULL DEFAULT 'standard' CHECK (tier IN ('standard', 'premium')),
			language    TEXT NOT NULL DEFAULT 'en',
			timezone    TEXT NOT NULL DEFAULT 'UTC',
			quiet_start TEXT NOT NULL DEFAULT '',
			quiet_end   TEXT NOT NULL DEFAULT '',
			channels    TEXT NOT NULL DEFAULT '[]',
			created_at  TEXT NOT NULL,
			updated_at  TEXT NOT NULL
		)$STRICT`,
		`CREATE TABLE devices (
			id          TEXT NOT NULL PRIMARY KEY,
			model       TEXT NOT NULL DEFAULT '',
			customer_id TEXT REFERENCES customers (id),
			site        TEXT NOT NULL DEFAULT '',
			firmware    TEXT NOT NULL DEFAULT '',
			source      TEXT NOT NULL CHECK (source IN ('api', 'import', 'auto')),
			last_seen   TEXT,
			online      $BOOL,
			created_at  TEXT NOT NULL,
			updated_at  TEXT NOT NULL
		)$STRICT`,
		`CREATE INDEX devices_customer ON devices (customer_id, id)`,
		`CREATE TABLE incidents (
			id              $ID,
			fault           TEXT    NOT NULL,
			scope           TEXT    NOT NULL CHECK (scope IN ('site', 'firmware', 'model')),
			scope_value     TEXT    NOT NULL,
			severity        INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
			status          TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
			assignee        TEXT    NOT NULL DEFAULT '',
			outcome         TEXT    NOT NULL DEFAULT '' CHECK (outcome IN ('', 'true_fault', 'false_alarm', 'customer_misuse')),
			opened_at       TEXT    NOT NULL,
			updated_at      TEXT    NOT NULL,
			acknowledged_at TEXT,
			resolved_at     TEXT
		)$STRICT`,
		// One open incident per (fault, grouping, value), enforced like the
		// one-open-ticket rule.
		`CREATE UNIQUE INDEX incidents_one_open_per_group ON incidents (fault, scope, scope_value) WHERE status <> 'resolved'`,
		`CREATE INDEX incidents_status ON incidents (status, id)`,
		`ALTER TABLE tickets ADD COLUMN created_at TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tickets ADD COLUMN customer_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tickets ADD COLUMN site TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tickets ADD COLUMN firmware TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tickets ADD COLUMN assignee TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tickets ADD COLUMN outcome TEXT NOT NULL DEFAULT '' CHECK (outcome IN ('', 'true_fault', 'false_alarm', 'customer_misuse'))`,
		`ALTER TABLE tickets ADD COLUMN reopen_count INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE tickets ADD COLUMN incident_id $REF REFERENCES incidents (id)`,
		`ALTER TABLE tickets ADD COLUMN resolve_after TEXT`,
		`ALTER TABLE tickets ADD COLUMN acknowledged_at TEXT`,
		`ALTER TABLE tickets ADD COLUMN resolved_at TEXT`,
		`ALTER TABLE tickets ADD COLUMN due_at TEXT`,
		`UPDATE tickets SET created_at = updated_at WHERE created_at = ''`,
		`CREATE INDEX tickets_resolve_after ON tickets (resolve_after) WHERE status <> 'resolved' AND resolve_after IS NOT NULL`,
		`CREATE INDEX tickets_customer ON tickets (customer_id, id)`,
		`CREATE INDEX tickets_incident ON tickets (incident_id, id)`,
		`CREATE INDEX tickets_key_resolved ON tickets (device_id, fault, resolved_at)`,
		`CREATE INDEX tickets_group ON tickets (fault, created_at) WHERE status <> 'resolved' AND incident_id IS NULL`,
		`CREATE TABLE audit (
			id          $ID,
			ticket_id   $REF REFERENCES tickets (id),
			incident_id $REF REFERENCES incidents (id),
			subject     TEXT NOT NULL DEFAULT '',
			at          TEXT NOT NULL,
			actor       TEXT NOT NULL,
			action      TEXT NOT NULL,
			from_value  TEXT NOT NULL DEFAULT '',
			to_value    TEXT NOT NULL DEFAULT '',
			note        TEXT NOT NULL DEFAULT ''
		)$STRICT`,
		`CREATE INDEX audit_ticket ON audit (ticket_id, id)`,
		`CREATE INDEX audit_incident ON audit (incident_id, id)`,
		`CREATE INDEX audit_subject ON audit (subject, id)`,
		`CREATE TABLE api_tokens (
			id          $ID,
			name        TEXT NOT NULL,
			hash        TEXT NOT NULL UNIQUE,
			role        TEXT NOT NULL CHECK (role IN ('viewer', 'agent', 'admin')),
			customer_id TEXT REFERENCES customers (id),
			created_at  TEXT NOT NULL,
			revoked_at  TEXT,
			CHECK (role <> 'admin' OR customer_id IS NULL)
		)$STRICT`,
	}
	for i, st := range stmts {
		stmts[i] = r.Replace(st)
	}
	return stmts
}

// migration3 adds the notification outbox (written in the transaction of
// the ticket change it reports), its delivery attempts, the per-customer
// daily counters of the cap, and staff call-back tasks. The unique partial
// indexes make storm merging (one message per customer and incident) and
// the one digest per customer and day hold across processes.
func migration3(pg bool) []string {
	id, ref, strict := "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", " STRICT"
	if pg {
		id, ref, strict = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT", ""
	}
	r := strings.NewReplacer("$ID", id, "$REF", ref, "$STRICT", strict)
	stmts := []string{
		`CREATE TABLE outbox (
			id            $ID,
			event         TEXT    NOT NULL,
			audience      TEXT    NOT NULL CHECK (audience IN ('customer', 'staff')),
			ticket_id     $REF    REFERENCES tickets (id),
			incident_id   $REF    REFERENCES incidents (id),
			customer_id   TEXT    NOT NULL DEFAULT '',
			severity      INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
			status        TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed', 'digested')),
			attempts      INTEGER NOT NULL DEFAULT 0,
			channel       TEXT    NOT NULL DEFAULT '',
			note          TEXT    NOT NULL DEFAULT '',
			group_key     TEXT,
			digest_id     $REF    REFERENCES outbox (id),
			digest_day    TEXT,
			created_at    TEXT    NOT NULL,
			updated_at    TEXT    NOT NULL,
			not_before    TEXT    NOT NULL,
			claimed_until TEXT,
			claim         TEXT    NOT NULL DEFAULT '',
			delivered_at  TEXT
		)$STRICT`,
		`CREATE INDEX outbox_due ON outbox (status, not_before, id)`,
		`CREATE INDEX outbox_ticket ON outbox (ticket_id, id)`,
		`CREATE INDEX outbox_customer ON outbox (customer_id, id)`,
		`CREATE INDEX outbox_digest_members ON outbox (digest_id, id)`,
		`CREATE UNIQUE INDEX outbox_one_per_group ON outbox (customer_id, group_key) WHERE group_key IS NOT NULL`,
		`CREATE UNIQUE INDEX outbox_one_digest_per_day ON outbox (customer_id, digest_day) WHERE digest_day IS NOT NULL`,
		`CREATE TABLE outbox_attempts (
			id          $ID,
			outbox_id   $REF    NOT NULL REFERENCES outbox (id),
			at          TEXT    NOT NULL,
			channel     TEXT    NOT NULL,
			outcome     TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
			status_code INTEGER NOT NULL DEFAULT 0,
			error       TEXT    NOT NULL DEFAULT '',
			duration_ms INTEGER NOT NULL DEFAULT 0
		)$STRICT`,
		`CREATE INDEX outbox_attempts_row ON outbox_attempts (outbox_id, id)`,
		`CREATE TABLE notify_daily (
			customer_id TEXT    NOT NULL,
			day         TEXT    NOT NULL,
			sent        INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (customer_id, day)
		)$STRICT`,
		`CREATE TABLE callback_tasks (
			id          $ID,
			ticket_id   $REF NOT NULL UNIQUE REFERENCES tickets (id),
			customer_id TEXT NOT NULL,
			created_at  TEXT NOT NULL,
			done_at     TEXT
		)$STRICT`,
	}
	for i, st := range stmts {
		stmts[i] = r.Replace(st)
	}
	return stmts
}

// migrationLock is the PostgreSQL advisory lock key migrations hold, so
// that instances starting together apply each step once.
const migrationLock = 0x666f7265 // "fore"

// migrate brings the schema to the latest version. It is safe to run from
// several processes at once: each step checks its version again inside its
// write transaction, which on PostgreSQL holds an advisory lock.
func (s *SQLStore) migrate(ctx context.Context) error {
	if err := s.writeTx(ctx, func(tx txn) error {
		if err := s.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at TEXT    NOT NULL
		)`)
		return err
	}); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if latest := migrations[len(migrations)-1].version; current > latest {
		return fmt.Errorf("database schema is at version %d, newer than this binary's %d", current, latest)
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	// Every migration not yet applied runs, not only those above the
	// current version: branches that each add one (3 and 4) may meet a
	// database that has only the other's.
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		if err := s.writeTx(ctx, func(tx txn) error { return s.applyMigration(ctx, tx, m) }); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

func (s *SQLStore) lockMigrations(ctx context.Context, tx txn) error {
	if !s.pg {
		return nil // BEGIN IMMEDIATE holds the database's write lock
	}
	if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	return nil
}

// schemaVersion returns the highest applied migration, 0 for a new database.
func (s *SQLStore) schemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// appliedVersions returns the versions schema_migrations records.
func (s *SQLStore) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema versions: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema versions: %w", err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (s *SQLStore) applyMigration(ctx context.Context, tx txn, m migration) error {
	if err := s.lockMigrations(ctx, tx); err != nil {
		return err
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("check version: %w", err)
	}
	if n > 0 {
		return nil // another process applied it since we looked
	}
	stmts := m.sqlite
	if s.pg {
		stmts = m.postgres
	}
	for _, stmt := range stmts {
		if _, err := tx.exec(ctx, stmt); err != nil {
			return err
		}
	}
	if _, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, formatTime(time.Now())); err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	return nil
}
