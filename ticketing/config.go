package ticketing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// sqliteScheme prefixes a SQLite DSN: "sqlite:PATH".
const sqliteScheme = "sqlite:"

// Config selects and configures the ticket store. It is the "store" section
// of the Forewarn configuration.
type Config struct {
	// DSN is "sqlite:PATH", PATH a file name, relative to the working
	// directory or absolute (its parent directory is created when missing),
	// or a PostgreSQL URL "postgres://user:password@host:port/db?sslmode=...".
	DSN string `mapstructure:"dsn"`
}

// DefaultConfig returns a Config for a SQLite file forewarn.db in the
// working directory.
func DefaultConfig() Config {
	return Config{DSN: sqliteScheme + "forewarn.db"}
}

// Validate checks the DSN without opening anything. Its messages name the
// key within the section ("dsn: ..."; the config package adds "store.").
// They never quote the DSN, which may hold a password.
func (c Config) Validate() error {
	if _, _, err := c.backend(); err != nil {
		return fmt.Errorf("dsn: %w", err)
	}
	return nil
}

// Store backends.
const (
	backendSQLite   = "sqlite"
	backendPostgres = "postgres"
)

// backend returns which database the DSN names and the DSN to hand its
// driver: the file path for SQLite, the URL for PostgreSQL.
func (c Config) backend() (kind, target string, err error) {
	dsn := strings.TrimSpace(c.DSN)
	switch {
	case dsn == "":
		return "", "", errors.New("missing; want sqlite:PATH or postgres://user:password@host/db")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := pgx.ParseConfig(dsn); err != nil {
			// pgx's message may quote the DSN: keep it out.
			return "", "", errors.New("not a valid PostgreSQL URL; want postgres://user:password@host:port/db?sslmode=disable")
		}
		return backendPostgres, dsn, nil
	case !strings.HasPrefix(dsn, sqliteScheme):
		return "", "", errors.New("unsupported store; want sqlite:PATH or postgres://...")
	}
	path := strings.TrimPrefix(dsn, sqliteScheme)
	switch {
	case path == "":
		return "", "", errors.New("sqlite: needs a file path, e.g. sqlite:forewarn.db")
	case path == ":memory:", strings.HasPrefix(path, "file:"):
		// Each pooled connection would get its own in-memory database, and a
		// URI would bypass the settings Open applies: take a plain path only.
		return "", "", errors.New("sqlite: needs a plain file path, not :memory: or a file: URI")
	}
	return backendSQLite, path, nil
}

// TicketsConfig is the ticket lifecycle: the "tickets" section.
type TicketsConfig struct {
	// ResolveHold is how long a cleared fault must stay clear (no new raise)
	// before the sweeper resolves its ticket.
	ResolveHold time.Duration `mapstructure:"resolve_hold"`
	// ReopenWindow: a fault raised again within this time after its ticket
	// was resolved reopens that ticket instead of opening a new one. 0 never
	// reopens.
	ReopenWindow time.Duration `mapstructure:"reopen_window"`
	// SweepInterval paces Service.Run, which resolves held tickets.
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
	// SLA sets a ticket's due time from its severity and its customer's tier.
	SLA SLAConfig `mapstructure:"sla"`
	// Incidents groups tickets of many devices raising the same fault.
	Incidents IncidentConfig `mapstructure:"incidents"`
}

// SLAConfig holds the response times per customer tier. Devices without a
// customer count as standard.
type SLAConfig struct {
	Standard SLATimes `mapstructure:"standard"`
	Premium  SLATimes `mapstructure:"premium"`
}

// SLATimes are response times per severity: a ticket is due this long
// after it opened (or after its severity was raised, if that is earlier).
type SLATimes struct {
	Critical time.Duration `mapstructure:"critical"`
	Major    time.Duration `mapstructure:"major"`
	Minor    time.Duration `mapstructure:"minor"`
	Info     time.Duration `mapstructure:"info"`
}

// IncidentConfig: when MinDevices devices sharing a group value (site,
// model+firmware or model) open tickets for the same fault within Window,
// they are grouped under one incident.
type IncidentConfig struct {
	MinDevices int           `mapstructure:"min_devices"` // 0 turns grouping off
	Window     time.Duration `mapstructure:"window"`
	// GroupBy lists the groupings tried in order, the first that reaches
	// MinDevices wins: site, firmware (same model and firmware), model.
	GroupBy []string `mapstructure:"group_by"`
}

// Incident scopes, the values of IncidentConfig.GroupBy.
const (
	ScopeSite     = "site"
	ScopeFirmware = "firmware"
	ScopeModel    = "model"
)

var scopes = []string{ScopeSite, ScopeFirmware, ScopeModel}

// DefaultTicketsConfig returns the lifecycle defaults.
func DefaultTicketsConfig() TicketsConfig {
	return TicketsConfig{
		ResolveHold:   30 * time.Minute,
		ReopenWindow:  24 * time.Hour,
		SweepInterval: time.Minute,
		SLA: SLAConfig{
			Standard: SLATimes{Critical: 4 * time.Hour, Major: 24 * time.Hour, Minor: 72 * time.Hour, Info: 168 * time.Hour},
			Premium:  SLATimes{Critical: time.Hour, Major: 8 * time.Hour, Minor: 24 * time.Hour, Info: 72 * time.Hour},
		},
		Incidents: IncidentConfig{MinDevices: 5, Window: 15 * time.Minute, GroupBy: []string{ScopeSite, ScopeFirmware, ScopeModel}},
	}
}

// Validate checks the section; messages name the key within it.
func (c TicketsConfig) Validate() error {
	var errs []error
	if c.ResolveHold < 0 {
		errs = append(errs, errors.New("resolve_hold: must not be negative"))
	}
	if c.ReopenWindow < 0 {
		errs = append(errs, errors.New("reopen_window: must not be negative"))
	}
	if c.SweepInterval < time.Second {
		errs = append(errs, errors.New("sweep_interval: must be at least 1s"))
	}
	for tier, times := range map[string]SLATimes{"standard": c.SLA.Standard, "premium": c.SLA.Premium} {
		for sev, d := range map[string]time.Duration{"critical": times.Critical, "major": times.Major, "minor": times.Minor, "info": times.Info} {
			if d <= 0 {
				errs = append(errs, fmt.Errorf("sla.%s.%s: must be positive, e.g. 4h", tier, sev))
			}
		}
	}
	if c.Incidents.MinDevices < 0 {
		errs = append(errs, errors.New("incidents.min_devices: must not be negative (0 turns grouping off)"))
	}
	if c.Incidents.MinDevices == 1 {
		errs = append(errs, errors.New("incidents.min_devices: 1 would make every ticket an incident; want 0 (off) or at least 2"))
	}
	if c.Incidents.MinDevices > 0 && c.Incidents.Window <= 0 {
		errs = append(errs, errors.New("incidents.window: must be positive when min_devices is set"))
	}
	seen := map[string]bool{}
	for i, g := range c.Incidents.GroupBy {
		if !slices.Contains(scopes, g) {
			errs = append(errs, fmt.Errorf("incidents.group_by[%d]: %q is not one of site, firmware, model", i, g))
		}
		if seen[g] {
			errs = append(errs, fmt.Errorf("incidents.group_by[%d]: %q is listed twice", i, g))
		}
		seen[g] = true
	}
	if c.Incidents.MinDevices > 0 && len(c.Incidents.GroupBy) == 0 {
		errs = append(errs, errors.New("incidents.group_by: empty; list site, firmware and/or model, or set min_devices: 0"))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// due returns how long a ticket of severity sev for a customer of tier has.
func (c SLAConfig) due(tier Tier, sev int) time.Duration {
	t := c.Standard
	if tier == TierPremium {
		t = c.Premium
	}
	switch sev {
	case 4:
		return t.Critical
	case 3:
		return t.Major
	case 2:
		return t.Minor
	}
	return t.Info
}

// RegistryConfig is the "registry" section: the device and customer
// registry.
type RegistryConfig struct {
	// UnknownDevices says what to do with telemetry from a device the
	// registry does not know: "register" adds it (source auto), "reject"
	// counts it (forewarn_registry_unknown_devices_total) and refuses it.
	UnknownDevices string `mapstructure:"unknown_devices"`
	// SeenInterval bounds how often a device's last_seen is written: at
	// most once per interval per device and process.
	SeenInterval time.Duration `mapstructure:"seen_interval"`
}

// Values of RegistryConfig.UnknownDevices.
const (
	UnknownRegister = "register"
	UnknownReject   = "reject"
)

// DefaultRegistryConfig registers unknown devices.
func DefaultRegistryConfig() RegistryConfig {
	return RegistryConfig{UnknownDevices: UnknownRegister, SeenInterval: time.Minute}
}

// Validate checks the section; messages name the key within it.
func (c RegistryConfig) Validate() error {
	var errs []error
	switch c.UnknownDevices {
	case UnknownRegister, UnknownReject:
	default:
		errs = append(errs, fmt.Errorf("unknown_devices: %q is not one of register, reject", c.UnknownDevices))
	}
	if c.SeenInterval < 0 {
		errs = append(errs, errors.New("seen_interval: must not be negative"))
	}
	return errors.Join(errs...)
}
