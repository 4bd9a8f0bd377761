package telemetry

import (
	"fmt"
	"time"
)

// Severity ranks how bad a fault is. The zero value is invalid.
type Severity int

// Severities, from least to most severe.
const (
	SeverityInfo Severity = iota + 1
	SeverityMinor
	SeverityMajor
	SeverityCritical
)

var severityNames = [...]string{SeverityInfo: "info", SeverityMinor: "minor", SeverityMajor: "major", SeverityCritical: "critical"}

func (s Severity) String() string {
	if s < SeverityInfo || s > SeverityCritical {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// Valid reports whether s is one of the defined severities.
func (s Severity) Valid() bool { return s >= SeverityInfo && s <= SeverityCritical }

// ParseSeverity parses "info", "minor", "major" or "critical".
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && n == s {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q: want info, minor, major or critical", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// State says whether a Finding starts or ends a fault.
type State int

// Finding states.
const (
	Raised State = iota + 1
	Cleared
)

func (s State) String() string {
	switch s {
	case Raised:
		return "raised"
	case Cleared:
		return "cleared"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Evidence is what decided a Finding, kept on the ticket so staff need not
// dig for it. Fields that do not apply to a detector stay zero and are
// omitted from JSON.
type Evidence struct {
	Detector string    `json:"detector"`          // e.g. "threshold"
	Metric   string    `json:"metric"`            // the metric the rule watches
	Value    float64   `json:"value"`             // the value of the deciding reading
	Limit    float64   `json:"limit"`             // the limit that was crossed (raise) or the clear level (clear)
	Op       string    `json:"op,omitempty"`      // "above" or "below"
	For      string    `json:"for,omitempty"`     // how long the condition had to hold, e.g. "10m0s"
	Since    time.Time `json:"since,omitzero"`    // event time the condition started to hold
	Samples  int       `json:"samples,omitempty"` // readings seen while the condition held
	Note     string    `json:"note,omitempty"`    // a sentence for people

	// Window statistics and predictions, set by the detectors they apply to.
	Expected   float64   `json:"expected,omitempty"`   // the value the detector expected: baseline (anomaly), fitted trend (forecast, usage)
	Spread     float64   `json:"spread,omitempty"`     // the baseline's spread (anomaly: robust standard deviation); flatline: max-min
	Score      float64   `json:"score,omitempty"`      // anomaly: z-score; rate: change per unit; forecast, usage: slope per hour
	Window     string    `json:"window,omitempty"`     // the window the statistics cover, e.g. "12h0m0s"
	CrossAt    time.Time `json:"cross_at,omitzero"`    // forecast, usage: predicted time the limit is reached
	Confidence float64   `json:"confidence,omitempty"` // forecast, usage: confidence in the trend, 0 to 1
	Code       string    `json:"code,omitempty"`       // event: the device's event code
}

// A Finding is a detector's claim that a fault started (Raised) or ended
// (Cleared) on one device.
type Finding struct {
	Device          DeviceID
	Model           string
	Fault           string // ticket type, e.g. "filter_clogging"
	Rule            string // the rule that decided it, e.g. "supply_temp_c/threshold"
	State           State
	Severity        Severity
	CustomerVisible bool
	Remedy          string
	At              time.Time // event time of the reading that decided it
	Evidence        Evidence
}

// Key is the dedup key: at most one open ticket per Key.
func (f Finding) Key() string { return string(f.Device) + "/" + f.Fault }
