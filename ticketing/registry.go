package ticketing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forewarn/forewarn/telemetry"
)

// Tier is a customer's service tier; it sets ticket SLAs.
type Tier string

// Tiers.
const (
	TierStandard Tier = "standard"
	TierPremium  Tier = "premium"
)

// A Customer owns devices and is told about their faults (DESIGN
// "Registry shapes").
type Customer struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Tier       Tier        `json:"tier"`
	Language   string      `json:"language"`
	Timezone   string      `json:"timezone"`
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	Channels   []Channel   `json:"channels"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
}

// QuietHours are local times "HH:MM" between which non-critical messages
// wait; Start after End spans midnight.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// A Channel is one way to reach a customer.
type Channel struct {
	Type    string `json:"type"`              // webhook, email, mqtt
	URL     string `json:"url,omitempty"`     // webhook
	Secret  string `json:"secret,omitempty"`  // webhook HMAC key
	Address string `json:"address,omitempty"` // email
	// OptOut keeps the channel on record but sends nothing on it: the
	// customer opted out of it (notify skips it).
	OptOut bool `json:"opt_out,omitempty"`
}

// A Device is one registered product.
type Device struct {
	ID         string     `json:"id"`
	Model      string     `json:"model"`
	CustomerID string     `json:"customer_id,omitempty"`
	Site       string     `json:"site,omitempty"`
	Firmware   string     `json:"firmware,omitempty"`
	Source     string     `json:"source"`              // api, import or auto (first telemetry)
	LastSeen   *time.Time `json:"last_seen,omitempty"` // wall clock of the latest telemetry, at most seen_interval old
	Online     *bool      `json:"online,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// Device sources.
const (
	SourceAPI    = "api"
	SourceImport = "import"
	SourceAuto   = "auto"
)

var (
	customerIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	languageRe   = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	clockRe      = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	modelRe      = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// MaxChannels bounds a customer's channels.
const MaxChannels = 16

// Normalize fills defaults (tier standard, language en, timezone UTC, no
// channels) and validates c. Its messages name the field.
func (c *Customer) Normalize() error {
	var errs []error
	if !customerIDRe.MatchString(c.ID) {
		errs = append(errs, errors.New("id: want 1 to 128 characters of [A-Za-z0-9._:-]"))
	}
	if n := utf8.RuneCountInString(c.Name); n > MaxNameLen || !utf8.ValidString(c.Name) {
		errs = append(errs, fmt.Errorf("name: at most %d characters of valid UTF-8", MaxNameLen))
	}
	if c.Tier == "" {
		c.Tier = TierStandard
	}
	if c.Tier != TierStandard && c.Tier != TierPremium {
		errs = append(errs, fmt.Errorf("tier: %q is not one of standard, premium", c.Tier))
	}
	if c.Language == "" {
		c.Language = "en"
	}
	if !languageRe.MatchString(c.Language) {
		errs = append(errs, fmt.Errorf("language: %q is not a language tag such as en or pt-BR", c.Language))
	}
	if c.Timezone == "" {
		c.Timezone = "UTC"
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil || strings.HasPrefix(c.Timezone, "/") || c.Timezone == "Local" {
		errs = append(errs, fmt.Errorf("timezone: %q is not an IANA time zone such as Europe/Paris", c.Timezone))
	}
	if q := c.QuietHours; q != nil {
		if !clockRe.MatchString(q.Start) {
			errs = append(errs, fmt.Errorf("quiet_hours.start: %q is not HH:MM", q.Start))
		}
		if !clockRe.MatchString(q.End) {
			errs = append(errs, fmt.Errorf("quiet_hours.end: %q is not HH:MM", q.End))
		}
		if q.Start == q.End && clockRe.MatchString(q.Start) {
			errs = append(errs, errors.New("quiet_hours: start equals end; leave quiet_hours out for none"))
		}
	}
	if c.Channels == nil {
		c.Channels = []Channel{}
	}
	if len(c.Channels) > MaxChannels {
		errs = append(errs, fmt.Errorf("channels: %d, at most %d", len(c.Channels), MaxChannels))
	}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		switch ch.Type {
		case "webhook":
			u, err := url.Parse(ch.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				errs = append(errs, fmt.Errorf("%s.url: want an http:// or https:// URL", key))
			}
			if ch.Secret != "" && len(ch.Secret) < 16 {
				errs = append(errs, fmt.Errorf("%s.secret: at least 16 characters", key))
			}
			if ch.Address != "" {
				errs = append(errs, fmt.Errorf("%s.address: not used by a webhook", key))
			}
		case "email":
			if a, err := mail.ParseAddress(ch.Address); err != nil || a.Address != ch.Address {
				errs = append(errs, fmt.Errorf("%s.address: want an e-mail address such as ana@example.com", key))
			}
			if ch.URL != "" || ch.Secret != "" {
				errs = append(errs, fmt.Errorf("%s: url and secret are for webhooks", key))
			}
		case "mqtt":
			if ch.URL != "" || ch.Secret != "" || ch.Address != "" {
				errs = append(errs, fmt.Errorf("%s: mqtt takes no url, secret or address", key))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.type: %q is not one of webhook, email, mqtt", key, ch.Type))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// Normalize validates d's fields. Its messages name the field.
func (d *Device) Normalize() error {
	var errs []error
	if _, err := telemetry.ParseDeviceID(d.ID); err != nil {
		errs = append(errs, fmt.Errorf("id: %w", err))
	}
	if d.Model != "" && !modelRe.MatchString(d.Model) {
		errs = append(errs, errors.New("model: want 1 to 64 characters of [A-Za-z0-9._:-]"))
	}
	if d.CustomerID != "" && !customerIDRe.MatchString(d.CustomerID) {
		errs = append(errs, errors.New("customer_id: want 1 to 128 characters of [A-Za-z0-9._:-]"))
	}
	if n := utf8.RuneCountInString(d.Site); n > MaxNameLen || !utf8.ValidString(d.Site) {
		errs = append(errs, fmt.Errorf("site: at most %d characters of valid UTF-8", MaxNameLen))
	}
	if len(d.Firmware) > 64 || strings.ContainsFunc(d.Firmware, func(r rune) bool { return r < 0x20 || r == 0x7f || r > 0x7e }) {
		errs = append(errs, errors.New("firmware: at most 64 printable ASCII characters"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// PutCustomer creates or replaces customer c (after Normalize) and records
// it in the audit trail. created says which.
func (s *SQLStore) PutCustomer(ctx context.Context, c Customer, actor string, now time.Time) (Customer, bool, error) {
	if err := c.Normalize(); err != nil {
		return Customer{}, false, fmt.Errorf("put customer: %w", err)
	}
	var created bool
	err := s.writeTx(ctx, func(tx txn) error {
		var err error
		created, err = upsertCustomer(ctx, tx, c, actor, now)
		return err
	})
	if err != nil {
		return Customer{}, false, fmt.Errorf("put customer %s: %w", c.ID, err)
	}
	got, err := s.GetCustomer(ctx, c.ID)
	return got, created, err
}

// upsertCustomer writes customer c (normalized) and, unless actor is ""
// (a bulk import records itself once), audits it. It reports whether c is
// new.
func upsertCustomer(ctx context.Context, tx txn, c Customer, actor string, now time.Time) (bool, error) {
	channels, err := json.Marshal(c.Channels)
	if err != nil {
		return false, fmt.Errorf("channels: %w", err)
	}
	var qs, qe string
	if c.QuietHours != nil {
		qs, qe = c.QuietHours.Start, c.QuietHours.End
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM customers WHERE id = ?`, c.ID).Scan(&n); err != nil {
		return false, err
	}
	if _, err := tx.exec(ctx, `INSERT INTO customers (id, name, tier, language, timezone, quiet_start, quiet_end, channels, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, tier = excluded.tier, language = excluded.language,
			timezone = excluded.timezone, quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,
			channels = excluded.channels, updated_at = excluded.updated_at`,
		c.ID, c.Name, string(c.Tier), c.Language, c.Timezone, qs, qe, string(channels), formatTime(now), formatTime(now)); err != nil {
		return false, err
	}
	if actor == "" {
		return n == 0, nil
	}
	action := "updated"
	if n == 0 {
		action = "created"
	}
	return n == 0, addAudit(ctx, tx, AuditEntry{Subject: "customer:" + c.ID, At: now, Actor: actor, Action: action, To: string(c.Tier)})
}

const customerColumns = `id, name, tier, language, timezone, quiet_start, quiet_end, channels, created_at, updated_at`

func scanCustomer(r interface{ Scan(...any) error }) (Customer, error) {
	var (
		c                        Customer
		tier, qs, qe, ch, cr, up string
	)
	if err := r.Scan(&c.ID, &c.Name, &tier, &c.Language, &c.Timezone, &qs, &qe, &ch, &cr, &up); err != nil {
		return Customer{}, err
	}
	c.Tier = Tier(tier)
	if qs != "" || qe != "" {
		c.QuietHours = &QuietHours{Start: qs, End: qe}
	}
	if err := json.Unmarshal([]byte(ch), &c.Channels); err != nil {
		return Customer{}, fmt.Errorf("customer %s: channels: %w", c.ID, err)
	}
	var err error
	if c.CreatedAt, err = parseTime(cr); err != nil {
		return Customer{}, fmt.Errorf("customer %s: created_at: %w", c.ID, err)
	}
	if c.UpdatedAt, err = parseTime(up); err != nil {
		return Customer{}, fmt.Errorf("customer %s: updated_at: %w", c.ID, err)
	}
	return c, nil
}

// GetCustomer returns customer id; an unknown id wraps ErrNotFound.
func (s *SQLStore) GetCustomer(ctx context.Context, id string) (Customer, error) {
	c, err := scanCustomer(s.db.QueryRowContext(ctx, rebind(s.pg, `SELECT `+customerColumns+` FROM customers WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer %s: %w", id, err)
	}
	return c, nil
}

// ListCustomers returns customers by id, a page at a time.
func (s *SQLStore) ListCustomers(ctx context.Context, limit int, cursor string) ([]Customer, string, error) {
	q, args := `SELECT `+customerColumns+` FROM customers`, []any{}
	if cursor != "" {
		after, err := decodeKeyCursor(cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list customers: %w", err)
		}
		q, args = q+` WHERE id > ?`, append(args, after)
	}
	limit, err := pageLimit(limit)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q+` ORDER BY id LIMIT ?`), append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	defer rows.Close()
	items := []Customer{}
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list customers: %w", err)
		}
		items = append(items, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeKeyCursor(items[limit-1].ID)
	}
	return items, next, nil
}

// DeleteCustomer deletes customer id. A customer who still owns devices or
// tokens is a conflict.
func (s *SQLStore) DeleteCustomer(ctx context.Context, id, actor string, now time.Time) error {
	err := s.writeTx(ctx, func(tx txn) error {
		r, err := tx.exec(ctx, `DELETE FROM customers WHERE id = ?`, id)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("%w: the customer still owns devices or API tokens; move or delete them first", ErrConflict)
		}
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return addAudit(ctx, tx, AuditEntry{Subject: "customer:" + id, At: now, Actor: actor, Action: ActionDeleted})
	})
	if err != nil {
		return fmt.Errorf("delete customer %s: %w", id, err)
	}
	return nil
}

// PutDevice creates or replaces device d (after Normalize), keeping its
// last_seen and online state. Its customer must exist. created says which.
func (s *SQLStore) PutDevice(ctx context.Context, d Device, actor string, now time.Time) (Device, bool, error) {
	if err := d.Normalize(); err != nil {
		return Device{}, false, fmt.Errorf("put device: %w", err)
	}
	if d.Source == "" {
		d.Source = SourceAPI
	}
	var created bool
	err := s.writeTx(ctx, func(tx txn) error {
		var err error
		created, err = upsertDevice(ctx, tx, d, actor, now)
		return err
	})
	if err != nil {
		return Device{}, false, fmt.Errorf("put device %s: %w", d.ID, err)
	}
	got, err := s.GetDevice(ctx, d.ID)
	return got, created, err
}

func upsertDevice(ctx context.Context, tx txn, d Device, actor string, now time.Time) (bool, error) {
	var customer any
	if d.CustomerID != "" {
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM customers WHERE id = ?`, d.CustomerID).Scan(&n); err != nil {
			return false, err
		}
		if n == 0 {
			return false, fmt.Errorf("%w: customer_id: no customer %q; create it first", ErrInvalidArgument, d.CustomerID)
		}
		customer = d.CustomerID
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, d.ID).Scan(&n); err != nil {
		return false, err
	}
	if _, err := tx.exec(ctx, `INSERT INTO devices (id, model, customer_id, site, firmware, source, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET model = excluded.model, customer_id = excluded.customer_id, site = excluded.site,
			firmware = excluded.firmware, updated_at = excluded.updated_at`,
		d.ID, d.Model, customer, d.Site, d.Firmware, d.Source, formatTime(now), formatTime(now)); err != nil {
		return false, err
	}
	if actor == "" {
		return n == 0, nil // a bulk import records itself once
	}
	action := "updated"
	if n == 0 {
		action = "created"
	}
	return n == 0, addAudit(ctx, tx, AuditEntry{Subject: "device:" + d.ID, At: now, Actor: actor, Action: action, To: d.CustomerID, Note: d.Source})
}

const deviceColumns = `id, model, COALESCE(customer_id, ''), site, firmware, source, last_seen, online, created_at, updated_at`

func scanDevice(r interface{ Scan(...any) error }) (Device, error) {
	var (
		d      Device
		seen   sql.NullString
		online sql.NullBool
		cr, up string
	)
	if err := r.Scan(&d.ID, &d.Model, &d.CustomerID, &d.Site, &d.Firmware, &d.Source, &seen, &online, &cr, &up); err != nil {
		return Device{}, err
	}
	var err error
	if d.LastSeen, err = optTime(seen); err != nil {
		return Device{}, fmt.Errorf("device %s: last_seen: %w", d.ID, err)
	}
	if online.Valid {
		d.Online = &online.Bool
	}
	if d.CreatedAt, err = parseTime(cr); err != nil {
		return Device{}, fmt.Errorf("device %s: created_at: %w", d.ID, err)
	}
	if d.UpdatedAt, err = parseTime(up); err != nil {
		return Device{}, fmt.Errorf("device %s: updated_at: %w", d.ID, err)
	}
	return d, nil
}

// GetDevice returns device id; an unknown id wraps ErrNotFound.
func (s *SQLStore) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, rebind(s.pg, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	return d, nil
}

// DeviceFilter selects devices for ListDevices.
type DeviceFilter struct {
	CustomerID string
	Model      string
	Site       string
	Limit      int
	Cursor     string
}

// ListDevices returns devices by id, a page at a time.
func (s *SQLStore) ListDevices(ctx context.Context, f DeviceFilter) ([]Device, string, error) {
	var (
		where []string
		args  []any
	)
	if f.CustomerID != "" {
		where, args = append(where, "customer_id = ?"), append(args, f.CustomerID)
	}
	if f.Model != "" {
		where, args = append(where, "model = ?"), append(args, f.Model)
	}
	if f.Site != "" {
		where, args = append(where, "site = ?"), append(args, f.Site)
	}
	if f.Cursor != "" {
		after, err := decodeKeyCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list devices: %w", err)
		}
		where, args = append(where, "id > ?"), append(args, after)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	q := `SELECT ` + deviceColumns + ` FROM devices`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	rows, err := s.db.QueryContext(ctx, rebind(s.pg, q+` ORDER BY id LIMIT ?`), append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	items := []Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list devices: %w", err)
		}
		items = append(items, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeKeyCursor(items[limit-1].ID)
	}
	return items, next, nil
}

// DeleteDevice deletes device id from the registry; its tickets stay.
func (s *SQLStore) DeleteDevice(ctx context.Context, id, actor string, now time.Time) error {
	err := s.writeTx(ctx, func(tx txn) error {
		r, err := tx.exec(ctx, `DELETE FROM devices WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return addAudit(ctx, tx, AuditEntry{Subject: "device:" + id, At: now, Actor: actor, Action: ActionDeleted})
	})
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	return nil
}

// seen records telemetry from devices, all in one transaction (one commit
// for a whole group of messages): it updates last_seen, online and the
// reported model and firmware of each known device, and registers an
// unknown one when register is true. known[i] is false for an unknown
// device that was not registered. ss holds each device once.
func (s *SQLStore) seen(ctx context.Context, ss []telemetry.Sighting, now time.Time, register bool) (known, registered []bool, err error) {
	known, registered = make([]bool, len(ss)), make([]bool, len(ss))
	err = s.writeTx(ctx, func(tx txn) error {
		clear(known)
		clear(registered)
		// Prepared once: parsing the statement would cost more than
		// running it, for each of thousands of devices.
		update, err := tx.prepare(ctx, `UPDATE devices SET last_seen = ?, online = ?,
				model = CASE WHEN ? <> '' THEN ? ELSE model END,
				firmware = CASE WHEN ? <> '' THEN ? ELSE firmware END
			WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("prepare device update: %w", err)
		}
		defer update.Close()
		for i, sg := range ss {
			id, model, firmware := string(sg.Device), sg.Model, sg.Firmware
			r, err := update.ExecContext(ctx, formatTime(now), true, model, model, firmware, firmware, id)
			if err != nil {
				return fmt.Errorf("update device %s: %w", id, err)
			}
			if n, _ := r.RowsAffected(); n == 1 {
				known[i] = true
				continue
			}
			if !register {
				continue
			}
			r, err = tx.exec(ctx, `INSERT INTO devices (id, model, firmware, source, last_seen, online, created_at, updated_at)
				VALUES (?, ?, ?, 'auto', ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
				id, model, firmware, formatTime(now), true, formatTime(now), formatTime(now))
			if err != nil {
				return fmt.Errorf("register device %s: %w", id, err)
			}
			known[i] = true
			if n, _ := r.RowsAffected(); n == 1 {
				registered[i] = true
				if err := addAudit(ctx, tx, AuditEntry{Subject: "device:" + id, At: now, Actor: SystemActor, Action: ActionRegistered,
					To: model, Note: "first telemetry from an unknown device"}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return known, registered, err
}

// onlineWord names an online state in the audit trail.
func onlineWord(online bool) string {
	if online {
		return "online"
	}
	return "offline"
}

// setOnline records a known device's online state from its status topic
// (at: when it was received): online, and for online a last_seen no older
// than at. A change of state is audited (system). known is false for a
// device the registry does not know, which is left alone.
func (s *SQLStore) setOnline(ctx context.Context, id string, online bool, at, now time.Time) (known, changed bool, err error) {
	err = s.writeTx(ctx, func(tx txn) error {
		known, changed = false, false
		var prev sql.NullBool
		err := tx.queryRow(ctx, `SELECT online FROM devices WHERE id = ?`+tx.forUpdate(), id).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read device: %w", err)
		}
		known = true
		if online {
			_, err = tx.exec(ctx, `UPDATE devices SET online = ?,
					last_seen = CASE WHEN last_seen IS NULL OR last_seen < ? THEN ? ELSE last_seen END
				WHERE id = ?`, true, formatTime(at), formatTime(at), id)
		} else {
			_, err = tx.exec(ctx, `UPDATE devices SET online = ? WHERE id = ?`, false, id)
		}
		if err != nil {
			return fmt.Errorf("update device: %w", err)
		}
		if prev.Valid && prev.Bool == online {
			return nil
		}
		changed = true
		from := ""
		if prev.Valid {
			from = onlineWord(prev.Bool)
		}
		return addAudit(ctx, tx, AuditEntry{Subject: "device:" + id, At: now, Actor: SystemActor, Action: ActionOnline,
			From: from, To: onlineWord(online), Note: "status topic"})
	})
	return known, changed, err
}
