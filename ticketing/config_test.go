package ticketing

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	require.Equal(t, "sqlite:forewarn.db", DefaultConfig().DSN)

	tests := []struct {
		name    string
		dsn     string
		wantErr string // "" for valid
	}{
		{name: "relative path", dsn: "sqlite:data/forewarn.db"},
		{name: "absolute path", dsn: "sqlite:/var/lib/forewarn/forewarn.db"},
		{name: "empty", dsn: "", wantErr: "missing; want sqlite:PATH or postgres://"},
		{name: "blank", dsn: "  ", wantErr: "missing; want sqlite:PATH or postgres://"},
		{name: "postgres", dsn: "postgres://forewarn:secret@db/forewarn?sslmode=disable"},
		{name: "postgresql", dsn: "postgresql://db:5433/forewarn"},
		{name: "postgres bad port", dsn: "postgres://forewarn:secret@db:notaport/forewarn", wantErr: "not a valid PostgreSQL URL"},
		{name: "postgres bad option", dsn: "postgres://forewarn:secret@db/forewarn?sslmode=sometimes", wantErr: "not a valid PostgreSQL URL"},
		{name: "other scheme", dsn: "mysql://db", wantErr: "unsupported store; want sqlite:PATH or postgres://"},
		{name: "bare path", dsn: "forewarn.db", wantErr: "unsupported store"},
		{name: "no path", dsn: "sqlite:", wantErr: "needs a file path"},
		{name: "memory", dsn: "sqlite::memory:", wantErr: "not :memory:"},
		{name: "uri", dsn: "sqlite:file:x.db?mode=ro", wantErr: "file: URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{DSN: tt.dsn}.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "secret", "the message must not leak the DSN")
			require.True(t, strings.HasPrefix(err.Error(), "dsn: "), "the message names its key: %v", err)
		})
	}
}

func TestTicketsConfigValidate(t *testing.T) {
	require.NoError(t, DefaultTicketsConfig().Validate())
	tests := []struct {
		name    string
		mutate  func(*TicketsConfig)
		wantErr string
	}{
		{"negative hold", func(c *TicketsConfig) { c.ResolveHold = -time.Second }, "resolve_hold: must not be negative"},
		{"zero hold is fine", func(c *TicketsConfig) { c.ResolveHold = 0 }, ""},
		{"negative reopen", func(c *TicketsConfig) { c.ReopenWindow = -time.Second }, "reopen_window: must not be negative"},
		{"sweep too fast", func(c *TicketsConfig) { c.SweepInterval = time.Millisecond }, "sweep_interval: must be at least 1s"},
		{"sla zero", func(c *TicketsConfig) { c.SLA.Premium.Minor = 0 }, "sla.premium.minor: must be positive"},
		{"min devices one", func(c *TicketsConfig) { c.Incidents.MinDevices = 1 }, "incidents.min_devices: 1 would make every ticket an incident"},
		{"min devices negative", func(c *TicketsConfig) { c.Incidents.MinDevices = -2 }, "incidents.min_devices: must not be negative"},
		{"grouping off needs no window", func(c *TicketsConfig) { c.Incidents.MinDevices = 0; c.Incidents.Window = 0 }, ""},
		{"window zero", func(c *TicketsConfig) { c.Incidents.Window = 0 }, "incidents.window: must be positive"},
		{"unknown scope", func(c *TicketsConfig) { c.Incidents.GroupBy = []string{"site", "region"} }, `incidents.group_by[1]: "region" is not one of`},
		{"duplicate scope", func(c *TicketsConfig) { c.Incidents.GroupBy = []string{"site", "site"} }, `incidents.group_by[1]: "site" is listed twice`},
		{"no scopes", func(c *TicketsConfig) { c.Incidents.GroupBy = nil }, "incidents.group_by: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultTicketsConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestRegistryConfigValidate(t *testing.T) {
	require.NoError(t, DefaultRegistryConfig().Validate())
	require.NoError(t, RegistryConfig{UnknownDevices: UnknownReject}.Validate())
	require.ErrorContains(t, RegistryConfig{UnknownDevices: "allow"}.Validate(), `unknown_devices: "allow" is not one of register, reject`)
	require.ErrorContains(t, RegistryConfig{UnknownDevices: UnknownRegister, SeenInterval: -1}.Validate(), "seen_interval: must not be negative")
}
