package ticketing

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// MaxImportRows bounds one bulk import.
const MaxImportRows = 100_000

// ImportRow is one device of a bulk import, with where it came from.
type ImportRow struct {
	Row    int // CSV: line number (the header is line 1); JSON: 1-based element index
	Device Device
}

// RowError says why one row of an import was rejected.
type RowError struct {
	Row    int    `json:"row"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// ImportReport is the outcome of a bulk import.
type ImportReport struct {
	Received int        `json:"received"`
	Created  int        `json:"created"`
	Updated  int        `json:"updated"`
	Rejected int        `json:"rejected"`
	Errors   []RowError `json:"errors"` // one per rejected row, in row order
}

// importColumns are the CSV columns, the same names as the JSON keys of a
// device; only id is required.
var importColumns = []string{"id", "model", "customer_id", "site", "firmware"}

// ParseDevicesCSV reads devices from CSV with a header row naming columns
// from id, model, customer_id, site, firmware (any order; id required).
// Rows that cannot be devices are returned as RowErrors and the others as
// ImportRows; an error means the file as a whole is unusable (no header,
// an unknown column, too many rows). It never panics on any input.
func ParseDevicesCSV(r io.Reader) ([]ImportRow, []RowError, error) {
	var rows []ImportRow
	bad, err := readCSV(r, importColumns, func(line int, cols, rec []string) *RowError {
		var d Device
		for i, v := range rec {
			v = strings.TrimSpace(v)
			switch cols[i] {
			case "id":
				d.ID = v
			case "model":
				d.Model = v
			case "customer_id":
				d.CustomerID = v
			case "site":
				d.Site = v
			case "firmware":
				d.Firmware = v
			}
		}
		rows = append(rows, ImportRow{Row: line, Device: d})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rows, bad, nil
}

// readCSV reads CSV with a header row of names from columns (any order, no
// repeats, id required) and calls row with each record that has as many
// fields as the header, its line number and the header's names. Records
// that are not CSV, have the wrong number of fields, or that row refuses
// are returned as RowErrors; an error means the file as a whole is
// unusable (no header, an unknown column, more than MaxImportRows rows).
func readCSV(r io.Reader, columns []string, row func(line int, cols, rec []string) *RowError) ([]RowError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, to report the row
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: csv: empty; want a header row such as %s", ErrInvalidArgument, strings.Join(columns, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: csv header: %w", ErrInvalidArgument, err)
	}
	cols := make([]string, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(columns, h) {
			return nil, fmt.Errorf("%w: csv header: unknown column %q; want %s", ErrInvalidArgument, h, strings.Join(columns, ", "))
		}
		if slices.Contains(cols[:i], h) {
			return nil, fmt.Errorf("%w: csv header: column %q twice", ErrInvalidArgument, h)
		}
		cols[i] = h
	}
	if !slices.Contains(cols, "id") {
		return nil, fmt.Errorf("%w: csv header: no id column", ErrInvalidArgument)
	}
	var bad []RowError
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if n >= MaxImportRows {
			return nil, fmt.Errorf("%w: more than %d rows; split the file", ErrInvalidArgument, MaxImportRows)
		}
		if pe, ok := errors.AsType[*csv.ParseError](err); ok {
			bad = append(bad, RowError{Row: pe.StartLine, Reason: "csv: " + pe.Err.Error()})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: csv: %w", ErrInvalidArgument, err)
		}
		line, _ := cr.FieldPos(0) // valid only after a successful Read
		if len(rec) != len(cols) {
			bad = append(bad, RowError{Row: line, Reason: fmt.Sprintf("%d fields, want %d like the header", len(rec), len(cols))})
			continue
		}
		if e := row(line, cols, rec); e != nil {
			bad = append(bad, *e)
		}
	}
	return bad, nil
}

// importDevice is the JSON shape of one device, the PUT body plus id.
type importDevice struct {
	ID         string `json:"id"`
	Model      string `json:"model"`
	CustomerID string `json:"customer_id"`
	Site       string `json:"site"`
	Firmware   string `json:"firmware"`
}

// ParseDevicesJSON reads devices from a JSON array of objects with the
// keys id, model, customer_id, site, firmware. An element that is not such
// an object is a RowError; a document that is not an array, or breaks off,
// is an error. It never panics on any input.
func ParseDevicesJSON(r io.Reader) ([]ImportRow, []RowError, error) {
	var rows []ImportRow
	bad, err := readJSONArray(r, "devices", importColumns, func(n int, d importDevice) *RowError {
		rows = append(rows, ImportRow{Row: n, Device: Device{ID: d.ID, Model: d.Model, CustomerID: d.CustomerID, Site: d.Site, Firmware: d.Firmware}})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rows, bad, nil
}

// readJSONArray reads a JSON array of objects with the keys fields (into
// T, unknown keys refused) and calls elem with each and its 1-based index.
// An element that is not such an object, or that elem refuses, is a
// RowError; a document that is not an array, breaks off, or has more than
// MaxImportRows elements is an error.
func readJSONArray[T any](r io.Reader, what string, fields []string, elem func(n int, v T) *RowError) ([]RowError, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: json: %w", ErrInvalidArgument, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: json: want an array of %s, [{\"id\": ...}, ...]", ErrInvalidArgument, what)
	}
	var bad []RowError
	for n := 1; dec.More(); n++ {
		if n > MaxImportRows {
			return nil, fmt.Errorf("%w: more than %d rows; split the file", ErrInvalidArgument, MaxImportRows)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: json: element %d: %w", ErrInvalidArgument, n, err)
		}
		var v T
		ed := json.NewDecoder(bytes.NewReader(raw))
		ed.DisallowUnknownFields()
		if err := ed.Decode(&v); err != nil {
			id := ""
			var probe struct {
				ID any `json:"id"`
			}
			if json.Unmarshal(raw, &probe) == nil {
				if s, ok := probe.ID.(string); ok {
					id = s
				}
			}
			bad = append(bad, RowError{Row: n, ID: id, Reason: jsonReason(err, fields)})
			continue
		}
		if e := elem(n, v); e != nil {
			bad = append(bad, *e)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: json: %w", ErrInvalidArgument, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: json: data after the array", ErrInvalidArgument)
	}
	return bad, nil
}

// jsonReason turns a decoding error into a reason that names the field.
func jsonReason(err error, fields []string) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return fmt.Sprintf("want an object, got %s", te.Value)
		}
		return fmt.Sprintf("%s: want a %s, got %s", te.Field, te.Type, te.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f + "; want " + strings.Join(fields, ", ")
	}
	return strings.TrimPrefix(msg, "json: ")
}

// importDevices upserts rows in one transaction: each row that fails
// validation, names an unknown customer, or repeats an earlier row's id is
// rejected with its reason, and the rest are written (source import).
func (s *SQLStore) importDevices(ctx context.Context, rows []ImportRow, bad []RowError, actor string, now time.Time) (ImportReport, error) {
	rep := ImportReport{Received: len(rows) + len(bad), Errors: append([]RowError(nil), bad...)}
	reject := func(r ImportRow, err error) {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, ErrInvalidArgument.Error()+": ")
		rep.Errors = append(rep.Errors, RowError{Row: r.Row, ID: r.Device.ID, Reason: strings.ReplaceAll(msg, "\n", "; ")})
	}
	seen := make(map[string]int, len(rows))
	var valid []ImportRow
	for _, r := range rows {
		d := r.Device
		if err := d.Normalize(); err != nil {
			reject(r, err)
			continue
		}
		if first, dup := seen[d.ID]; dup {
			reject(r, fmt.Errorf("id: %s repeats row %d", d.ID, first))
			continue
		}
		seen[d.ID] = r.Row
		d.Source = SourceImport
		r.Device = d
		valid = append(valid, r)
	}
	var created, updated int
	var late []RowError
	err := s.writeTx(ctx, func(tx txn) error {
		created, updated, late = 0, 0, nil
		for _, r := range valid {
			isNew, err := upsertDevice(ctx, tx, r.Device, "", now)
			if errors.Is(err, ErrInvalidArgument) {
				late = append(late, RowError{Row: r.Row, ID: r.Device.ID, Reason: strings.TrimPrefix(err.Error(), ErrInvalidArgument.Error()+": ")})
				continue
			}
			if err != nil {
				return fmt.Errorf("row %d: %w", r.Row, err)
			}
			if isNew {
				created++
			} else {
				updated++
			}
		}
		return addAudit(ctx, tx, AuditEntry{Subject: "devices", At: now, Actor: actor, Action: "imported",
			Note: fmt.Sprintf("%d received, %d created, %d updated, %d rejected", rep.Received, created, updated, rep.Received-created-updated)})
	})
	if err != nil {
		return ImportReport{}, fmt.Errorf("import devices: %w", err)
	}
	rep.finish(created, updated, late)
	return rep, nil
}

// finish records what the write did: the counts, the rows the write
// itself refused (late), all errors in row order, and the rejected count.
// Errors is [] rather than nil, so it is a JSON array.
func (rep *ImportReport) finish(created, updated int, late []RowError) {
	rep.Created, rep.Updated = created, updated
	rep.Errors = append(rep.Errors, late...)
	slices.SortStableFunc(rep.Errors, func(a, b RowError) int { return a.Row - b.Row })
	rep.Rejected = len(rep.Errors)
	if rep.Errors == nil {
		rep.Errors = []RowError{}
	}
}

// ImportDevices writes parsed rows (ParseDevicesCSV, ParseDevicesJSON) to
// the registry and reports what it created, updated and rejected, and why.
// The rejected rows are counted in forewarn_registry_import_rows_total.
func (s *Service) ImportDevices(ctx context.Context, rows []ImportRow, bad []RowError, actor string) (ImportReport, error) {
	rep, err := s.store.importDevices(ctx, rows, bad, actor, s.now())
	s.forgetSeen("") // imported devices are admitted at once
	if err != nil {
		return rep, err
	}
	s.metrics.importRows.WithLabelValues("created").Add(float64(rep.Created))
	s.metrics.importRows.WithLabelValues("updated").Add(float64(rep.Updated))
	s.metrics.importRows.WithLabelValues("rejected").Add(float64(rep.Rejected))
	s.log.Info("devices imported", "actor", actor, "received", rep.Received, "created", rep.Created, "updated", rep.Updated, "rejected", rep.Rejected)
	return rep, nil
}
