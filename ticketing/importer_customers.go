package ticketing

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// CustomerImportRow is one customer of a bulk import, with where it came
// from.
type CustomerImportRow struct {
	Row      int // CSV: line number (the header is line 1); JSON: 1-based element index
	Customer Customer
}

// customerImportColumns are the CSV columns of a customer import; only id is
// required. The channels are the columns email (an e-mail channel),
// webhook_url with webhook_secret (a webhook channel) and mqtt (true for
// an MQTT channel), in the order these columns have in the header: the
// first is the preferred channel.
var customerImportColumns = []string{"id", "name", "tier", "language", "timezone", "quiet_start", "quiet_end",
	"email", "webhook_url", "webhook_secret", "mqtt"}

// customerJSONFields are the keys of a customer in a JSON import, the PUT
// body plus id.
var customerJSONFields = []string{"id", "name", "tier", "language", "timezone", "quiet_hours", "channels"}

// ParseCustomersCSV reads customers from CSV with a header row naming
// columns from id, name, tier, language, timezone, quiet_start, quiet_end,
// email, webhook_url, webhook_secret, mqtt (any order; id required; see
// customerImportColumns for the channels). Rows that cannot be customers
// are returned as RowErrors and the others as CustomerImportRows (not yet
// validated: the import does that); an error means the file as a whole is
// unusable. It never panics on any input.
func ParseCustomersCSV(r io.Reader) ([]CustomerImportRow, []RowError, error) {
	var rows []CustomerImportRow
	bad, err := readCSV(r, customerImportColumns, func(line int, cols, rec []string) *RowError {
		var (
			c               Customer
			qs, qe          string
			webhook, secret string
			errs            []string
			webhookAt       = -1
		)
		for i, v := range rec {
			v = strings.TrimSpace(v)
			switch cols[i] {
			case "id":
				c.ID = v
			case "name":
				c.Name = v
			case "tier":
				c.Tier = Tier(v)
			case "language":
				c.Language = v
			case "timezone":
				c.Timezone = v
			case "quiet_start":
				qs = v
			case "quiet_end":
				qe = v
			case "email":
				if v != "" {
					c.Channels = append(c.Channels, Channel{Type: "email", Address: v})
				}
			case "webhook_url":
				webhook = v
				if v != "" {
					webhookAt = len(c.Channels)
					c.Channels = append(c.Channels, Channel{Type: "webhook", URL: v})
				}
			case "webhook_secret":
				secret = v
			case "mqtt":
				switch strings.ToLower(v) {
				case "", "false", "no", "0":
				case "true", "yes", "1":
					c.Channels = append(c.Channels, Channel{Type: "mqtt"})
				default:
					errs = append(errs, fmt.Sprintf("mqtt: %q is not true or false", v))
				}
			}
		}
		if secret != "" {
			if webhook == "" {
				errs = append(errs, "webhook_secret: set without webhook_url")
			} else {
				c.Channels[webhookAt].Secret = secret
			}
		}
		if qs != "" || qe != "" {
			c.QuietHours = &QuietHours{Start: qs, End: qe}
		}
		if len(errs) > 0 {
			return &RowError{Row: line, ID: c.ID, Reason: strings.Join(errs, "; ")}
		}
		rows = append(rows, CustomerImportRow{Row: line, Customer: c})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rows, bad, nil
}

// importCustomer is the JSON shape of one customer, the PUT body plus id.
type importCustomer struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Tier       Tier        `json:"tier"`
	Language   string      `json:"language"`
	Timezone   string      `json:"timezone"`
	QuietHours *QuietHours `json:"quiet_hours"`
	Channels   []Channel   `json:"channels"`
}

// ParseCustomersJSON reads customers from a JSON array of objects with the
// keys id, name, tier, language, timezone, quiet_hours, channels (as in
// PUT /api/v1/customers/{id}). An element that is not such an object is a
// RowError; a document that is not an array, or breaks off, is an error.
// It never panics on any input.
func ParseCustomersJSON(r io.Reader) ([]CustomerImportRow, []RowError, error) {
	var rows []CustomerImportRow
	bad, err := readJSONArray(r, "customers", customerJSONFields, func(n int, c importCustomer) *RowError {
		rows = append(rows, CustomerImportRow{Row: n, Customer: Customer{ID: c.ID, Name: c.Name, Tier: c.Tier, Language: c.Language,
			Timezone: c.Timezone, QuietHours: c.QuietHours, Channels: c.Channels}})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rows, bad, nil
}

// importCustomers upserts rows in one transaction: each row that fails
// validation or repeats an earlier row's id is rejected with its reason,
// and the rest are written, with one audit entry for the import.
func (s *SQLStore) importCustomers(ctx context.Context, rows []CustomerImportRow, bad []RowError, actor string, now time.Time) (ImportReport, error) {
	rep := ImportReport{Received: len(rows) + len(bad), Errors: append([]RowError(nil), bad...)}
	seen := make(map[string]int, len(rows))
	var valid []CustomerImportRow
	for _, r := range rows {
		c := r.Customer
		if err := c.Normalize(); err != nil {
			msg := strings.TrimPrefix(err.Error(), ErrInvalidArgument.Error()+": ")
			rep.Errors = append(rep.Errors, RowError{Row: r.Row, ID: c.ID, Reason: strings.ReplaceAll(msg, "\n", "; ")})
			continue
		}
		if first, dup := seen[c.ID]; dup {
			rep.Errors = append(rep.Errors, RowError{Row: r.Row, ID: c.ID, Reason: fmt.Sprintf("id: %s repeats row %d", c.ID, first)})
			continue
		}
		seen[c.ID] = r.Row
		r.Customer = c
		valid = append(valid, r)
	}
	var created, updated int
	err := s.writeTx(ctx, func(tx txn) error {
		created, updated = 0, 0
		for _, r := range valid {
			isNew, err := upsertCustomer(ctx, tx, r.Customer, "", now)
			if err != nil {
				return fmt.Errorf("row %d: %w", r.Row, err)
			}
			if isNew {
				created++
			} else {
				updated++
			}
		}
		return addAudit(ctx, tx, AuditEntry{Subject: "customers", At: now, Actor: actor, Action: "imported",
			Note: fmt.Sprintf("%d received, %d created, %d updated, %d rejected", rep.Received, created, updated, rep.Received-created-updated)})
	})
	if err != nil {
		return ImportReport{}, fmt.Errorf("import customers: %w", err)
	}
	rep.finish(created, updated, nil)
	return rep, nil
}

// ImportCustomers writes parsed rows (ParseCustomersCSV, ParseCustomersJSON)
// to the registry and reports what it created, updated and rejected, and
// why. The rows are counted in forewarn_registry_customer_import_rows_total.
func (s *Service) ImportCustomers(ctx context.Context, rows []CustomerImportRow, bad []RowError, actor string) (ImportReport, error) {
	rep, err := s.store.importCustomers(ctx, rows, bad, actor, s.now())
	if err != nil {
		return rep, err
	}
	s.metrics.customerImportRows.WithLabelValues("created").Add(float64(rep.Created))
	s.metrics.customerImportRows.WithLabelValues("updated").Add(float64(rep.Updated))
	s.metrics.customerImportRows.WithLabelValues("rejected").Add(float64(rep.Rejected))
	s.log.Info("customers imported", "actor", actor, "received", rep.Received, "created", rep.Created, "updated", rep.Updated, "rejected", rep.Rejected)
	return rep, nil
}
