package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// engineProfiles has one model with two rules that decide at once: hot
// (supply_temp_c above 65) and cold (supply_temp_c below 5).
func engineProfiles() map[string]Profile {
	return map[string]Profile{
		"heatpump-a2": {Rules: []Rule{
			{Name: "hot", Metric: "supply_temp_c", Detector: "threshold", Above: f64(65), Fault: "supply_overheat", Severity: telemetry.SeverityMajor},
			{Name: "cold", Metric: "supply_temp_c", Detector: "threshold", Below: f64(5), Fault: "heating_loss", Severity: telemetry.SeverityMajor},
		}},
		"boiler-x": {Rules: []Rule{
			{Metric: "supply_temp_c", Detector: "threshold", Above: f64(90), Fault: "boiler_overheat", Severity: telemetry.SeverityCritical},
		}},
	}
}

// step is one reading fed to the Engine and the findings it must give, as
// "device model fault state".
type step struct {
	device telemetry.DeviceID
	model  string
	value  float64
	want   []string
}

func TestEngineObserve(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		devices int // Devices() after the last step
	}{
		{name: "devices of one model keep separate state", steps: []step{
			{"a", "heatpump-a2", 70, []string{"a heatpump-a2 supply_overheat raised"}},
			{"b", "heatpump-a2", 50, nil},
			{"b", "heatpump-a2", 70, []string{"b heatpump-a2 supply_overheat raised"}},
			{"a", "heatpump-a2", 50, []string{"a heatpump-a2 supply_overheat cleared"}},
			{"b", "heatpump-a2", 71, nil},
		}, devices: 2},
		{name: "unknown model gives nothing", steps: []step{
			{"a", "fridge-9", 70, nil},
			{"a", "", 70, nil},
		}, devices: 0},
		{name: "empty model of an unseen device gives nothing", steps: []step{
			{"a", "", 70, nil},
		}, devices: 0},
		{name: "model remembered when a reading omits it", steps: []step{
			{"a", "heatpump-a2", 50, nil},
			{"a", "", 70, []string{"a heatpump-a2 supply_overheat raised"}},
		}, devices: 1},
		{name: "model matched case-insensitively", steps: []step{
			{"a", "HeatPump-A2", 70, []string{"a HeatPump-A2 supply_overheat raised"}},
			{"a", "heatpump-a2", 50, []string{"a heatpump-a2 supply_overheat cleared"}},
		}, devices: 1},
		{name: "findings in rule order", steps: []step{
			{"a", "heatpump-a2", 70, []string{"a heatpump-a2 supply_overheat raised"}},
			// One reading clears hot (rule 0) and raises cold (rule 1).
			{"a", "heatpump-a2", 0, []string{"a heatpump-a2 supply_overheat cleared", "a heatpump-a2 heating_loss raised"}},
		}, devices: 1},
		{name: "another model starts afresh", steps: []step{
			{"a", "heatpump-a2", 70, []string{"a heatpump-a2 supply_overheat raised"}},
			{"a", "boiler-x", 95, []string{"a boiler-x boiler_overheat raised"}},
			{"a", "heatpump-a2", 70, []string{"a heatpump-a2 supply_overheat raised"}},
		}, devices: 1},
		{name: "a model without a profile drops the state", steps: []step{
			{"a", "heatpump-a2", 70, []string{"a heatpump-a2 supply_overheat raised"}},
			{"b", "heatpump-a2", 70, []string{"b heatpump-a2 supply_overheat raised"}},
			{"a", "fridge-9", 50, nil},
			{"a", "", 50, nil},
			{"a", "heatpump-a2", 70, []string{"a heatpump-a2 supply_overheat raised"}},
			{"a", "fridge-9", 50, nil},
		}, devices: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEngine(engineProfiles())
			require.NoError(t, err)
			for i, s := range tt.steps {
				r := telemetry.Reading{Device: s.device, Model: s.model, At: traceStart.Add(time.Duration(i) * time.Minute),
					Fields: []telemetry.Field{{Name: "supply_temp_c", Value: s.value}}}
				var got []string
				for _, f := range e.Observe(r) {
					require.Equal(t, s.device, f.Device)
					require.Equal(t, r.At, f.At)
					got = append(got, fmt.Sprintf("%s %s %s %s", f.Device, f.Model, f.Fault, f.State))
				}
				require.Equal(t, s.want, got, "step %d", i)
			}
			require.Equal(t, tt.devices, e.Devices())
		})
	}
}

func TestNewEngineValidates(t *testing.T) {
	ps := engineProfiles()
	ps["boiler-x"].Rules[0].Fault = ""
	e, err := NewEngine(ps)
	require.Nil(t, e)
	require.EqualError(t, err, `profiles.boiler-x.rules[0].fault: required (rule "supply_temp_c/threshold")`)
}

func TestNewEngineProfileKeyCase(t *testing.T) {
	e, err := NewEngine(map[string]Profile{"HeatPump-A2": engineProfiles()["heatpump-a2"]})
	require.NoError(t, err)
	fs := e.Observe(telemetry.Reading{Device: "a", Model: "heatpump-a2", At: traceStart,
		Fields: []telemetry.Field{{Name: "supply_temp_c", Value: 70}}})
	require.Len(t, fs, 1)
}

func ExampleEngine() {
	above := 65.0
	e, err := NewEngine(map[string]Profile{
		"heatpump-a2": {Rules: []Rule{{
			Metric:   "supply_temp_c",
			Detector: "threshold",
			Above:    &above,
			For:      10 * time.Minute,
			Fault:    "supply_overheat",
			Severity: telemetry.SeverityMajor,
		}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
	for i, v := range []float64{60, 66, 70, 71.2, 64, 62, 60} {
		r := telemetry.Reading{
			Device: "hp-0001",
			Model:  "heatpump-a2",
			At:     start.Add(time.Duration(i) * 5 * time.Minute),
			Fields: []telemetry.Field{{Name: "supply_temp_c", Value: v}},
		}
		for _, f := range e.Observe(r) {
			fmt.Println(f.At.Format(time.Kitchen), f.Key(), f.State, f.Evidence.Note)
		}
	}
	// Output:
	// 3:15PM hp-0001/supply_overheat raised supply_temp_c was above 65 for 10m0s (last 71.2)
	// 3:30PM hp-0001/supply_overheat cleared supply_temp_c was at or below 65 for 10m0s (last 60)
}
