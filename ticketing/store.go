package ticketing

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

const (
	// maxOpenConns bounds the SQLite pool. SQLite has one writer at a time
	// (writes are serialised by writeSem); the other connections serve
	// readers, which WAL lets run beside the writer.
	maxOpenConns = 4
	// maxOpenConnsPostgres bounds the PostgreSQL pool.
	maxOpenConnsPostgres = 16
	// busyTimeout is how long a statement waits for a lock another process
	// holds (another SQLStore on the same file) before failing.
	busyTimeout = 5 * time.Second
	// maxRaiseAttempts bounds the update-or-insert loop of a raise; each
	// retry follows a writer that opened the same ticket concurrently.
	maxRaiseAttempts = 5
)

// timeLayout stores times as fixed-width UTC text with nanoseconds, so
// they round-trip exactly and sort as text in time order. Both databases
// keep times this way (TEXT columns), so the same queries compare them.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// SQLStore keeps tickets, incidents, the audit trail, the device and
// customer registry and API tokens in SQLite or PostgreSQL. Its methods are
// safe for concurrent use, and several SQLStores, in one process or
// several, may share one database: the database enforces the
// one-open-ticket rule. Close it when done.
type SQLStore struct {
	db *sql.DB
	pg bool // PostgreSQL; else SQLite
	// writeSem serialises this store's write transactions on SQLite (a
	// single writer), so they queue in Go instead of spinning in SQLite's
	// busy handler. Writers in other processes wait in the busy handler.
	// Nil on PostgreSQL, which has row locks.
	writeSem chan struct{}
	// beforeInsert, when set by a test, runs after a raise found no open
	// ticket and before it reopens or inserts one: the window a concurrent
	// writer can win.
	beforeInsert func()
}

// Open opens the store cfg names and migrates its schema to the latest
// version. For SQLite it creates the file, and its parent directory, when
// missing; a PostgreSQL database must exist.
func Open(ctx context.Context, cfg Config) (*SQLStore, error) {
	kind, target, err := cfg.backend()
	if err != nil {
		return nil, fmt.Errorf("open ticket store: %w", err)
	}
	if kind == backendPostgres {
		return openPostgres(ctx, target)
	}
	return openSQLite(ctx, target)
}

func openSQLite(ctx context.Context, path string) (*SQLStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open ticket store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("open ticket store: %w", err)
	}
	db, err := sql.Open("sqlite", sqliteDSN(abs))
	if err != nil {
		return nil, fmt.Errorf("open ticket store %s: %w", abs, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	s := &SQLStore{db: db, writeSem: make(chan struct{}, 1)}
	if err := s.init(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open ticket store %s: %w", abs, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (*SQLStore, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("open ticket store: dsn is not a valid PostgreSQL URL")
	}
	where := fmt.Sprintf("postgres %s:%d/%s", pc.Host, pc.Port, pc.Database) // no password
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(maxOpenConnsPostgres)
	db.SetMaxIdleConns(maxOpenConnsPostgres)
	s := &SQLStore{db: db, pg: true}
	if err := s.init(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open ticket store %s: %w", where, err)
	}
	return s, nil
}

// sqliteDSN builds the modernc.org/sqlite DSN for the file at abs. Every
// pooled connection gets the same settings:
//   - WAL, so readers do not block the writer nor it them;
//   - synchronous FULL, so a committed ticket survives a power cut;
//   - busy_timeout, for locks held by other processes;
//   - foreign keys on (SQLite leaves them off by default);
//   - BEGIN IMMEDIATE for read-write transactions, so a writer takes the
//     write lock up front and never fails to upgrade a read snapshot midway.
//     Read-only transactions still use a plain BEGIN.
func sqliteDSN(abs string) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

func (s *SQLStore) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	if !s.pg {
		var mode string
		if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			return fmt.Errorf("read journal mode: %w", err)
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("journal mode is %q, want wal (is the file on a network file system?)", mode)
		}
	}
	return s.migrate(ctx)
}

// Backend returns "sqlite" or "postgres".
func (s *SQLStore) Backend() string {
	if s.pg {
		return backendPostgres
	}
	return backendSQLite
}

// Close closes the database. Calls in flight may fail.
func (s *SQLStore) Close() error { return s.db.Close() }

// Ping checks that the database answers, for /readyz.
func (s *SQLStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping ticket store: %w", err)
	}
	return nil
}

// txn is a transaction that speaks one SQL: statements are written with ?
// placeholders, which PostgreSQL gets rewritten to $1, $2, ...
type txn struct {
	tx *sql.Tx
	pg bool
}

func (t txn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, rebind(t.pg, q), args...)
}

func (t txn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, rebind(t.pg, q), args...)
}

func (t txn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, rebind(t.pg, q), args...)
}

// prepare prepares q for repeated use within the transaction (one parse
// for many rows; the statement closes with the transaction).
func (t txn) prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, rebind(t.pg, q))
}

// forUpdate locks the rows a SELECT reads until the transaction ends, on
// PostgreSQL. SQLite needs no row locks: BEGIN IMMEDIATE already holds the
// database's write lock.
func (t txn) forUpdate() string {
	if t.pg {
		return " FOR UPDATE"
	}
	return ""
}

// rebind rewrites ? placeholders to $n for PostgreSQL. Statements in this
// package hold no ? inside string literals.
func rebind(pg bool, q string) string {
	if !pg || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// writeTx runs fn in a read-write transaction, committing when fn returns
// nil and rolling back otherwise.
func (s *SQLStore) writeTx(ctx context.Context, fn func(txn) error) error {
	if s.writeSem != nil {
		select {
		case s.writeSem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-s.writeSem }()
	}
	return s.tx(ctx, nil, fn)
}

// readTx runs fn in a read-only transaction: one consistent snapshot.
func (s *SQLStore) readTx(ctx context.Context, fn func(txn) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.pg {
		opts.Isolation = sql.LevelRepeatableRead // one snapshot for every statement
	}
	return s.tx(ctx, opts, fn)
}

func (s *SQLStore) tx(ctx context.Context, opts *sql.TxOptions, fn func(txn) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op; after a failure fn's error is the one to report
	if err := fn(txn{tx: tx, pg: s.pg}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// PostgreSQL SQLSTATE codes (Appendix A of its manual).
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)

// isUniqueViolation reports whether err is a UNIQUE constraint failure.
func isUniqueViolation(err error) bool {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == pgUniqueViolation
	}
	return false
}

// isForeignKeyViolation reports whether err is a FOREIGN KEY failure.
func isForeignKeyViolation(err error) bool {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == pgForeignKeyViolation
	}
	return false
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

// optTime parses a nullable time column.
func optTime(ns sql.NullString) (*time.Time, error) {
	if !ns.Valid {
		return nil, nil
	}
	t, err := parseTime(ns.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Cursors of text-keyed lists (devices, customers): base64url of the
// last key of a page.
func encodeKeyCursor(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }

func decodeKeyCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%w: cursor: malformed", ErrInvalidArgument)
	}
	return string(b), nil
}

// pageLimit applies DefaultLimit and MaxLimit to a requested page size.
func pageLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("%w: limit: negative (%d)", ErrInvalidArgument, limit)
	case limit == 0:
		return DefaultLimit, nil
	case limit > MaxLimit:
		return MaxLimit, nil
	}
	return limit, nil
}
