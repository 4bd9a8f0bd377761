package replay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// WriteRows writes one CSV line per input row: timestamp (as in the
// input), anomaly_score (in [0, 1]), finding (the faults raised at that
// row, joined by |, or empty).
func WriteRows(w io.Writer, t *Table, res Result) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("timestamp,anomaly_score,finding\n")
	for i, rr := range res.Rows {
		bw.WriteString(csvField(t.Stamps[i]))
		bw.WriteByte(',')
		bw.WriteString(strconv.FormatFloat(rr.Score, 'g', 8, 64))
		bw.WriteByte(',')
		bw.WriteString(strings.Join(rr.Raised, "|"))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// findingJSON is a finding as a JSON line of findings.jsonl.
type findingJSON struct {
	File     string             `json:"file"`
	DeviceID string             `json:"device_id"`
	Model    string             `json:"model"`
	Fault    string             `json:"fault"`
	Rule     string             `json:"rule"`
	State    string             `json:"state"`
	Severity string             `json:"severity"`
	At       time.Time          `json:"at"`
	Evidence telemetry.Evidence `json:"evidence"`
}

// WriteFindings writes each finding as one JSON object per line, with the
// input file's relative path.
func WriteFindings(w io.Writer, file string, fs []telemetry.Finding) error {
	enc := json.NewEncoder(w)
	for _, f := range fs {
		if err := enc.Encode(findingJSON{
			File: file, DeviceID: string(f.Device), Model: f.Model, Fault: f.Fault, Rule: f.Rule,
			State: f.State.String(), Severity: f.Severity.String(), At: f.At, Evidence: f.Evidence,
		}); err != nil {
			return fmt.Errorf("write finding: %w", err)
		}
	}
	return nil
}
