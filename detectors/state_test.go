package detectors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// allDetectorsProfile has the example rule of every detector file.
func allDetectorsProfile(t *testing.T) Profile {
	p := Profile{OfflineAfter: 10 * time.Minute}
	for _, d := range supportedDetectors {
		p.Rules = append(p.Rules, fileExampleRule(t, d+".go"))
	}
	return p
}

// fleetStep is one input of a synthetic fleet: a reading or an event.
type fleetStep struct {
	r  *telemetry.Reading
	ev *telemetry.DeviceEvent
}

// fleet returns a deterministic stream for n devices over steps minutes:
// random walks with spikes, stuck sensors, silences and fault codes, so
// every detector has something to decide.
func fleet(n, steps int) []fleetStep {
	rng := rand.New(rand.NewPCG(9, 9))
	metrics := []string{"supply_temp_c", "pressure_bar", "room_temp_c", "compressor_amps", "filter_dp_pa", "salt_remaining_pct"}
	level := make([][]float64, n)
	for d := range level {
		level[d] = []float64{55, 1.5, 21, 8, 120, 100}
	}
	var out []fleetStep
	for s := range steps {
		at := traceStart.Add(time.Duration(s) * 5 * time.Minute)
		for d := range n {
			id := telemetry.DeviceID(fmt.Sprintf("dev-%d", d))
			if (s/40+d)%7 == 3 { // silent for a while
				continue
			}
			var fs []telemetry.Field
			for m, name := range metrics {
				switch {
				case m == 4:
					level[d][m] += 0.3 + rng.NormFloat64()
				case m == 5:
					level[d][m] -= 0.05
					if level[d][m] < 3 {
						level[d][m] = 100
					}
				case m == 0 && d == 0: // overheats slowly
					level[d][m] += 0.03 + rng.NormFloat64()*0.2
				case m == 2 && (s/100)%2 == 1: // stuck
				default:
					level[d][m] += rng.NormFloat64() * 0.2 * (1 + float64(m%2))
				}
				v := level[d][m]
				if rng.IntN(200) == 0 && m != 5 { // spikes, but not in the salt level (a refill)
					v += 30
				}
				fs = append(fs, telemetry.Field{Name: name, Value: v})
			}
			out = append(out, fleetStep{r: &telemetry.Reading{Device: id, Model: "heatpump-a2", At: at, Fields: fs}})
			if rng.IntN(50) == 0 {
				code := []string{"E42", "E43", "E00", "E99"}[rng.IntN(4)]
				out = append(out, fleetStep{ev: &telemetry.DeviceEvent{Device: id, At: at.Add(time.Second), Code: code}})
			}
		}
	}
	return out
}

func feed(e *Engine, s fleetStep) []telemetry.Finding {
	if s.r != nil {
		return e.Observe(*s.r)
	}
	return e.ObserveEvent(*s.ev)
}

func renderAll(fs []telemetry.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s %s %s", f.At.Format(time.RFC3339), f.Device, f.Rule, f.State, f.Evidence.Note))
	}
	return out
}

// TestSnapshotRestore: an engine restored from a snapshot taken mid-stream
// decides exactly what the original decides from then on.
func TestSnapshotRestore(t *testing.T) {
	profiles := map[string]Profile{"heatpump-a2": allDetectorsProfile(t)}
	steps := fleet(6, 1200)
	a, err := NewEngine(profiles)
	require.NoError(t, err)
	half := len(steps) / 2
	var before []telemetry.Finding
	for _, s := range steps[:half] {
		before = append(before, feed(a, s)...)
	}
	var snap bytes.Buffer
	require.NoError(t, a.Snapshot(&snap))
	b, err := NewEngine(profiles)
	require.NoError(t, err)
	n, err := b.Restore(bytes.NewReader(snap.Bytes()), nil)
	require.NoError(t, err)
	require.Equal(t, a.Devices(), n)

	var afterA, afterB []telemetry.Finding
	for _, s := range steps[half:] {
		afterA = append(afterA, feed(a, s)...)
		afterB = append(afterB, feed(b, s)...)
	}
	require.Equal(t, renderAll(afterA), renderAll(afterB))
	// Tick visits devices in no particular order.
	end := traceStart.Add(1300 * 5 * time.Minute)
	require.ElementsMatch(t, renderAll(a.Tick(end)), renderAll(b.Tick(end)))

	// The stream exercises every detector, and most after the snapshot.
	seen, seenAfter := map[string]bool{}, map[string]bool{}
	for _, f := range before {
		seen[f.Evidence.Detector] = true
	}
	for _, f := range afterA {
		seen[f.Evidence.Detector], seenAfter[f.Evidence.Detector] = true, true
	}
	for _, d := range supportedDetectors {
		require.True(t, seen[d], "no %s finding", d)
	}
	require.GreaterOrEqual(t, len(seenAfter), 6, "detectors deciding after the snapshot: %v", seenAfter)
}

func TestRestoreRejects(t *testing.T) {
	e, err := NewEngine(map[string]Profile{"hp": {OfflineAfter: time.Minute}})
	require.NoError(t, err)
	for _, tt := range []struct{ in, want string }{
		{"", "not a detectors snapshot"},
		{`{"other":1}` + "\n", "not a detectors snapshot"},
		{snapshotVersion + "\n{bad json", "read snapshot device 1"},
		{snapshotVersion + "\n" + `{"device":"a","model":"hp","rules":[{"key":"` + strings.ReplaceAll(ruleKey(implicitOffline(), time.Minute), `"`, `\"`) + `","state":[1]}]}`, "has 1 state values, want 2"},
	} {
		_, err := e.Restore(strings.NewReader(tt.in), nil)
		require.ErrorContains(t, err, tt.want)
	}
	// A model without a profile is skipped; an unknown rule key starts afresh.
	n, err := e.Restore(strings.NewReader(snapshotVersion+"\n"+
		`{"device":"a","model":"gone","rules":[]}`+"\n"+`{"device":"b","model":"HP","rules":[{"key":"old","state":[]}]}`+"\n"+
		`{"device":"c","model":"HP","rules":[]}`+"\n"), func(id telemetry.DeviceID) bool { return id != "c" })
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, e.Devices())
}

// TestReload: unchanged rules keep their state, changed ones start afresh.
func TestReload(t *testing.T) {
	hot := Rule{Name: "hot", Metric: "t", Detector: "threshold", Above: f64(65), For: 10 * time.Minute, Fault: "hot", Severity: telemetry.SeverityMajor}
	cold := Rule{Name: "cold", Metric: "t", Detector: "threshold", Below: f64(80), For: 10 * time.Minute, Fault: "cold", Severity: telemetry.SeverityMajor}
	e, err := NewEngine(map[string]Profile{"hp": {Rules: []Rule{hot, cold}}})
	require.NoError(t, err)
	obs := func(min int, v float64) []string {
		var out []string
		for _, f := range e.Observe(telemetry.Reading{Device: "a", Model: "hp", At: traceStart.Add(time.Duration(min) * time.Minute),
			Fields: []telemetry.Field{{Name: "t", Value: v}}}) {
			out = append(out, f.Rule+" "+f.State.String())
		}
		return out
	}
	require.Empty(t, obs(0, 70))
	require.Empty(t, obs(5, 70))
	// cold changes (its limit), hot does not; a new rule appears.
	cold2 := cold
	cold2.Below = f64(75)
	warm := Rule{Name: "warm", Metric: "t", Detector: "threshold", Above: f64(60), Fault: "warm", Severity: telemetry.SeverityMinor}
	require.NoError(t, e.Reload(map[string]Profile{"hp": {Rules: []Rule{warm, hot, cold2}}}))
	// hot kept its run since 0m: raised at 10m. cold2 restarted at 10m. warm is new.
	require.Equal(t, []string{"warm raised", "hot raised"}, obs(10, 70))
	require.Equal(t, []string{"cold raised"}, obs(20, 70))
	// A bad reload changes nothing.
	require.Error(t, e.Reload(map[string]Profile{"hp": {Rules: []Rule{{Detector: "nope"}}}}))
	require.Empty(t, obs(30, 90))
	require.Equal(t, []string{"cold cleared"}, obs(40, 90))
	// A model dropped from the profiles drops its devices.
	require.NoError(t, e.Reload(map[string]Profile{"other": {}}))
	require.Equal(t, 0, e.Devices())
}

// FuzzRestore: a damaged snapshot never crashes Restore, and the engine
// keeps working after it.
func FuzzRestore(f *testing.F) {
	p := Profile{OfflineAfter: time.Minute, Rules: []Rule{
		{Name: "a", Metric: "m", Detector: "anomaly", Season: time.Hour, SeasonBuckets: 4, Fault: "f", Severity: telemetry.SeverityMinor},
		{Name: "u", Metric: "m", Detector: "usage", Window: time.Hour, Horizon: time.Hour, Fault: "g", Severity: telemetry.SeverityMinor},
		{Name: "l", Metric: "m", Detector: "flatline", Window: time.Hour, Fault: "h", Severity: telemetry.SeverityMinor},
	}}
	profiles := map[string]Profile{"hp": p}
	seed, err := NewEngine(profiles)
	require.NoError(f, err)
	for i := range 50 {
		seed.Observe(telemetry.Reading{Device: "d", Model: "hp", At: traceStart.Add(time.Duration(i) * time.Minute),
			Fields: []telemetry.Field{{Name: "m", Value: float64(i % 7)}}})
	}
	var b bytes.Buffer
	require.NoError(f, seed.Snapshot(&b))
	f.Add(b.Bytes())
	f.Add([]byte(snapshotVersion + "\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			e, err := NewEngine(profiles)
			if err != nil {
				panic(err)
			}
			_, _ = e.Restore(bytes.NewReader(data), nil)
			for i := range 3 {
				e.Observe(telemetry.Reading{Device: "d", Model: "hp", At: traceStart.Add(time.Duration(100+i) * time.Minute),
					Fields: []telemetry.Field{{Name: "m", Value: 1}}})
			}
			e.Tick(traceStart.Add(200 * time.Minute))
			var out bytes.Buffer
			_ = e.Snapshot(&out)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("hang on %q", data)
		}
	})
}
