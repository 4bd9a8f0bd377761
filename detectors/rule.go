package detectors

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// Detector names: DESIGN.md's catalogue, one file each.
const (
	DetectorThreshold = "threshold"
	DetectorRate      = "rate"
	DetectorFlatline  = "flatline"
	DetectorOffline   = "offline"
	DetectorAnomaly   = "anomaly"
	DetectorForecast  = "forecast"
	DetectorEvent     = "event"
	DetectorUsage     = "usage"
	DetectorContext   = "context"
)

// supportedDetectors are the detector names Rule.Validate accepts.
var supportedDetectors = []string{DetectorThreshold, DetectorRate, DetectorFlatline, DetectorOffline,
	DetectorAnomaly, DetectorForecast, DetectorEvent, DetectorUsage, DetectorContext}

// commonKeys apply to every detector.
var commonKeys = []string{"name", "metric", "detector", "fault", "severity", "customer_visible", "remedy"}

// detectorKeys are the keys each detector reads besides commonKeys; a rule
// that sets another key is rejected, so a typo'd or misplaced key cannot be
// silently ignored. The detector files document the same lists (a test
// checks it).
var detectorKeys = map[string][]string{
	DetectorThreshold: {"above", "below", "clear_below", "clear_above", "for", "clear_for"},
	DetectorRate:      {"above", "below", "clear_below", "clear_above", "per", "window", "for", "clear_for"},
	DetectorFlatline:  {"window", "tolerance"},
	DetectorOffline:   {"for"},
	DetectorAnomaly:   {"k", "clear_k", "warmup", "half_life", "season", "season_buckets", "likelihood_half_life", "for", "clear_for"},
	DetectorForecast:  {"limit", "direction", "window", "horizon", "clear_horizon", "min_confidence", "for", "clear_for"},
	DetectorEvent:     {"codes", "clear_codes"},
	DetectorUsage:     {"limit", "direction", "window", "horizon", "tolerance"},
	DetectorContext:   {"bins", "depth", "novelty", "rest", "memory", "warmup", "margin", "recut"},
}

// A Profile is the detector configuration of one device model:
// profiles.<model> in forewarn.yaml.
type Profile struct {
	// OfflineAfter is the default silence of an offline rule that sets no
	// for; 0 means such a rule is invalid.
	OfflineAfter time.Duration `mapstructure:"offline_after"`
	Rules        []Rule        `mapstructure:"rules"`
}

// A Rule applies one detector to one metric: profiles.<model>.rules[i] in
// forewarn.yaml. Optional numbers are pointers so that "not set" differs from
// zero. Each detector's file (threshold.go, rate.go, ...) describes the keys
// it reads; detectorKeys lists them.
type Rule struct {
	Name               string             `mapstructure:"name"`     // optional; default Metric+"/"+Detector
	Metric             string             `mapstructure:"metric"`   // the reading field the rule watches
	Detector           string             `mapstructure:"detector"` // one of supportedDetectors
	Above              *float64           `mapstructure:"above"`
	Below              *float64           `mapstructure:"below"`
	ClearBelow         *float64           `mapstructure:"clear_below"` // for an above rule; default Above (no hysteresis)
	ClearAbove         *float64           `mapstructure:"clear_above"` // for a below rule; default Below
	For                time.Duration      `mapstructure:"for"`         // how long the condition must hold before raising; 0 = at once
	ClearFor           *time.Duration     `mapstructure:"clear_for"`   // how long the clear condition must hold; default For
	Per                time.Duration      `mapstructure:"per"`         // rate: the time unit of above/below; default 1m
	Window             time.Duration      `mapstructure:"window"`      // rate, flatline, forecast, usage
	Tolerance          *float64           `mapstructure:"tolerance"`   // flatline: spread still flat; usage: rise that means replaced
	K                  *float64           `mapstructure:"k"`           // anomaly: raise at |z| > k
	ClearK             *float64           `mapstructure:"clear_k"`     // anomaly: clear at |z| <= clear_k
	Warmup             int                `mapstructure:"warmup"`      // anomaly: readings before it may raise
	HalfLife           int                `mapstructure:"half_life"`   // anomaly: baseline memory, in readings
	Season             time.Duration      `mapstructure:"season"`      // anomaly: length of a cycle (24h); 0 = none
	SeasonBuckets      int                `mapstructure:"season_buckets"`
	LikelihoodHalfLife int                `mapstructure:"likelihood_half_life"` // anomaly: judge |z| against its own usual level; 0 = off
	Limit              *float64           `mapstructure:"limit"`                // forecast, usage
	Direction          string             `mapstructure:"direction"`            // forecast, usage: rising or falling
	Horizon            time.Duration      `mapstructure:"horizon"`              // forecast, usage
	ClearHorizon       time.Duration      `mapstructure:"clear_horizon"`        // forecast: default 1.25*horizon
	MinConfidence      *float64           `mapstructure:"min_confidence"`
	Codes              []string           `mapstructure:"codes"`       // event: codes that raise
	ClearCodes         []string           `mapstructure:"clear_codes"` // event: codes that clear
	Fault              string             `mapstructure:"fault"`       // ticket type, [a-z0-9_]+
	Severity           telemetry.Severity `mapstructure:"severity"`
	CustomerVisible    bool               `mapstructure:"customer_visible"`
	Remedy             string             `mapstructure:"remedy"`
	Bins               int                `mapstructure:"bins"`    // context: levels of the warm-up range
	Depth              int                `mapstructure:"depth"`   // context: longest context, in level changes
	Novelty            *float64           `mapstructure:"novelty"` // context: fraction of new contexts that raises
	Rest               *int               `mapstructure:"rest"`    // context: readings after a raise without another
	Memory             int                `mapstructure:"memory"`  // context: contexts remembered
	// Margin is omitted from rule keys when unset, so rules written before
	// it keep their keys (and their state across reloads and restores).
	Margin *float64 `mapstructure:"margin" json:",omitempty"` // context: fraction of a level past the range that stays inside
	// Recut, like Margin, is omitted from rule keys when unset.
	Recut *float64 `mapstructure:"recut" json:",omitempty"` // context: range widths past the range that cut it again while judging; 0 = never
}

// name is the rule's name in findings: Name, or Metric+"/"+Detector, or
// Detector for a rule without a metric (offline, event).
func (r Rule) name() string {
	switch {
	case r.Name != "":
		return r.Name
	case r.Metric == "":
		return r.Detector
	}
	return r.Metric + "/" + r.Detector
}

// label names the rule in error messages, or is empty when the rule has
// neither a name nor enough to derive one.
func (r Rule) label() string {
	if r.Name == "" && (r.Detector == "" || r.Metric == "" && needsMetric(r.Detector)) {
		return ""
	}
	return r.name()
}

// needsMetric reports whether detector d watches one metric; offline and
// event rules need none.
func needsMetric(d string) bool { return d != DetectorOffline && d != DetectorEvent }

// Validate reports every problem with r, joined with errors.Join. Each
// message starts with the key it is about, e.g. "fault: required", or is
// about the rule as a whole, e.g. "above or below is required".
func (r Rule) Validate() error { return joinProblems(r.problems()) }

func (r Rule) problems() []*keyError {
	var ps []*keyError
	add := func(key, format string, args ...any) {
		ps = append(ps, &keyError{key: key, msg: fmt.Sprintf(format, args...)})
	}
	if r.Name != "" && strings.TrimSpace(r.Name) == "" {
		add("name", "must not be blank")
	}
	if r.Metric == "" && needsMetric(r.Detector) {
		add("metric", "required")
	}
	supported := "supported: " + strings.Join(supportedDetectors, ", ")
	switch {
	case r.Detector == "":
		add("detector", "required (%s)", supported)
	case slices.Contains(supportedDetectors, r.Detector):
	default:
		add("detector", "unknown detector %q (%s)", r.Detector, supported)
	}
	switch {
	case r.Fault == "":
		add("fault", "required")
	case !validFault(r.Fault):
		add("fault", "%q must match [a-z0-9_]+", r.Fault)
	}
	switch {
	case r.Severity == 0:
		add("severity", "required (info, minor, major, critical)")
	case !r.Severity.Valid():
		add("severity", "%v is not one of info, minor, major, critical", r.Severity)
	}
	if keys, ok := detectorKeys[r.Detector]; ok {
		for _, k := range r.setKeys() {
			if slices.Contains(commonKeys, k) || slices.Contains(keys, k) {
				continue
			}
			if r.Detector == DetectorThreshold && (k == "clear_above" || k == "clear_below") {
				continue // thresholdProblems explains these
			}
			add(k, "does not apply to detector %s (its keys: %s)", r.Detector, strings.Join(keys, ", "))
		}
	}
	switch r.Detector {
	case DetectorThreshold:
		ps = append(ps, r.thresholdProblems()...)
	case DetectorRate:
		ps = append(ps, r.rateProblems()...)
	case DetectorFlatline:
		ps = append(ps, r.flatlineProblems()...)
	case DetectorOffline:
		ps = append(ps, r.offlineProblems()...)
	case DetectorAnomaly:
		ps = append(ps, r.anomalyProblems()...)
	case DetectorForecast:
		ps = append(ps, r.forecastProblems()...)
	case DetectorEvent:
		ps = append(ps, r.eventProblems()...)
	case DetectorUsage:
		ps = append(ps, r.usageProblems()...)
	case DetectorContext:
		ps = append(ps, r.contextProblems()...)
	}
	return ps
}

// setKeys returns the keys of r that are set (not zero), by mapstructure tag.
func (r Rule) setKeys() []string {
	var keys []string
	v := reflect.ValueOf(r)
	for i := range v.NumField() {
		if !v.Field(i).IsZero() {
			keys = append(keys, v.Type().Field(i).Tag.Get("mapstructure"))
		}
	}
	return keys
}

// problemList collects validation problems of one rule.
type problemList []*keyError

func (ps *problemList) add(key, format string, args ...any) {
	*ps = append(*ps, &keyError{key: key, msg: fmt.Sprintf(format, args...)})
}

// finite adds a problem when v is set and NaN or infinite.
func (ps *problemList) finite(key string, v *float64) bool {
	if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
		ps.add(key, "must be a finite number, not %v", *v)
		return false
	}
	return true
}

// nonNegative adds a problem when d is negative.
func (ps *problemList) nonNegative(key string, d time.Duration) {
	if d < 0 {
		ps.add(key, "must not be negative")
	}
}

// durations checks for and clear_for.
func (ps *problemList) durations(r Rule) {
	ps.nonNegative("for", r.For)
	if r.ClearFor != nil {
		ps.nonNegative("clear_for", *r.ClearFor)
	}
}

func (r Rule) thresholdProblems() []*keyError {
	var ps problemList
	okAbove, okBelow := ps.finite("above", r.Above), ps.finite("below", r.Below)
	okClearBelow, okClearAbove := ps.finite("clear_below", r.ClearBelow), ps.finite("clear_above", r.ClearAbove)
	switch {
	case r.Above == nil && r.Below == nil:
		ps.add("", "above or below is required")
	case r.Above != nil && r.Below != nil:
		ps.add("", "both above and below set: use two rules")
	case r.Above != nil:
		if r.ClearAbove != nil {
			ps.add("clear_above", "applies only to a below rule (an above rule clears at clear_below)")
		}
		if okAbove && okClearBelow && r.ClearBelow != nil && *r.ClearBelow > *r.Above {
			ps.add("clear_below", "%s must not be above above (%s)", num(*r.ClearBelow), num(*r.Above))
		}
	case r.Below != nil:
		if r.ClearBelow != nil {
			ps.add("clear_below", "applies only to an above rule (a below rule clears at clear_above)")
		}
		if okBelow && okClearAbove && r.ClearAbove != nil && *r.ClearAbove < *r.Below {
			ps.add("clear_above", "%s must not be below below (%s)", num(*r.ClearAbove), num(*r.Below))
		}
	}
	ps.durations(r)
	return ps
}

// Validate reports every problem with p, joined with errors.Join. Rule
// problems carry their key path, e.g. "rules[0].above: ...", and the rule's
// name; two rules with the same name are rejected.
func (p Profile) Validate() error { return joinProblems(p.problems()) }

func (p Profile) problems() []*keyError {
	var ps []*keyError
	if p.OfflineAfter < 0 {
		ps = append(ps, &keyError{key: "offline_after", msg: "must not be negative"})
	}
	seen := make(map[string]int, len(p.Rules))
	for i, r := range p.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		rps := r.problems()
		if r.Detector == DetectorOffline && r.For == 0 && p.OfflineAfter <= 0 {
			rps = append(rps, &keyError{key: "for", msg: "required: how long without a reading means offline (or set the profile's offline_after)"})
		}
		for _, e := range rps {
			e.prefix(at)
			e.rule = r.label()
			ps = append(ps, e)
		}
		if n := r.name(); r.label() != "" {
			if j, dup := seen[n]; dup {
				ps = append(ps, &keyError{key: at + ".name", msg: fmt.Sprintf("%q is already used by rules[%d] (give one of them a distinct name)", n, j)})
			} else {
				seen[n] = i
			}
		}
	}
	return ps
}

// ValidateProfiles validates every profile of the profiles config section
// (model name -> Profile) and joins the problems with errors.Join. Each
// message carries its full key path, ready to print, e.g.
//
//	profiles.heatpump-a2.rules[0].clear_below: 70 must not be above above (65) (rule "supply_temp_c/threshold")
//
// Model names are matched case-insensitively, so two names that differ only
// in case are rejected.
func ValidateProfiles(ps map[string]Profile) error {
	models := make([]string, 0, len(ps))
	for m := range ps {
		models = append(models, m)
	}
	slices.Sort(models)
	var errs []*keyError
	lower := make(map[string]string, len(ps))
	for _, m := range models {
		if m == "" {
			errs = append(errs, &keyError{key: "profiles", msg: "model name must not be empty"})
			continue
		}
		if other, dup := lower[strings.ToLower(m)]; dup {
			errs = append(errs, &keyError{key: "profiles." + m, msg: fmt.Sprintf("same model as profiles.%s (model names are matched case-insensitively)", other)})
		} else {
			lower[strings.ToLower(m)] = m
		}
		for _, e := range ps[m].problems() {
			e.prefix("profiles." + m)
			errs = append(errs, e)
		}
	}
	return joinProblems(errs)
}

// validFault reports whether s matches [a-z0-9_]+.
func validFault(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// num formats a config number the way it was most likely written: 65, 70.5.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// keyError is one validation problem: the key path it is about (empty for
// the rule as a whole), the message, and the rule's name when known.
type keyError struct {
	key  string
	msg  string
	rule string
}

func (e *keyError) Error() string {
	s := e.msg
	if e.key != "" {
		s = e.key + ": " + s
	}
	if e.rule != "" {
		s += fmt.Sprintf(" (rule %q)", e.rule)
	}
	return s
}

// prefix puts path in front of the key: "above" becomes "rules[0].above".
func (e *keyError) prefix(path string) {
	if e.key == "" {
		e.key = path
		return
	}
	e.key = path + "." + e.key
}

func joinProblems(ps []*keyError) error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}
