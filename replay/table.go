package replay

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Label columns: present in labelled data sets, never fed to detectors.
var labelColumns = []string{"anomaly", "changepoint"}

// MaxRows bounds the rows of one input file.
const MaxRows = 10_000_000

// A Table is one input file: its metric columns and rows, and its label
// columns apart.
type Table struct {
	Metrics []string             // metric column names, in file order
	Rows    []Row                // in file order
	Labels  map[string][]float64 // label column -> value per row (NaN when empty)
	Stamps  []string             // each row's timestamp as written
}

// A Row is one input row: its time and one value per metric (NaN when
// empty or not a number).
type Row struct {
	At     time.Time
	Values []float64
}

// ParseTime parses a timestamp as the benchmarks write them: naive
// "2006-01-02 15:04:05[.ffffff]" (taken as UTC), "2006-01-02T15:04:05",
// or RFC 3339 with a zone.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not YYYY-MM-DD HH:MM:SS or RFC 3339", s)
}

// ReadTable reads a CSV file: a header, then rows. The separator is ';'
// when the header has one, else ','. The time column is the one named
// timestamp, datetime or time (case-insensitive); every other column is a
// metric, except the label columns anomaly and changepoint. Errors name
// the line.
func ReadTable(r io.Reader) (*Table, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	cr := csv.NewReader(br)
	if bytes.IndexByte(head, ';') >= 0 {
		cr.Comma = ';'
	}
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	timeCol := -1
	t := &Table{Labels: map[string][]float64{}}
	var metricCols, labelCols []int
	var labelNames []string
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		lower := strings.ToLower(name)
		if seen[lower] {
			return nil, fmt.Errorf("header: column %q appears twice", name)
		}
		seen[lower] = true
		switch {
		case (lower == "timestamp" || lower == "datetime" || lower == "time") && timeCol < 0:
			timeCol = i
		case lower == labelColumns[0] || lower == labelColumns[1]:
			labelCols = append(labelCols, i)
			labelNames = append(labelNames, lower)
		case name == "":
			return nil, fmt.Errorf("header: column %d has no name", i+1)
		default:
			metricCols = append(metricCols, i)
			t.Metrics = append(t.Metrics, name)
		}
	}
	if timeCol < 0 {
		return nil, errors.New("header: no timestamp, datetime or time column")
	}
	if len(t.Metrics) == 0 {
		return nil, errors.New("header: no metric column")
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %w", pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("read: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(t.Rows) >= MaxRows {
			return nil, fmt.Errorf("line %d: more than %d rows", line, MaxRows)
		}
		at, err := ParseTime(rec[timeCol])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		row := Row{At: at, Values: make([]float64, len(metricCols))}
		for j, c := range metricCols {
			row.Values[j] = parseValue(rec[c])
		}
		for j, c := range labelCols {
			t.Labels[labelNames[j]] = append(t.Labels[labelNames[j]], parseValue(rec[c]))
		}
		t.Rows = append(t.Rows, row)
		t.Stamps = append(t.Stamps, strings.TrimSpace(rec[timeCol]))
	}
}

// parseValue parses a metric cell: a number, true/false, or NaN for
// anything else (an empty cell, a word). Infinities become NaN too.
func parseValue(s string) float64 {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "true":
		return 1
	case "false":
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return math.NaN()
	}
	return v
}
