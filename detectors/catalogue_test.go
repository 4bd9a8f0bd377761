package detectors

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// A traceStep is one row of a catalogue trace: a reading (value a number,
// NaN, or empty for a reading without the metric), an event (value the
// code), a status (online or offline) or a tick of the live clock.
type traceStep struct {
	at    time.Time
	kind  string
	value string
	line  int
}

// readSteps reads a catalogue trace CSV: a header "offset,kind,value",
// then one step per row at traceStart+offset. Lines starting with # are
// comments.
func readSteps(t *testing.T, path string) []traceStep {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comment = '#'
	cr.FieldsPerRecord = 3
	header, err := cr.Read()
	require.NoError(t, err)
	require.Equal(t, []string{"offset", "kind", "value"}, header)
	var steps []traceStep
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return steps
		}
		require.NoError(t, err)
		line, _ := cr.FieldPos(0)
		off, err := time.ParseDuration(rec[0])
		require.NoError(t, err, "%s:%d", path, line)
		steps = append(steps, traceStep{at: traceStart.Add(off), kind: rec[1], value: strings.TrimSpace(rec[2]), line: line})
	}
}

// runSteps feeds a trace to a one-rule Engine for model heatpump-a2 and
// returns the findings, each rendered by catalogueLine.
func runSteps(t *testing.T, p Profile, steps []traceStep, metric string) []string {
	t.Helper()
	e, err := NewEngine(map[string]Profile{"heatpump-a2": p})
	require.NoError(t, err)
	var got []string
	for _, s := range steps {
		var fs []telemetry.Finding
		switch s.kind {
		case "reading":
			r := telemetry.Reading{Device: "hp-0001", Model: "heatpump-a2", At: s.at,
				Fields: []telemetry.Field{{Name: "other_metric", Value: 1}}}
			if s.value != "" {
				v, err := strconv.ParseFloat(s.value, 64)
				require.NoError(t, err, "line %d", s.line)
				r.Fields = append(r.Fields, telemetry.Field{Name: metric, Value: v})
			}
			fs = e.Observe(r)
		case "event":
			fs = e.ObserveEvent(telemetry.DeviceEvent{Device: "hp-0001", At: s.at, Code: s.value})
		case "status":
			require.Contains(t, []string{"online", "offline"}, s.value, "line %d", s.line)
			fs = e.ObserveStatus(telemetry.StatusChange{Device: "hp-0001", At: s.at, Online: s.value == "online"})
		case "tick":
			fs = e.Tick(s.at)
		default:
			t.Fatalf("line %d: unknown kind %q", s.line, s.kind)
		}
		for _, f := range fs {
			require.Equal(t, telemetry.DeviceID("hp-0001"), f.Device)
			require.Equal(t, "heatpump-a2", f.Model)
			require.NotEmpty(t, f.Evidence.Note)
			got = append(got, catalogueLine(f))
		}
	}
	return got
}

// catalogueLine renders a finding as a line of a .findings file, times as
// offsets from traceStart, with the evidence the detector sets:
//
//	raised 30m0s value=-0.3 limit=-0.2 since=30m0s samples=1
func catalogueLine(f telemetry.Finding) string {
	ev := f.Evidence
	s := fmt.Sprintf("%s %s value=%s limit=%s", f.State, f.At.Sub(traceStart), g4(ev.Value), num(ev.Limit))
	if !ev.Since.IsZero() {
		s += fmt.Sprintf(" since=%s samples=%d", ev.Since.Sub(traceStart), ev.Samples)
	}
	if ev.Expected != 0 {
		s += " expected=" + g4(ev.Expected)
	}
	if ev.Score != 0 {
		s += " score=" + g4(ev.Score)
	}
	if !ev.CrossAt.IsZero() {
		s += fmt.Sprintf(" cross_at=%s confidence=%.3f", ev.CrossAt.Sub(traceStart).Round(time.Minute), ev.Confidence)
	}
	if ev.Code != "" {
		s += " code=" + ev.Code
	}
	return s
}

func g4(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// contextRecutRule is the rule of testdata/context_recut.csv.
func contextRecutRule(recut *float64) Rule {
	return Rule{Metric: "m", Detector: DetectorContext, Bins: 3, Depth: 3, Rest: intp(100), Warmup: 100,
		Margin: f64(0.15), Recut: recut, Fault: "m_context", Severity: telemetry.SeverityMinor}
}

func TestCatalogueTraces(t *testing.T) {
	tests := []struct {
		trace   string // testdata/<trace>.csv, expected testdata/<trace>.findings
		profile Profile
	}{
		{"rate_example", Profile{Rules: []Rule{fileExampleRule(t, "rate.go")}}},
		{"rate_gap", Profile{Rules: []Rule{fileExampleRule(t, "rate.go")}}},
		{"flatline_example", Profile{Rules: []Rule{fileExampleRule(t, "flatline.go")}}},
		{"flatline_short", Profile{Rules: []Rule{{Metric: "room_temp_c", Detector: "flatline", Window: 6 * time.Hour,
			Fault: "sensor_stuck", Severity: telemetry.SeverityMinor}}}},
		{"offline_example", Profile{Rules: []Rule{fileExampleRule(t, "offline.go")}}},
		// The same trace with the profile's offline_after and no offline rule.
		{"offline_example", Profile{OfflineAfter: 30 * time.Minute}},
		{"event_example", Profile{Rules: []Rule{fileExampleRule(t, "event.go")}}},
		{"anomaly_daily", Profile{Rules: []Rule{fileExampleRule(t, "anomaly.go")}}},
		// Without season the baseline's spread absorbs the daily swing: no
		// alarm every evening, but the morning fault is missed too.
		{"anomaly_daily_noseason", Profile{Rules: []Rule{{Metric: "compressor_amps", Detector: "anomaly", K: f64(5), ClearK: f64(2),
			HalfLife: 14, Warmup: 7, For: 15 * time.Minute, ClearFor: dur(30 * time.Minute), Fault: "compressor_anomaly", Severity: telemetry.SeverityMinor}}}},
		{"anomaly_likelihood", Profile{Rules: []Rule{{Metric: "m", Detector: "anomaly", K: f64(4.5), HalfLife: 30, Warmup: 60,
			LikelihoodHalfLife: 300, Fault: "m_anomaly", Severity: telemetry.SeverityMinor}}}},
		{"anomaly_likelihood_plain", Profile{Rules: []Rule{{Metric: "m", Detector: "anomaly", K: f64(5), HalfLife: 30, Warmup: 60,
			Fault: "m_anomaly", Severity: telemetry.SeverityMinor}}}},
		{"anomaly_spike", Profile{Rules: []Rule{{Metric: "compressor_amps", Detector: "anomaly", K: f64(5), HalfLife: 10, Warmup: 10,
			Fault: "compressor_anomaly", Severity: telemetry.SeverityMinor}}}},
		{"forecast_example", Profile{Rules: []Rule{fileExampleRule(t, "forecast.go")}}},
		{"forecast_gap", Profile{Rules: []Rule{fileExampleRule(t, "forecast.go")}}},
		{"usage_example", Profile{Rules: []Rule{fileExampleRule(t, "usage.go")}}},
		{"context_example", Profile{Rules: []Rule{fileExampleRule(t, "context.go")}}},
		{"context_recut", Profile{Rules: []Rule{contextRecutRule(f64(1))}}},
		{"context_recut_plain", Profile{Rules: []Rule{contextRecutRule(nil)}}},
	}
	for _, tt := range tests {
		t.Run(tt.trace, func(t *testing.T) {
			metric := "m"
			if len(tt.profile.Rules) > 0 && tt.profile.Rules[0].Metric != "" {
				metric = tt.profile.Rules[0].Metric
			}
			csvName := strings.TrimSuffix(strings.TrimSuffix(tt.trace, "_noseason"), "_plain")
			got := runSteps(t, tt.profile, readSteps(t, filepath.Join("testdata", csvName+".csv")), metric)
			path := filepath.Join("testdata", tt.trace+".findings")
			if *update {
				var b strings.Builder
				for _, line := range got {
					b.WriteString(line + "\n")
				}
				require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
			}
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			var want []string
			for line := range strings.Lines(string(b)) {
				want = append(want, strings.TrimSuffix(line, "\n"))
			}
			require.Equal(t, want, got)
		})
	}
}

func TestCatalogueValidate(t *testing.T) {
	base := func(d string, edit func(r *Rule)) Rule {
		r := Rule{Metric: "m", Detector: d, Fault: "f", Severity: telemetry.SeverityMinor}
		edit(&r)
		return r
	}
	tests := []struct {
		name  string
		rule  Rule
		wants []string // message fragments, one per line; none means valid
	}{
		{"rate ok", base("rate", func(r *Rule) { r.Below, r.Per, r.Window = f64(-1), time.Minute, 10*time.Minute }), nil},
		{"rate negative per", base("rate", func(r *Rule) { r.Above, r.Per = f64(1), -time.Minute }), []string{"per: must not be negative"}},
		{"rate no limit", base("rate", func(*Rule) {}), []string{"above or below is required"}},
		{"flatline no window", base("flatline", func(*Rule) {}), []string{"window: required: a positive duration"}},
		{"flatline negative tolerance", base("flatline", func(r *Rule) { r.Window, r.Tolerance = time.Hour, f64(-1) }), []string{"tolerance: must not be negative"}},
		{"flatline with above", base("flatline", func(r *Rule) { r.Window, r.Above = time.Hour, f64(1) }),
			[]string{"above: does not apply to detector flatline (its keys: window, tolerance)"}},
		{"offline without metric", base("offline", func(r *Rule) { r.Metric, r.For = "", time.Minute }), nil},
		{"event ok", base("event", func(r *Rule) { r.Metric, r.Codes, r.ClearCodes = "", []string{"E42"}, []string{"E00"} }), nil},
		{"event no codes", base("event", func(r *Rule) { r.Metric = "" }), []string{"codes: required"}},
		{"event bad code and overlap", base("event", func(r *Rule) { r.Codes, r.ClearCodes = []string{"E 1", "E2"}, []string{"E2"} }),
			[]string{`codes: "E 1" is not an event code`, `clear_codes: "E2" is also in codes`}},
		{"anomaly ok", base("anomaly", func(r *Rule) { r.K, r.Season, r.SeasonBuckets = f64(4), 24*time.Hour, 96 }), nil},
		{"anomaly bad k", base("anomaly", func(r *Rule) { r.K = f64(0) }), []string{"k: must be positive"}},
		{"anomaly clear_k above k", base("anomaly", func(r *Rule) { r.ClearK = f64(5) }), []string{"clear_k: 5 must be between 0 and k (4)"}},
		{"anomaly buckets without season", base("anomaly", func(r *Rule) { r.SeasonBuckets = 24 }), []string{"season_buckets: needs season"}},
		{"forecast missing keys", base("forecast", func(*Rule) {}),
			[]string{"limit: required", "window: required", "horizon: required"}},
		{"forecast bad direction and confidence", base("forecast", func(r *Rule) {
			r.Limit, r.Window, r.Horizon, r.Direction, r.MinConfidence = f64(1), time.Hour, time.Hour, "up", f64(2)
		}), []string{`direction: "up" is not rising or falling`, "min_confidence: 2 must be between 0 and 1"}},
		{"forecast clear_horizon too short", base("forecast", func(r *Rule) {
			r.Limit, r.Window, r.Horizon, r.ClearHorizon = f64(1), time.Hour, 2*time.Hour, time.Hour
		}), []string{"clear_horizon: 1h0m0s must not be shorter than horizon (2h0m0s)"}},
		{"usage ok without limit", base("usage", func(r *Rule) { r.Window, r.Horizon = time.Hour, time.Hour }), nil},
		{"usage with codes", base("usage", func(r *Rule) { r.Window, r.Horizon, r.Codes = time.Hour, time.Hour, []string{"E1"} }),
			[]string{"codes: does not apply to detector usage"}},
		{"context defaults", base("context", func(*Rule) {}), nil},
		{"context ok", base("context", func(r *Rule) {
			r.Bins, r.Depth, r.Novelty, r.Rest, r.Memory, r.Warmup, r.Margin, r.Recut = 8, 4, f64(0.75), intp(0), 64, 100, f64(0.15), f64(1)
		}), nil},
		{"context bad bins and depth", base("context", func(r *Rule) { r.Bins, r.Depth = -1, 17 }),
			[]string{"bins: must be between 1 and 4096", "depth: must be between 1 and 16"}},
		{"context novelty zero", base("context", func(r *Rule) { r.Novelty = f64(0) }), []string{"novelty: 0 must be in (0, 1]"}},
		{"context novelty above 1", base("context", func(r *Rule) { r.Novelty = f64(1.5) }), []string{"novelty: 1.5 must be in (0, 1]"}},
		{"context novelty NaN", base("context", func(r *Rule) { r.Novelty = f64(math.NaN()) }), []string{"novelty: must be a finite number, not NaN"}},
		{"context negative rest", base("context", func(r *Rule) { r.Rest = intp(-1) }), []string{"rest: must be between 0 and 1000000 readings"}},
		{"context memory too large", base("context", func(r *Rule) { r.Memory = 1<<20 + 1 }), []string{"memory: must be between 2 and 1048576 contexts"}},
		{"context negative margin", base("context", func(r *Rule) { r.Margin = f64(-0.1) }), []string{"margin: -0.1 must be in [0, 1]"}},
		{"context margin above 1", base("context", func(r *Rule) { r.Margin = f64(2) }), []string{"margin: 2 must be in [0, 1]"}},
		{"context margin infinite", base("context", func(r *Rule) { r.Margin = f64(math.Inf(1)) }), []string{"margin: must be a finite number, not +Inf"}},
		{"context negative recut", base("context", func(r *Rule) { r.Recut = f64(-1) }), []string{"recut: -1 must be between 0 (never) and 1000 range widths"}},
		{"context recut NaN", base("context", func(r *Rule) { r.Recut = f64(math.NaN()) }), []string{"recut: must be a finite number, not NaN"}},
		{"context negative warmup", base("context", func(r *Rule) { r.Warmup = -5 }), []string{"warmup: must be between 0 and 1000000 readings"}},
		{"context with k", base("context", func(r *Rule) { r.K = f64(3) }),
			[]string{"k: does not apply to detector context (its keys: bins, depth, novelty, rest, memory, warmup, margin, recut)"}},
		{"anomaly with bins", base("anomaly", func(r *Rule) { r.Bins = 4 }), []string{"bins: does not apply to detector anomaly"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			if len(tt.wants) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wants {
				require.ErrorContains(t, err, w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tt.wants), "one line per problem:\n%s", err)
		})
	}
}

func TestProfileOfflineNeedsDuration(t *testing.T) {
	p := Profile{Rules: []Rule{{Detector: "offline", Fault: "offline", Severity: telemetry.SeverityMinor}}}
	require.EqualError(t, ValidateProfiles(map[string]Profile{"hp": p}),
		`profiles.hp.rules[0].for: required: how long without a reading means offline (or set the profile's offline_after) (rule "offline")`)
	p.OfflineAfter = time.Minute
	require.NoError(t, ValidateProfiles(map[string]Profile{"hp": p}))
}

func TestEngineEventsStatusTickEvict(t *testing.T) {
	e, err := NewEngine(map[string]Profile{"hp": {OfflineAfter: 10 * time.Minute, Rules: []Rule{
		{Detector: "event", Codes: []string{"E1"}, Fault: "fault_e1", Severity: telemetry.SeverityMajor},
	}}})
	require.NoError(t, err)
	// Unknown devices: nothing, and no state is created.
	require.Nil(t, e.ObserveEvent(telemetry.DeviceEvent{Device: "a", At: traceStart, Code: "E1"}))
	require.Nil(t, e.ObserveStatus(telemetry.StatusChange{Device: "a", At: traceStart}))
	require.Equal(t, 0, e.Devices())
	for _, d := range []telemetry.DeviceID{"a", "b"} {
		require.Empty(t, e.Observe(telemetry.Reading{Device: d, Model: "hp", At: traceStart, Fields: []telemetry.Field{{Name: "x", Value: 1}}}))
	}
	fs := e.ObserveEvent(telemetry.DeviceEvent{Device: "a", At: traceStart.Add(time.Minute), Code: "E1"})
	require.Len(t, fs, 1)
	require.Equal(t, "hp", fs[0].Model)
	require.Equal(t, "fault_e1", fs[0].Fault)
	// b stays silent; a's event is activity but not a reading, so both go offline at 10m.
	fs = e.Tick(traceStart.Add(10 * time.Minute))
	require.Len(t, fs, 2)
	for _, f := range fs {
		require.Equal(t, "offline", f.Fault)
		require.Equal(t, traceStart.Add(10*time.Minute), f.At)
	}
	// a was active at 1m, b at 0m: an idle time of 30m at 30m30s evicts b only.
	require.Equal(t, 1, e.Evict(traceStart.Add(30*time.Minute+30*time.Second), 30*time.Minute))
	require.Equal(t, 1, e.Devices())
	require.Nil(t, e.ObserveEvent(telemetry.DeviceEvent{Device: "b", At: traceStart.Add(time.Hour), Code: "E1"}))
}

func TestNewDetectorsReject(t *testing.T) {
	th := Rule{Metric: "m", Detector: "threshold", Above: f64(1), Fault: "f", Severity: telemetry.SeverityInfo}
	for name, fn := range map[string]func(Rule) error{
		"rate":     func(r Rule) error { _, err := NewRate(r); return err },
		"flatline": func(r Rule) error { _, err := NewFlatline(r); return err },
		"offline":  func(r Rule) error { _, err := NewOffline(r); return err },
		"anomaly":  func(r Rule) error { _, err := NewAnomaly(r); return err },
		"forecast": func(r Rule) error { _, err := NewForecast(r); return err },
		"event":    func(r Rule) error { _, err := NewEvent(r); return err },
		"usage":    func(r Rule) error { _, err := NewUsage(r); return err },
		"context":  func(r Rule) error { _, err := NewContext(r); return err },
	} {
		t.Run(name, func(t *testing.T) {
			require.EqualError(t, fn(th), fmt.Sprintf("detector: %q is not %s", "threshold", name))
		})
	}
}
