package ticketing

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestImportCustomers(t *testing.T) {
	const csvDoc = "id,name,tier,timezone,quiet_start,quiet_end,webhook_url,webhook_secret,email,mqtt\n" +
		"c1,Ana,premium,Europe/Paris,22:00,07:00,https://example.com/h,0123456789abcdef,ana@example.com,yes\n" + // 2: created
		"c2,Bo,,,,,,,bo@example.com,\n" + // 3: created, defaults
		"c 3,Cy,standard,UTC,,,,,,\n" + // 4: bad id
		"c4,Di,gold,Mars/Olympus,,,,,,\n" + // 5: bad tier and timezone
		"c1,Ana again,standard,UTC,,,,,,\n" + // 6: repeats row 2
		"c5,Ed,standard,UTC,,,,secret-without-url,,\n" + // 7: a secret without a url
		"c6,Fa\n" + // 8: too few fields
		"c0,Old Name Replaced,standard,UTC,,,,,,no\n" // 9: updated (exists)
	const jsonDoc = `[
		{"id": "c1", "name": "Ana", "tier": "premium", "timezone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:00"},
		 "channels": [{"type": "webhook", "url": "https://example.com/h", "secret": "0123456789abcdef"}, {"type": "email", "address": "ana@example.com"}, {"type": "mqtt"}]},
		{"id": "c2", "name": "Bo", "channels": [{"type": "email", "address": "bo@example.com"}]},
		{"id": "c 3", "name": "Cy"},
		{"id": "c4", "tier": "gold", "timezone": "Mars/Olympus"},
		{"id": "c1", "name": "Ana again"},
		{"id": "c5", "channels": [{"type": "sms"}]},
		{"id": "c6", "name": 7},
		{"id": "c0", "name": "Old Name Replaced"}
	]`
	tests := []struct {
		name  string
		parse func() ([]CustomerImportRow, []RowError, error)
		want  []string // prefixes of "row id reason", in row order
	}{
		{"csv", func() ([]CustomerImportRow, []RowError, error) { return ParseCustomersCSV(strings.NewReader(csvDoc)) }, []string{
			"4 c 3 id: want 1 to 128", `5 c4 tier: "gold" is not one of standard, premium; timezone: "Mars/Olympus"`,
			"6 c1 id: c1 repeats row 2", "7 c5 webhook_secret: set without webhook_url", "8  2 fields, want 10"}},
		{"json", func() ([]CustomerImportRow, []RowError, error) { return ParseCustomersJSON(strings.NewReader(jsonDoc)) }, []string{
			"3 c 3 id: want 1 to 128", `4 c4 tier: "gold" is not one of standard, premium; timezone: "Mars/Olympus"`,
			"5 c1 id: c1 repeats row 1", `6 c5 channels[0].type: "sms"`, "7 c6 name: want a string, got number"}},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				svc, reg := newService(t, s, t0)
				ctx := t.Context()
				_, _, err := svc.PutCustomer(ctx, Customer{ID: "c0", Name: "Old"}, "admin")
				require.NoError(t, err)

				rows, bad, err := tt.parse()
				require.NoError(t, err)
				rep, err := svc.ImportCustomers(ctx, rows, bad, "admin")
				require.NoError(t, err)
				require.Equal(t, 8, rep.Received)
				require.Equal(t, 2, rep.Created)
				require.Equal(t, 1, rep.Updated)
				require.Equal(t, 5, rep.Rejected)
				var got []string
				for _, e := range rep.Errors {
					got = append(got, fmt.Sprintf("%d %s %s", e.Row, e.ID, e.Reason))
				}
				require.Len(t, got, len(tt.want), "%q", got)
				for i := range tt.want {
					require.True(t, strings.HasPrefix(got[i], tt.want[i]), "error %d: got %q, want prefix %q", i, got[i], tt.want[i])
				}

				c1, err := s.GetCustomer(ctx, "c1")
				require.NoError(t, err)
				require.Equal(t, "Ana", c1.Name, "the repeated row did not overwrite the first")
				require.Equal(t, TierPremium, c1.Tier)
				require.Equal(t, &QuietHours{Start: "22:00", End: "07:00"}, c1.QuietHours)
				wantChannels := []Channel{{Type: "webhook", URL: "https://example.com/h", Secret: "0123456789abcdef"}, {Type: "email", Address: "ana@example.com"}, {Type: "mqtt"}}
				require.Equal(t, wantChannels, c1.Channels, "channels in header (or array) order")
				c2, err := s.GetCustomer(ctx, "c2")
				require.NoError(t, err)
				require.Equal(t, TierStandard, c2.Tier, "defaults filled")
				require.Equal(t, "en", c2.Language)
				require.Equal(t, "UTC", c2.Timezone)
				require.Nil(t, c2.QuietHours)
				require.Equal(t, []Channel{{Type: "email", Address: "bo@example.com"}}, c2.Channels)
				c0, err := s.GetCustomer(ctx, "c0")
				require.NoError(t, err)
				require.Equal(t, "Old Name Replaced", c0.Name)
				for _, id := range []string{"c4", "c5", "c6"} {
					_, err = s.GetCustomer(ctx, id)
					require.ErrorIs(t, err, ErrNotFound, id)
				}
				require.Equal(t, 8.0, counter(t, reg, "forewarn_registry_customer_import_rows_total"), "created+updated+rejected counted")
				entries, _, err := s.ListAudit(ctx, AuditFilter{Subject: "customers"})
				require.NoError(t, err)
				require.Len(t, entries, 1, "one audit entry for the import")
				require.Equal(t, "admin imported: 8 received, 2 created, 1 updated, 5 rejected", entries[0].Actor+" "+entries[0].Action+": "+entries[0].Note)
			})
		}
	}
}

// TestImportCustomersKeepsDevices re-imports a customer who owns devices:
// the upsert replaces the record and the devices stay linked.
func TestImportCustomersKeepsDevices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		svc, _ := newService(t, s, t0)
		ctx := t.Context()
		_, _, err := svc.PutCustomer(ctx, Customer{ID: "c1", Name: "Ana"}, "admin")
		require.NoError(t, err)
		_, _, err = svc.PutDevice(ctx, Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "c1"}, "admin")
		require.NoError(t, err)
		rows, bad, err := ParseCustomersCSV(strings.NewReader("id,name,tier\nc1,Ana B.,premium\n"))
		require.NoError(t, err)
		rep, err := svc.ImportCustomers(ctx, rows, bad, "admin")
		require.NoError(t, err)
		require.Equal(t, ImportReport{Received: 1, Updated: 1, Errors: []RowError{}}, rep)
		d, err := s.GetDevice(ctx, "hp-1")
		require.NoError(t, err)
		require.Equal(t, "c1", d.CustomerID)
		c, err := s.GetCustomer(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, TierPremium, c.Tier)
	})
}

func TestParseCustomersWholeFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		csv     bool
		doc     string
		wantErr string
	}{
		{"csv empty", true, "", "csv: empty; want a header row such as id,name,tier"},
		{"csv unknown column", true, "id,phone\n", `unknown column "phone"`},
		{"csv no id", true, "name,tier\n", "no id column"},
		{"csv twice", true, "id,email,email\n", `column "email" twice`},
		{"json not array", false, `{"id": "c1"}`, "want an array of customers"},
		{"json truncated", false, `[{"id": "c1"}, {"id"`, "element 2"},
		{"json trailing", false, `[] {}`, "data after the array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.csv {
				_, _, err = ParseCustomersCSV(strings.NewReader(tt.doc))
			} else {
				_, _, err = ParseCustomersJSON(strings.NewReader(tt.doc))
			}
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	_, bad, err := ParseCustomersJSON(strings.NewReader(`[{"id": "c1", "phone": "1"}, {"id": "c2", "channels": [{"type": "email", "to": "x"}]}]`))
	require.NoError(t, err)
	require.Len(t, bad, 2)
	require.Equal(t, `unknown field "phone"; want id, name, tier, language, timezone, quiet_hours, channels`, bad[0].Reason)
	require.Contains(t, bad[1].Reason, `unknown field "to"`)
	require.Equal(t, "c2", bad[1].ID)
}

// checkParsedCustomers is what both customer fuzz targets hold true for
// any input.
func checkParsedCustomers(t *testing.T, rows []CustomerImportRow, bad []RowError, err error) {
	if err != nil {
		require.ErrorIs(t, err, ErrInvalidArgument)
		require.Nil(t, rows)
		return
	}
	require.LessOrEqual(t, len(rows)+len(bad), MaxImportRows)
	for _, b := range bad {
		require.NotEmpty(t, b.Reason)
		require.Positive(t, b.Row)
	}
	for _, r := range rows {
		require.Positive(t, r.Row)
		c := r.Customer
		if c.Normalize() == nil {
			require.Regexp(t, customerIDRe, c.ID)
			require.NotNil(t, c.Channels)
		}
	}
}

func FuzzParseCustomersCSV(f *testing.F) {
	f.Add([]byte("id,name,tier,email,webhook_url,webhook_secret,mqtt\nc1,Ana,premium,ana@example.com,https://x.example,0123456789abcdef,yes\n"))
	f.Add([]byte("id,quiet_start,quiet_end\nc1,22:00,\n\"c2\nc3,,,\n"))
	f.Add([]byte("\ufeffid,webhook_secret,mqtt\nc1,s,maybe\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, bad, err := ParseCustomersCSV(bytes.NewReader(b))
		checkParsedCustomers(t, rows, bad, err)
	})
}

func FuzzParseCustomersJSON(f *testing.F) {
	f.Add([]byte(`[{"id": "c1", "name": "Ana", "quiet_hours": {"start": "22:00", "end": "07:00"}, "channels": [{"type": "mqtt"}]}]`))
	f.Add([]byte(`[1, "x", null, {"id": 5}, {"id": "a", "channels": {}}, {"quiet_hours": []}]`))
	f.Add([]byte(`[{"id": "c1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, bad, err := ParseCustomersJSON(bytes.NewReader(b))
		checkParsedCustomers(t, rows, bad, err)
	})
}
