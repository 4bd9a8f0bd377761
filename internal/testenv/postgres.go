package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresAdminEnv names the environment variable that overrides the DSN
// Postgres connects to as an administrator, to create and drop databases.
const PostgresAdminEnv = "FOREWARN_TEST_POSTGRES"

// defaultPostgresAdmin is the machine's PostgreSQL server (Debian package
// postgresql) with trust authentication for the postgres user on loopback.
const defaultPostgresAdmin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// startOnce makes one attempt per test binary to start a stopped server.
var startOnce sync.Once

// Postgres creates a fresh, empty database on the machine's PostgreSQL
// server and returns its DSN (postgres://...). t.Cleanup drops it, closing
// connections still open on it. When the server does not answer, Postgres
// starts the Debian cluster once (pg_ctlcluster VERSION main start, as root)
// and waits for it; when that fails the test fails with a hint, it never
// skips. The admin DSN comes from $FOREWARN_TEST_POSTGRES, else
// postgres://postgres@127.0.0.1:5432/postgres.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresAdminEnv)
	if admin == "" {
		admin = defaultPostgresAdmin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		startOnce.Do(func() { startPostgres(t) })
		conn, err = waitPostgres(ctx, admin)
	}
	if err != nil {
		t.Fatalf("testenv: PostgreSQL does not answer at %s: %v\n"+
			"install it with `make deps` (apt-get install postgresql) or set %s", redact(admin), err, PostgresAdminEnv)
	}
	defer conn.Close(context.Background())

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "forewarn_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", PostgresAdminEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// startPostgres starts every Debian PostgreSQL cluster named main that is
// installed. Errors are left for waitPostgres to report.
func startPostgres(t testing.TB) {
	versions, _ := filepath.Glob("/etc/postgresql/*/main")
	for _, dir := range versions {
		version := filepath.Base(filepath.Dir(dir))
		out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start").CombinedOutput()
		t.Logf("testenv: pg_ctlcluster %s main start: %v %s", version, err, out)
	}
}

func waitPostgres(ctx context.Context, dsn string) (*pgx.Conn, error) {
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
