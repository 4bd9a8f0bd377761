package ticketing

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func TestOpenCreatesDirAndSetsPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "tickets.db")
	s := openStore(t, path)
	require.FileExists(t, path)
	require.NoError(t, s.Ping(t.Context()))

	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000"} {
		var got string
		require.NoError(t, s.db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got), pragma)
		require.Equal(t, want, got, pragma)
	}
}

func TestOpenBadConfig(t *testing.T) {
	_, err := Open(t.Context(), Config{DSN: "mysql://db/forewarn"})
	require.ErrorContains(t, err, "unsupported store")
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	forEachBackend(t, testMigrationsIdempotentOnReopen)
}

func testMigrationsIdempotentOnReopen(t *testing.T, dsn string) {
	ctx := t.Context()

	s, err := Open(ctx, Config{DSN: dsn})
	require.NoError(t, err)
	svc, _ := newService(t, s, t0)
	require.NoError(t, svc.Handle(ctx, raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0)))
	require.NoError(t, s.Close())

	for range 2 {
		s, err = Open(ctx, Config{DSN: dsn})
		require.NoError(t, err)
		var versions []int
		rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		require.NoError(t, err)
		for rows.Next() {
			var v int
			require.NoError(t, rows.Scan(&v))
			versions = append(versions, v)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		want := make([]int, len(migrations))
		for i, m := range migrations {
			want[i] = m.version
		}
		require.Equal(t, want, versions)
		require.Len(t, allTickets(t, s), 1, "data survives a reopen")
		require.NoError(t, s.Close())
	}
}

func TestMigrationsListIsOrdered(t *testing.T) {
	for i, m := range migrations {
		require.Equal(t, i+1, m.version, "versions are 1, 2, 3, ... in order")
		require.NotEmpty(t, m.sqlite)
		require.Len(t, m.postgres, len(m.sqlite), "version %d: the same steps in both dialects", m.version)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	forEachBackend(t, testOpenRefusesNewerSchema)
}

func testOpenRefusesNewerSchema(t *testing.T, dsn string) {
	s, err := Open(t.Context(), Config{DSN: dsn})
	require.NoError(t, err)
	require.NoError(t, exec(t, s, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', ?)`, formatTime(t0)))
	require.NoError(t, s.Close())

	_, err = Open(t.Context(), Config{DSN: dsn})
	require.ErrorContains(t, err, "schema is at version 999, newer than this binary's")
}

// TestDatabaseEnforcesOneOpenTicket writes rows directly, bypassing the
// Service, to prove the rule lives in the database.
func TestDatabaseEnforcesOneOpenTicket(t *testing.T) {
	tests := []struct {
		first, second Status
		wantDup       bool
	}{
		{first: StatusOpen, second: StatusOpen, wantDup: true},
		{first: StatusOpen, second: StatusAcknowledged, wantDup: true},
		{first: StatusAcknowledged, second: StatusOpen, wantDup: true},
		{first: StatusResolved, second: StatusOpen},
		{first: StatusOpen, second: StatusResolved},
		{first: StatusResolved, second: StatusResolved},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s then %s", b.name, tt.first, tt.second), func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				insert := func(status Status) error {
					return exec(t, s, `INSERT INTO tickets
					(device_id, fault, severity, status, opened_at, created_at, updated_at, last_raised_at)
					VALUES ('hp-1', 'heating_loss', 3, ?, ?, ?, ?, ?)`,
						string(status), formatTime(t0), formatTime(t0), formatTime(t0), formatTime(t0))
				}
				require.NoError(t, insert(tt.first))
				err := insert(tt.second)
				if !tt.wantDup {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				require.True(t, isUniqueViolation(err), "want a unique violation, got %v", err)
			})
		}
	}
}

func TestSeverityStoredAsRank(t *testing.T) {
	// The schema's CHECK (severity BETWEEN 1 AND 4) and the escalation in SQL
	// rely on these values; renumbering telemetry.Severity needs a migration.
	require.Equal(t, 1, int(telemetry.SeverityInfo))
	require.Equal(t, 2, int(telemetry.SeverityMinor))
	require.Equal(t, 3, int(telemetry.SeverityMajor))
	require.Equal(t, 4, int(telemetry.SeverityCritical))
}

func TestTimesRoundTripExactly(t *testing.T) {
	forEachBackend(t, testTimesRoundTripExactly)
}

func testTimesRoundTripExactly(t *testing.T, dsn string) {
	paris := time.FixedZone("CET", 3600)
	openedAt := time.Date(2026, 11, 22, 16, 30, 0, 987654321, paris)
	clearedAt := openedAt.Add(90*time.Minute + 1)
	now := time.Date(2026, 11, 22, 18, 0, 0, 1, paris)

	s := openDSN(t, dsn)
	svc, _ := newService(t, s, now)
	f := raised("hp-1", "heating_loss", telemetry.SeverityMajor, openedAt)
	f.Evidence.Since = time.Date(2026, 11, 22, 15, 20, 0, 5, time.UTC)
	require.NoError(t, svc.Handle(t.Context(), f, cleared("hp-1", "heating_loss", clearedAt)))

	tk := allTickets(t, s)[0]
	got, err := s.GetTicket(t.Context(), tk.ID)
	require.NoError(t, err)
	for name, pair := range map[string][2]time.Time{
		"opened_at":      {openedAt, got.OpenedAt},
		"last_raised_at": {openedAt, got.LastRaisedAt},
		"updated_at":     {now, got.UpdatedAt},
		"cleared_at":     {clearedAt, *got.ClearedAt},
		"raised event":   {openedAt, got.Timeline[0].At},
		"cleared event":  {clearedAt, got.Timeline[1].At},
		"evidence since": {f.Evidence.Since, got.Evidence.Since},
	} {
		want, have := pair[0], pair[1]
		require.Equal(t, want.UTC(), have, "%s: stored in UTC, to the nanosecond", name)
	}
	require.Equal(t, f.Evidence, got.Timeline[0].Evidence)

	var raw string
	require.NoError(t, s.db.QueryRowContext(t.Context(), rebind(s.pg, `SELECT opened_at FROM tickets WHERE id = ?`), tk.ID).Scan(&raw))
	require.Equal(t, "2026-11-22T15:30:00.987654321Z", raw)
}

func TestGetTicketNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		_, err := s.GetTicket(t.Context(), 42)
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorContains(t, err, "get ticket 42")
	})
}

func TestTicketJSON(t *testing.T) {
	forEachBackend(t, testTicketJSON)
}

func testTicketJSON(t *testing.T, dsn string) {
	s := openDSN(t, dsn)
	svc, _ := newService(t, s, t0)
	require.NoError(t, svc.Handle(t.Context(), raised("hp-1", "heating_loss", telemetry.SeverityMajor, t0)))
	tk, err := s.GetTicket(t.Context(), allTickets(t, s)[0].ID)
	require.NoError(t, err)

	b, err := json.Marshal(tk)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, key := range []string{"id", "device_id", "fault", "severity", "status", "opened_at", "updated_at", "evidence"} {
		require.Contains(t, m, key) // DESIGN "REST API": the ticket's required keys
	}
	require.Equal(t, "major", m["severity"])
	require.Equal(t, "open", m["status"])
	require.NotContains(t, m, "cleared_at")
	require.Len(t, m["timeline"], 1)
}

// seed opens tickets over 5 devices × 2 faults, then sets statuses by hand
// (staff actions come later), and returns all tickets newest first.
func seed(t *testing.T, s *SQLStore) []Ticket {
	t.Helper()
	svc, _ := newService(t, s, t0)
	sevs := []telemetry.Severity{telemetry.SeverityInfo, telemetry.SeverityMinor, telemetry.SeverityMajor, telemetry.SeverityCritical}
	n := 0
	for d := range 5 {
		for _, fault := range []string{"heating_loss", "filter_clogging"} {
			f := raised(fmt.Sprintf("hp-%d", d), fault, sevs[n%len(sevs)], t0.Add(time.Duration(n)*time.Minute))
			require.NoError(t, svc.Handle(t.Context(), f))
			n++
		}
	}
	// Resolve some and reopen their faults, so one key has several tickets.
	require.NoError(t, exec(t, s, `UPDATE tickets SET status = 'resolved' WHERE id % 3 = 0`))
	require.NoError(t, exec(t, s, `UPDATE tickets SET status = 'acknowledged' WHERE id % 3 = 1 AND device_id = 'hp-0'`))
	for d := range 5 {
		require.NoError(t, svc.Handle(t.Context(), raised(fmt.Sprintf("hp-%d", d), "heating_loss", telemetry.SeverityMajor, t0.Add(time.Hour))))
	}
	return allTickets(t, s)
}

func TestListTicketsFiltersAndPages(t *testing.T) {
	forEachBackend(t, testListTicketsFiltersAndPages)
}

func testListTicketsFiltersAndPages(t *testing.T, dsn string) {
	s := openDSN(t, dsn)
	all := seed(t, s)
	require.Greater(t, len(all), 10)
	require.True(t, slices.IsSortedFunc(all, func(a, b Ticket) int { return int(b.ID - a.ID) }), "newest first")

	tests := []struct {
		name   string
		filter Filter
		match  func(Ticket) bool
	}{
		{"all", Filter{}, func(Ticket) bool { return true }},
		{"status open", Filter{Status: StatusOpen}, func(t Ticket) bool { return t.Status == StatusOpen }},
		{"status acknowledged", Filter{Status: StatusAcknowledged}, func(t Ticket) bool { return t.Status == StatusAcknowledged }},
		{"status resolved", Filter{Status: StatusResolved}, func(t Ticket) bool { return t.Status == StatusResolved }},
		{"device", Filter{DeviceID: "hp-2"}, func(t Ticket) bool { return t.DeviceID == "hp-2" }},
		{"fault", Filter{Fault: "filter_clogging"}, func(t Ticket) bool { return t.Fault == "filter_clogging" }},
		{"severity", Filter{Severity: telemetry.SeverityMajor}, func(t Ticket) bool { return t.Severity == telemetry.SeverityMajor }},
		{"combined", Filter{Status: StatusOpen, Fault: "heating_loss", Severity: telemetry.SeverityMajor},
			func(t Ticket) bool {
				return t.Status == StatusOpen && t.Fault == "heating_loss" && t.Severity == telemetry.SeverityMajor
			}},
		{"no match", Filter{DeviceID: "nobody"}, func(Ticket) bool { return false }},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				var want []int64
				for _, tk := range all {
					if tt.match(tk) {
						want = append(want, tk.ID)
					}
				}
				var got []int64
				f := tt.filter
				f.Limit = limit
				for pages := 0; ; pages++ {
					require.Less(t, pages, 100, "pagination does not end")
					items, next, err := s.ListTickets(t.Context(), f)
					require.NoError(t, err)
					require.NotNil(t, items, "an empty page is [] in JSON, not null")
					require.LessOrEqual(t, len(items), limit)
					for _, tk := range items {
						require.True(t, tt.match(tk), "ticket %d does not match", tk.ID)
						require.Nil(t, tk.Timeline)
						got = append(got, tk.ID)
					}
					if next == "" {
						break
					}
					require.Len(t, items, limit, "only the last page is short")
					f.Cursor = next
				}
				require.Equal(t, want, got, "every match once, newest first, no gaps")
			})
		}
	}
}

func TestListTicketsLimits(t *testing.T) {
	forEachBackend(t, testListTicketsLimits)
}

func testListTicketsLimits(t *testing.T, dsn string) {
	s := openDSN(t, dsn)
	// Enough tickets to hit MaxLimit, written in one transaction.
	require.NoError(t, s.writeTx(t.Context(), func(tx txn) error {
		for i := range MaxLimit + 20 {
			if _, err := tx.exec(t.Context(), `INSERT INTO tickets
				(device_id, fault, severity, status, opened_at, created_at, updated_at, last_raised_at)
				VALUES (?, 'heating_loss', 3, 'open', ?, ?, ?, ?)`,
				fmt.Sprintf("hp-%d", i), formatTime(t0), formatTime(t0), formatTime(t0), formatTime(t0)); err != nil {
				return err
			}
		}
		return nil
	}))

	tests := []struct {
		limit, want int
	}{
		{limit: 0, want: DefaultLimit},
		{limit: 7, want: 7},
		{limit: MaxLimit, want: MaxLimit},
		{limit: MaxLimit + 1000, want: MaxLimit},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("limit=%d", tt.limit), func(t *testing.T) {
			items, next, err := s.ListTickets(t.Context(), Filter{Limit: tt.limit})
			require.NoError(t, err)
			require.Len(t, items, tt.want)
			require.NotEmpty(t, next)
		})
	}
}

func TestListTicketsInvalidArgument(t *testing.T) {
	forEachBackend(t, testListTicketsInvalidArgument)
}

func testListTicketsInvalidArgument(t *testing.T, dsn string) {
	s := openDSN(t, dsn)
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name   string
		filter Filter
	}{
		{"cursor not base64", Filter{Cursor: "!!!"}},
		{"cursor not a number", Filter{Cursor: b64([]byte("abc"))}},
		{"cursor zero", Filter{Cursor: b64([]byte("0"))}},
		{"cursor negative", Filter{Cursor: b64([]byte("-5"))}},
		{"cursor padded", Filter{Cursor: base64.URLEncoding.EncodeToString([]byte("7"))}},
		{"unknown status", Filter{Status: "closed"}},
		{"unknown severity", Filter{Severity: 9}},
		{"negative limit", Filter{Limit: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.ListTickets(t.Context(), tt.filter)
			require.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
}
