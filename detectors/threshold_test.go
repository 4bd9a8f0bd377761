package detectors

import (
	"bufio"
	"encoding"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

var update = flag.Bool("update", false, "rewrite testdata/*.findings from the detectors' output (check the result by hand)")

// traceStart is the event time that trace offsets count from.
var traceStart = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// readTrace reads a trace CSV: a header "offset,value", then one reading per
// row at traceStart+offset (a Go duration). The value is a number, true or
// false (a boolean field), or empty (a reading without the metric). Lines
// starting with # are comments.
func readTrace(t *testing.T, path, metric string) []telemetry.Reading {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comment = '#'
	cr.FieldsPerRecord = 2
	header, err := cr.Read()
	require.NoError(t, err)
	require.Equal(t, []string{"offset", "value"}, header)
	var rs []telemetry.Reading
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rs
		}
		require.NoError(t, err)
		line, _ := cr.FieldPos(0)
		off, err := time.ParseDuration(rec[0])
		require.NoError(t, err, "%s:%d", path, line)
		r := telemetry.Reading{
			Device: "hp-0001",
			Model:  "heatpump-a2",
			At:     traceStart.Add(off),
			Fields: []telemetry.Field{{Name: "other_metric", Value: 1}},
		}
		switch v := strings.TrimSpace(rec[1]); v {
		case "":
		case "true", "false":
			r.Fields = append(r.Fields, telemetry.Field{Name: metric, Value: map[string]float64{"true": 1, "false": 0}[v], IsBool: true})
		default:
			x, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "%s:%d", path, line)
			r.Fields = append(r.Fields, telemetry.Field{Name: metric, Value: x})
		}
		rs = append(rs, r)
	}
}

// findingLine renders a finding as a line of a .findings file, times as
// offsets from traceStart:
//
//	raised 10m0s 68 limit=65 since=0s samples=3
func findingLine(f telemetry.Finding) string {
	return fmt.Sprintf("%s %s %s limit=%s since=%s samples=%d",
		f.State, f.At.Sub(traceStart), num(f.Evidence.Value), num(f.Evidence.Limit), f.Evidence.Since.Sub(traceStart), f.Evidence.Samples)
}

func TestThresholdTraces(t *testing.T) {
	above := func(limit float64, edit func(r *Rule)) Rule {
		r := Rule{Metric: "supply_temp_c", Detector: "threshold", Above: f64(limit), Fault: "supply_overheat", Severity: telemetry.SeverityMajor}
		edit(&r)
		return r
	}
	tests := []struct {
		trace string // testdata/<trace>.csv, expected testdata/<trace>.findings
		rule  Rule
	}{
		{"threshold_example", exampleRule(t)},
		{"threshold_raise_after_for", above(65, func(r *Rule) { r.For = 10 * time.Minute })},
		{"threshold_dip_resets", above(65, func(r *Rule) { r.For = 10 * time.Minute })},
		{"threshold_hysteresis", above(65, func(r *Rule) { r.ClearBelow, r.For, r.ClearFor = f64(60), 5*time.Minute, dur(10*time.Minute) })},
		{"threshold_below", Rule{Metric: "supply_temp_c", Detector: "threshold", Below: f64(10), ClearAbove: f64(12),
			For: 5 * time.Minute, ClearFor: dur(0), Fault: "heating_loss", Severity: telemetry.SeverityMajor}},
		{"threshold_for_zero", above(65, func(*Rule) {})},
		{"threshold_out_of_order", above(65, func(r *Rule) { r.ClearBelow, r.For, r.ClearFor = f64(60), 10*time.Minute, dur(0) })},
		{"threshold_duplicate", above(65, func(*Rule) {})},
		{"threshold_missing_metric", above(65, func(r *Rule) { r.ClearBelow, r.For, r.ClearFor = f64(60), 10*time.Minute, dur(0) })},
		{"threshold_boolean", Rule{Metric: "defrost", Detector: "threshold", Above: f64(0.5), For: 2 * time.Hour, ClearFor: dur(0),
			Fault: "defrost_stuck", Severity: telemetry.SeverityMinor}},
	}
	for _, tt := range tests {
		t.Run(tt.trace, func(t *testing.T) {
			th, err := NewThreshold(tt.rule)
			require.NoError(t, err)
			var got []string
			for _, r := range readTrace(t, filepath.Join("testdata", tt.trace+".csv"), tt.rule.Metric) {
				if f, ok := th.Observe(r); ok {
					got = append(got, findingLine(f))
				}
			}
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

func TestThresholdFinding(t *testing.T) {
	th, err := NewThreshold(exampleRule(t))
	require.NoError(t, err)
	var got []telemetry.Finding
	for _, r := range readTrace(t, "testdata/threshold_example.csv", "supply_temp_c") {
		if f, ok := th.Observe(r); ok {
			got = append(got, f)
		}
	}
	base := telemetry.Finding{
		Device:          "hp-0001",
		Model:           "heatpump-a2",
		Fault:           "supply_overheat",
		Rule:            "supply_temp_c/threshold",
		Severity:        telemetry.SeverityMajor,
		CustomerVisible: true,
		Remedy:          "Check the circulation pump and the flow valve.",
	}
	raised, cleared := base, base
	raised.State, raised.At = telemetry.Raised, traceStart.Add(10*time.Minute)
	raised.Evidence = telemetry.Evidence{
		Detector: "threshold", Metric: "supply_temp_c", Value: 68, Limit: 65, Op: "above", For: "10m0s",
		Since: traceStart, Samples: 3, Note: "supply_temp_c was above 65 for 10m0s (last 68)",
	}
	cleared.State, cleared.At = telemetry.Cleared, traceStart.Add(30*time.Minute)
	cleared.Evidence = telemetry.Evidence{
		Detector: "threshold", Metric: "supply_temp_c", Value: 58, Limit: 60, Op: "above", For: "5m0s",
		Since: traceStart.Add(25 * time.Minute), Samples: 2, Note: "supply_temp_c was at or below 60 for 5m0s (last 58)",
	}
	require.Equal(t, []telemetry.Finding{raised, cleared}, got)
}

func TestThresholdNotes(t *testing.T) {
	tests := []struct {
		name  string
		rule  Rule
		trace []float64 // one reading a minute
		want  []string
	}{
		{"above at once", Rule{Above: f64(65)}, []float64{65.5, 65},
			[]string{"supply_temp_c was 65.5, above 65", "supply_temp_c was 65, at or below 65"}},
		{"below over time", Rule{Below: f64(10), ClearAbove: f64(12), For: time.Minute}, []float64{9, 8.5, 12, 13},
			[]string{"supply_temp_c was below 10 for 1m0s (last 8.5)", "supply_temp_c was at or above 12 for 1m0s (last 13)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			r.Metric, r.Detector, r.Fault, r.Severity = "supply_temp_c", "threshold", "f", telemetry.SeverityInfo
			th, err := NewThreshold(r)
			require.NoError(t, err)
			var got []string
			for i, v := range tt.trace {
				rd := telemetry.Reading{Device: "d", At: traceStart.Add(time.Duration(i) * time.Minute),
					Fields: []telemetry.Field{{Name: "supply_temp_c", Value: v}}}
				if f, ok := th.Observe(rd); ok {
					got = append(got, f.Evidence.Note)
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestThresholdIgnoredReadings(t *testing.T) {
	r := Rule{Metric: "m", Detector: "threshold", Above: f64(1), Fault: "f", Severity: telemetry.SeverityInfo}
	reading := func(at time.Time, v float64) telemetry.Reading {
		return telemetry.Reading{Device: "d", At: at, Fields: []telemetry.Field{{Name: "m", Value: v}}}
	}
	tests := []struct {
		name string
		at   time.Time
		v    float64
	}{
		{"NaN", traceStart, math.NaN()},
		{"zero time", time.Time{}, 5},
		{"year 2300", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, err := NewThreshold(r)
			require.NoError(t, err)
			_, ok := th.Observe(reading(tt.at, tt.v))
			require.False(t, ok)
			// The ignored reading did not move the detector's clock.
			_, ok = th.Observe(reading(traceStart.Add(-time.Hour), 5))
			require.True(t, ok)
		})
	}
}

func TestNewThresholdRejects(t *testing.T) {
	r := goodRule()
	r.Fault = ""
	_, err := NewThreshold(r)
	require.ErrorContains(t, err, "fault: required")
}

// exampleRule decodes the example rule in threshold.go's file comment the
// way config does (exact keys by mapstructure tag, durations, TextUnmarshaler),
// so the documented example stays valid.
func exampleRule(t *testing.T) Rule { return fileExampleRule(t, "threshold.go") }

// fileExampleRule decodes the example rule in the file comment of a
// detector's file.
func fileExampleRule(t testing.TB, file string) Rule {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	in := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "// Example rule"):
			in = true
		case in && strings.HasPrefix(line, "//\t"):
			lines = append(lines, strings.TrimPrefix(line, "//\t"))
		case in && len(lines) > 0:
			in = false
		}
	}
	require.NotEmpty(t, lines, "no example rule in %s", file)
	require.True(t, strings.HasPrefix(lines[0], "- "), "example rule is not a list item: %q", lines[0])
	var r Rule
	for i, line := range lines {
		if i == 0 {
			line = "  " + strings.TrimPrefix(line, "- ")
		}
		require.True(t, strings.HasPrefix(line, "  "), "bad indentation: %q", line)
		key, val, ok := strings.Cut(strings.TrimSpace(line), ": ")
		require.True(t, ok, "not key: value: %q", line)
		require.NoError(t, setByTag(&r, key, val))
	}
	require.NoError(t, r.Validate())
	return r
}

// setByTag sets the field of *r tagged mapstructure:"key" from a YAML scalar.
func setByTag(r *Rule, key, val string) error {
	v := reflect.ValueOf(r).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("mapstructure") != key {
			continue
		}
		fv := v.Field(i)
		if u, ok := fv.Addr().Interface().(encoding.TextUnmarshaler); ok {
			return u.UnmarshalText([]byte(val))
		}
		if fv.Kind() == reflect.Pointer {
			fv.Set(reflect.New(fv.Type().Elem()))
			fv = fv.Elem()
		}
		switch {
		case fv.Type() == reflect.TypeFor[time.Duration]():
			d, err := time.ParseDuration(val)
			fv.SetInt(int64(d))
			return err
		case fv.Kind() == reflect.String:
			fv.SetString(val)
		case fv.Kind() == reflect.Bool:
			b, err := strconv.ParseBool(val)
			fv.SetBool(b)
			return err
		case fv.Kind() == reflect.Float64:
			x, err := strconv.ParseFloat(val, 64)
			fv.SetFloat(x)
			return err
		case fv.Kind() == reflect.Int:
			x, err := strconv.Atoi(val)
			fv.SetInt(int64(x))
			return err
		case fv.Type() == reflect.TypeFor[[]string]():
			inner, ok := strings.CutPrefix(val, "[")
			inner, ok2 := strings.CutSuffix(inner, "]")
			if !ok || !ok2 {
				return fmt.Errorf("%s: want a [a, b] list, got %q", key, val)
			}
			var list []string
			for item := range strings.SplitSeq(inner, ",") {
				list = append(list, strings.TrimSpace(item))
			}
			fv.Set(reflect.ValueOf(list))
		default:
			return fmt.Errorf("%s: unhandled type %s", key, fv.Type())
		}
		return nil
	}
	return fmt.Errorf("unknown key %q", key)
}

// TestDetectorDocKeys keeps each detector file's list of config keys
// equal to the keys the detector accepts (detectorKeys), and every Rule key
// accepted by some detector.
func TestDetectorDocKeys(t *testing.T) {
	rt := reflect.TypeFor[Rule]()
	used := map[string]bool{}
	for _, d := range supportedDetectors {
		t.Run(d, func(t *testing.T) {
			b, err := os.ReadFile(d + ".go")
			require.NoError(t, err)
			header, _, _ := strings.Cut(string(b), "\npackage ")
			want := append(slices.Clone(commonKeys), detectorKeys[d]...)
			if d == DetectorEvent {
				want = slices.DeleteFunc(want, func(k string) bool { return k == "metric" })
			}
			for i := range rt.NumField() {
				key := rt.Field(i).Tag.Get("mapstructure")
				documented := strings.Contains(header, "//\t"+key+" ")
				require.Equal(t, slices.Contains(want, key), documented, "%s.go documents key %q: %v, detector accepts it: %v", d, key, documented, !documented)
				if documented {
					used[key] = true
				}
			}
		})
	}
	for i := range rt.NumField() {
		require.True(t, used[rt.Field(i).Tag.Get("mapstructure")], "no detector uses key %q", rt.Field(i).Tag.Get("mapstructure"))
	}
}

// TestDetectorExamples decodes each detector file's example rule and
// checks it is valid for that detector.
func TestDetectorExamples(t *testing.T) {
	for _, d := range supportedDetectors {
		t.Run(d, func(t *testing.T) {
			r := fileExampleRule(t, d+".go")
			require.Equal(t, d, r.Detector)
		})
	}
}
