package ticketing

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func TestCustomerNormalize(t *testing.T) {
	tests := []struct {
		name    string
		c       Customer
		wantErr string
	}{
		{"minimal gets defaults", Customer{ID: "c1"}, ""},
		{"full", Customer{ID: "c1", Name: "Ana", Tier: TierPremium, Language: "pt-BR", Timezone: "Europe/Paris",
			QuietHours: &QuietHours{Start: "22:00", End: "07:00"},
			Channels:   []Channel{{Type: "webhook", URL: "https://example.com/h", Secret: "0123456789abcdef"}, {Type: "email", Address: "ana@example.com"}, {Type: "mqtt"}}}, ""},
		{"bad id", Customer{ID: "c 1"}, "id: want 1 to 128"},
		{"bad tier", Customer{ID: "c1", Tier: "gold"}, `tier: "gold" is not one of standard, premium`},
		{"bad language", Customer{ID: "c1", Language: "English"}, "language:"},
		{"bad timezone", Customer{ID: "c1", Timezone: "Mars/Olympus"}, "timezone:"},
		{"bad quiet start", Customer{ID: "c1", QuietHours: &QuietHours{Start: "25:00", End: "07:00"}}, "quiet_hours.start:"},
		{"webhook without url", Customer{ID: "c1", Channels: []Channel{{Type: "webhook"}}}, "channels[0].url:"},
		{"short secret", Customer{ID: "c1", Channels: []Channel{{Type: "webhook", URL: "https://x.example", Secret: "short"}}}, "channels[0].secret:"},
		{"bad email", Customer{ID: "c1", Channels: []Channel{{Type: "mqtt"}, {Type: "email", Address: "nope"}}}, "channels[1].address:"},
		{"unknown channel", Customer{ID: "c1", Channels: []Channel{{Type: "sms"}}}, `channels[0].type: "sms"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			err := c.Normalize()
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotEmpty(t, c.Tier)
				require.NotEmpty(t, c.Language)
				require.NotEmpty(t, c.Timezone)
				require.NotNil(t, c.Channels)
				return
			}
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestRegistryCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		svc, _ := newService(t, s, t0)
		ctx := t.Context()

		c, created, err := svc.PutCustomer(ctx, Customer{ID: "c1", Name: "Ana", Tier: TierPremium, Timezone: "Europe/Paris",
			QuietHours: &QuietHours{Start: "22:00", End: "07:00"}, Channels: []Channel{{Type: "email", Address: "ana@example.com"}}}, "admin")
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, "en", c.Language)
		c.Name = "Ana B."
		c2, created, err := svc.PutCustomer(ctx, c, "admin")
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, "Ana B.", c2.Name)
		require.Equal(t, &QuietHours{Start: "22:00", End: "07:00"}, c2.QuietHours)

		_, _, err = svc.PutDevice(ctx, Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "nobody"}, "admin")
		require.ErrorIs(t, err, ErrInvalidArgument)
		require.ErrorContains(t, err, `customer_id: no customer "nobody"`)
		d, created, err := svc.PutDevice(ctx, Device{ID: "hp-1", Model: "heatpump-a2", CustomerID: "c1", Site: "lyon", Firmware: "1.4.2"}, "admin")
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, SourceAPI, d.Source)

		devs, next, err := s.ListDevices(ctx, DeviceFilter{CustomerID: "c1"})
		require.NoError(t, err)
		require.Empty(t, next)
		require.Len(t, devs, 1)

		require.ErrorIs(t, svc.DeleteCustomer(ctx, "c1", "admin"), ErrConflict, "still owns hp-1")
		require.NoError(t, svc.DeleteDevice(ctx, "hp-1", "admin"))
		require.ErrorIs(t, svc.DeleteDevice(ctx, "hp-1", "admin"), ErrNotFound)
		require.NoError(t, svc.DeleteCustomer(ctx, "c1", "admin"))
		_, err = s.GetCustomer(ctx, "c1")
		require.ErrorIs(t, err, ErrNotFound)
		require.Equal(t, []string{"admin created ->premium", "admin updated ->premium", "admin deleted ->"},
			auditTrail(t, s, AuditFilter{Subject: "customer:c1"}))
	})
}

func TestListDevicesPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		svc, _ := newService(t, s, t0)
		for i := range 7 {
			_, _, err := svc.PutDevice(t.Context(), Device{ID: fmt.Sprintf("hp-%d", i), Model: "m"}, "admin")
			require.NoError(t, err)
		}
		var got []string
		f := DeviceFilter{Limit: 3}
		for {
			items, next, err := s.ListDevices(t.Context(), f)
			require.NoError(t, err)
			for _, d := range items {
				got = append(got, d.ID)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		require.Equal(t, []string{"hp-0", "hp-1", "hp-2", "hp-3", "hp-4", "hp-5", "hp-6"}, got)
	})
}

func TestImportDevices(t *testing.T) {
	const csvDoc = "id,model,customer_id,site,firmware\n" +
		"hp-1,heatpump-a2,c1,lyon,1.4.2\n" + // 2: created
		"hp-2,heatpump-a2,,lyon,1.4.2\n" + // 3: created, no customer
		"hp 3,heatpump-a2,c1,lyon,1.4.2\n" + // 4: bad id
		"hp-4,heatpump-a2,c9,lyon,1.4.2\n" + // 5: unknown customer
		"hp-1,heatpump-a2,c1,paris,1.4.3\n" + // 6: repeats row 2
		"hp-5,heatpump-a2\n" + // 7: too few fields
		"hp-0,heatpump-a2,c1,lyon,1.4.2\n" // 8: updated (exists)
	const jsonDoc = `[
		{"id": "hp-1", "model": "heatpump-a2", "customer_id": "c1", "site": "lyon", "firmware": "1.4.2"},
		{"id": "hp-2", "model": "heatpump-a2", "site": "lyon", "firmware": "1.4.2"},
		{"id": "hp 3", "model": "heatpump-a2"},
		{"id": "hp-4", "customer_id": "c9"},
		{"id": "hp-1", "site": "paris"},
		{"id": "hp-5", "model": 7},
		{"id": "hp-0", "model": "heatpump-a2", "customer_id": "c1"}
	]`
	wantErrs := []string{"4 hp 3 id: invalid device id", "5 hp-4 customer_id: no customer", "6 hp-1 id: hp-1 repeats row 2"}
	tests := []struct {
		name  string
		parse func() ([]ImportRow, []RowError, error)
		last  string // the reason of the 7th row
	}{
		{"csv", func() ([]ImportRow, []RowError, error) { return ParseDevicesCSV(strings.NewReader(csvDoc)) }, "7  2 fields, want 5"},
		{"json", func() ([]ImportRow, []RowError, error) { return ParseDevicesJSON(strings.NewReader(jsonDoc)) }, "6 hp-5 model: want a string, got number"},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				svc, reg := newService(t, s, t0)
				ctx := t.Context()
				_, _, err := svc.PutCustomer(ctx, Customer{ID: "c1"}, "admin")
				require.NoError(t, err)
				_, _, err = svc.PutDevice(ctx, Device{ID: "hp-0", Model: "old"}, "admin")
				require.NoError(t, err)

				rows, bad, err := tt.parse()
				require.NoError(t, err)
				rep, err := svc.ImportDevices(ctx, rows, bad, "admin")
				require.NoError(t, err)
				require.Equal(t, 7, rep.Received)
				require.Equal(t, 2, rep.Created)
				require.Equal(t, 1, rep.Updated)
				require.Equal(t, 4, rep.Rejected)
				var got []string
				for _, e := range rep.Errors {
					got = append(got, fmt.Sprintf("%d %s %s", e.Row, e.ID, e.Reason))
				}
				want := append(append([]string{}, wantErrs...), tt.last)
				if tt.name == "json" {
					// JSON rows are element indexes, one less than CSV lines.
					want = []string{"3 hp 3 id: invalid device id", "4 hp-4 customer_id: no customer", "5 hp-1 id: hp-1 repeats row 1", tt.last}
				}
				require.Len(t, got, len(want), "%q", got)
				for i := range want {
					require.True(t, strings.HasPrefix(got[i], want[i]), "error %d: got %q, want prefix %q", i, got[i], want[i])
				}
				d, err := s.GetDevice(ctx, "hp-1")
				require.NoError(t, err)
				require.Equal(t, "lyon", d.Site, "the repeated row did not overwrite the first")
				require.Equal(t, SourceImport, d.Source)
				d, err = s.GetDevice(ctx, "hp-0")
				require.NoError(t, err)
				require.Equal(t, "heatpump-a2", d.Model)
				_, err = s.GetDevice(ctx, "hp-4")
				require.ErrorIs(t, err, ErrNotFound)
				require.Equal(t, 4.0, counter(t, reg, "forewarn_registry_import_rows_total")-3.0, "created+updated+rejected counted")
			})
		}
	}
}

func TestParseImportWholeFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		csv     bool
		doc     string
		wantErr string
	}{
		{"csv empty", true, "", "csv: empty"},
		{"csv unknown column", true, "id,colour\n", `unknown column "colour"`},
		{"csv no id", true, "model,site\n", "no id column"},
		{"csv twice", true, "id,id\n", `column "id" twice`},
		{"json not array", false, `{"id": "hp-1"}`, "want an array"},
		{"json truncated", false, `[{"id": "hp-1"}, {"id"`, "element 2"},
		{"json trailing", false, `[] []`, "data after the array"},
		{"json empty", false, ``, "json: EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.csv {
				_, _, err = ParseDevicesCSV(strings.NewReader(tt.doc))
			} else {
				_, _, err = ParseDevicesJSON(strings.NewReader(tt.doc))
			}
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// checkParsed is what both fuzz targets hold true for any input.
func checkParsed(t *testing.T, rows []ImportRow, bad []RowError, err error) {
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
		d := r.Device
		if d.Normalize() == nil {
			_, err := telemetry.ParseDeviceID(d.ID)
			require.NoError(t, err)
		}
	}
}

func FuzzParseDevicesCSV(f *testing.F) {
	f.Add([]byte("id,model,customer_id,site,firmware\nhp-1,heatpump-a2,c1,lyon,1.4.2\n"))
	f.Add([]byte("id\n\"unterminated\n"))
	f.Add([]byte("\ufeffid,site\nhp-1,\"a,b\"\nhp-2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, bad, err := ParseDevicesCSV(bytes.NewReader(b))
		checkParsed(t, rows, bad, err)
	})
}

func FuzzParseDevicesJSON(f *testing.F) {
	f.Add([]byte(`[{"id": "hp-1", "model": "heatpump-a2", "customer_id": "c1"}]`))
	f.Add([]byte(`[1, "x", null, {"id": 5}, {"id": "a", "extra": true}]`))
	f.Add([]byte(`[{"id": "hp-1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, bad, err := ParseDevicesJSON(bytes.NewReader(b))
		checkParsed(t, rows, bad, err)
	})
}

func TestObserveDevice(t *testing.T) {
	tests := []struct {
		name       string
		mode       string
		wantErr    error
		wantSource string
	}{
		{"register", UnknownRegister, nil, SourceAuto},
		{"reject", UnknownReject, ErrUnknownDevice, ""},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				c := newClock(t0)
				reg := newRegistry()
				svc := NewService(s, Options{Registry: RegistryConfig{UnknownDevices: tt.mode, SeenInterval: time.Minute}, Registerer: reg, Now: c.Now})
				ctx := t.Context()
				for range 3 { // the 2nd and 3rd come from the cache
					err := svc.ObserveDevice(ctx, "hp-9", "heatpump-a2", "1.4.2")
					if tt.wantErr != nil {
						require.ErrorIs(t, err, tt.wantErr)
					} else {
						require.NoError(t, err)
					}
				}
				d, err := s.GetDevice(ctx, "hp-9")
				if tt.wantErr != nil {
					require.ErrorIs(t, err, ErrNotFound)
					require.Equal(t, 3.0, counterVec(t, reg, "forewarn_registry_unknown_devices_total", "rejected"))
					// Registering it ends the refusal at once, not after seen_interval.
					_, _, err = svc.PutDevice(ctx, Device{ID: "hp-9", Model: "heatpump-a2"}, "test")
					require.NoError(t, err)
					require.NoError(t, svc.ObserveDevice(ctx, "hp-9", "", ""))
					// Deleting it starts the refusal at once.
					require.NoError(t, svc.DeleteDevice(ctx, "hp-9", "test"))
					require.ErrorIs(t, svc.ObserveDevice(ctx, "hp-9", "", ""), ErrUnknownDevice)
					return
				}
				require.NoError(t, err)
				require.Equal(t, tt.wantSource, d.Source)
				require.Equal(t, t0, *d.LastSeen)
				require.True(t, *d.Online)
				require.Equal(t, 1.0, counterVec(t, reg, "forewarn_registry_unknown_devices_total", "registered"))

				c.Advance(2 * time.Minute)
				require.NoError(t, svc.ObserveDevice(ctx, "hp-9", "", "1.5.0"))
				d, err = s.GetDevice(ctx, "hp-9")
				require.NoError(t, err)
				require.Equal(t, t0.Add(2*time.Minute), *d.LastSeen, "written again after seen_interval")
				require.Equal(t, "1.5.0", d.Firmware, "the reported firmware wins")
				require.Equal(t, "heatpump-a2", d.Model, "an empty model keeps the known one")
				require.ErrorIs(t, svc.ObserveDevice(ctx, "bad id", "", ""), ErrInvalidArgument)
			})
		}
	}
}

// TestObserveDevices: a group of sightings (ingest's group commit) is
// answered in one call, per sighting: a device seen several times in the
// group is written once and every sighting of it gets its result; invalid
// ids fail alone; with reject, unknown devices are refused and a known one
// is admitted in the same group.
func TestObserveDevices(t *testing.T) {
	for _, b := range backends {
		for _, mode := range []string{UnknownRegister, UnknownReject} {
			t.Run(b.name+"/"+mode, func(t *testing.T) {
				s := openDSN(t, b.dsn(t))
				reg := newRegistry()
				svc := NewService(s, Options{Registry: RegistryConfig{UnknownDevices: mode, SeenInterval: time.Minute}, Registerer: reg, Now: newClock(t0).Now})
				ctx := t.Context()
				_, _, err := svc.PutDevice(ctx, Device{ID: "known-1", Model: "heatpump-a2"}, "test")
				require.NoError(t, err)
				var ss []telemetry.Sighting
				for i := range 300 { // 100 devices, three sightings each
					ss = append(ss, telemetry.Sighting{Device: telemetry.DeviceID(fmt.Sprintf("hp-%03d", i%100)), Model: "heatpump-a2", Firmware: "1.4.2"})
				}
				ss = append(ss, telemetry.Sighting{Device: "bad id"}, telemetry.Sighting{Device: "known-1", Firmware: "2.0.0"})
				errs := svc.ObserveDevices(ctx, ss)
				require.Len(t, errs, len(ss))
				require.ErrorIs(t, errs[300], ErrInvalidArgument)
				require.NoError(t, errs[301], "a known device is admitted")
				d, err := s.GetDevice(ctx, "known-1")
				require.NoError(t, err)
				require.Equal(t, "2.0.0", d.Firmware)
				require.Equal(t, t0, *d.LastSeen)
				for i := range 300 {
					if mode == UnknownReject {
						require.ErrorIs(t, errs[i], ErrUnknownDevice, "sighting %d", i)
					} else {
						require.NoError(t, errs[i], "sighting %d", i)
					}
				}
				devices, _, err := s.ListDevices(ctx, DeviceFilter{Limit: 1000})
				require.NoError(t, err)
				if mode == UnknownReject {
					require.Len(t, devices, 1)
					require.Equal(t, 300.0, counterVec(t, reg, "forewarn_registry_unknown_devices_total", "rejected"))
					return
				}
				require.Len(t, devices, 101)
				require.Equal(t, 100.0, counterVec(t, reg, "forewarn_registry_unknown_devices_total", "registered"), "each device registered once")
				// Within seen_interval the same group is answered from memory.
				again := svc.ObserveDevices(ctx, ss[:300])
				for _, err := range again {
					require.NoError(t, err)
				}
			})
		}
	}
}

// TestObserveStatus records status changes (the status topic, the Last
// Will) in the registry: online state, last_seen for online, one audit
// entry per change of state, and nothing for unknown devices.
func TestObserveStatus(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openDSN(t, dsn)
		c := newClock(t0)
		svc := NewService(s, Options{Registry: RegistryConfig{UnknownDevices: UnknownRegister, SeenInterval: time.Hour}, Registerer: newRegistry(), Now: c.Now})
		ctx := t.Context()
		_, _, err := svc.PutDevice(ctx, Device{ID: "hp-1", Model: "heatpump-a2"}, "admin")
		require.NoError(t, err)
		status := func(online bool, at time.Time) telemetry.StatusChange {
			return telemetry.StatusChange{Device: "hp-1", Online: online, At: at}
		}
		onlineTrail := func() []string {
			entries, _, err := s.ListAudit(ctx, AuditFilter{Subject: "device:hp-1", Limit: MaxLimit})
			require.NoError(t, err)
			var got []string
			for _, e := range entries {
				if e.Action == ActionOnline {
					got = append(got, e.From+">"+e.To+" "+e.Actor)
				}
			}
			return got
		}

		require.NoError(t, svc.ObserveStatus(ctx, status(true, t0)))
		d, err := s.GetDevice(ctx, "hp-1")
		require.NoError(t, err)
		require.True(t, *d.Online)
		require.Equal(t, t0, *d.LastSeen, "online sets last_seen")

		c.Advance(time.Minute)
		require.NoError(t, svc.ObserveStatus(ctx, status(true, t0.Add(time.Minute))), "a repeat")
		require.NoError(t, svc.ObserveStatus(ctx, status(false, t0.Add(2*time.Minute))))
		d, err = s.GetDevice(ctx, "hp-1")
		require.NoError(t, err)
		require.False(t, *d.Online)
		require.Equal(t, t0.Add(time.Minute), *d.LastSeen, "offline keeps last_seen")
		require.NoError(t, svc.ObserveStatus(ctx, status(true, t0.Add(-time.Hour))), "a late online")
		d, err = s.GetDevice(ctx, "hp-1")
		require.NoError(t, err)
		require.True(t, *d.Online)
		require.Equal(t, t0.Add(time.Minute), *d.LastSeen, "last_seen never goes back")
		require.Equal(t, []string{">online system", "online>offline system", "offline>online system"}, onlineTrail(), "audited on change only")

		// Telemetry after an offline marks the device online at once, even
		// though ObserveDevice saw it within seen_interval.
		require.NoError(t, svc.ObserveDevice(ctx, "hp-1", "", ""))
		require.NoError(t, svc.ObserveStatus(ctx, status(false, t0.Add(3*time.Minute))))
		require.NoError(t, svc.ObserveDevice(ctx, "hp-1", "", ""))
		d, err = s.GetDevice(ctx, "hp-1")
		require.NoError(t, err)
		require.True(t, *d.Online, "telemetry after the offline wrote online")

		// An unknown device is neither registered nor an error.
		require.NoError(t, svc.ObserveStatus(ctx, telemetry.StatusChange{Device: "hp-9", Online: false, At: t0}))
		_, err = s.GetDevice(ctx, "hp-9")
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorIs(t, svc.ObserveStatus(ctx, telemetry.StatusChange{Device: "bad id", Online: true, At: t0}), ErrInvalidArgument)
	})
}
