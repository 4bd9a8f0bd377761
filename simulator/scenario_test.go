package simulator

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// symptom says whether a reading shows a scenario's fault in its key
// metric, at the limits of the shipped profiles (examples/forewarn.yaml).
var symptoms = map[string]func(r telemetry.Reading) bool{
	"overheating":          func(r telemetry.Reading) bool { return val(r, "supply_temp_c") > 60 },
	"filter_clogging":      func(r telemetry.Reading) bool { return val(r, "filter_dp_pa") > 250 },
	"refrigerant_leak":     func(r telemetry.Reading) bool { return val(r, "superheat_k") > 11 },
	"compressor_failure":   func(r telemetry.Reading) bool { return val(r, "compressor_amps") < 1 },
	"compressor_trips":     func(r telemetry.Reading) bool { return val(r, "compressor_amps") < 1 },
	"scale_buildup":        func(r telemetry.Reading) bool { return val(r, "element_delta_k") > 35 },
	"thermostat_failure":   func(r telemetry.Reading) bool { return val(r, "tank_temp_c") > 78 },
	"element_intermittent": func(r telemetry.Reading) bool { return val(r, "element_on") == 1 && val(r, "element_amps") < 1 },
	"tank_sensor_spikes":   func(r telemetry.Reading) bool { return val(r, "tank_temp_c") > 78 },
	"connector_wear": func(r telemetry.Reading) bool { // hot, or already derated to one phase
		return val(r, "connector_temp_c") > 70 || val(r, "status_code") == 2 && val(r, "power_kw") < 5
	},
	"contactor_failure":     func(r telemetry.Reading) bool { return val(r, "status_code") > 8 },
	"firmware_rollout":      func(r telemetry.Reading) bool { return val(r, "status_code") > 8 && r.Firmware == badFirmware },
	"battery_wear":          func(r telemetry.Reading) bool { return val(r, "battery_v") < 12 },
	"bearing_wear":          func(r telemetry.Reading) bool { return val(r, "vibration_mm_s") > 4.5 },
	"dry_run":               func(r telemetry.Reading) bool { return val(r, "pressure_bar") < 2 },
	"pressure_intermittent": func(r telemetry.Reading) bool { return val(r, "pressure_bar") < 2 },
	"pressure_sensor_drift": func(r telemetry.Reading) bool { return val(r, "pressure_bar") < 2 },
}

func val(r telemetry.Reading, name string) float64 {
	f, ok := r.Field(name)
	if !ok {
		return 0
	}
	return f.Value
}

// TestGroundTruthMatchesTheData generates a fleet in which every device
// has a fault and checks each fault's ground truth against the readings:
// no symptom before the onset, the symptom after it, the customer's notice
// after the onset, an offline device silent, a stuck sensor flat. Healthy
// devices (and every device before its onset) never show any symptom of
// their kind although their benign oddities (defrost, an open window, a
// bath, a hose, a guest charging) do happen.
func TestGroundTruthMatchesTheData(t *testing.T) {
	o := mixedOptions()
	o.Devices = 120 // 30 of each kind: every scenario several times
	o.FaultyFraction = 0.75
	o.RolloutShare = 0.5
	days := 7
	o.SimDuration = time.Duration(days) * 24 * time.Hour
	fleet := NewFleet(o, start)
	ticks := int64(days * 24 * 12)
	series := make([][]telemetry.Reading, fleet.Len())
	var events []struct {
		dev  int
		at   int64
		code string
	}
	var s sample
	for tick := range ticks {
		for i := range fleet.Len() {
			out := fleet.next(i, tick, &s)
			if out.reading {
				series[i] = append(series[i], fleet.reading(i, out.at, &s))
			}
			if out.event {
				events = append(events, struct {
					dev  int
					at   int64
					code string
				}{i, out.at, s.event})
			}
		}
	}
	truth := fleet.Truth(start.Add(time.Duration(days) * 24 * time.Hour))
	byDevice := map[telemetry.DeviceID]Truth{}
	seen := map[string]int{}
	for _, tr := range truth {
		byDevice[tr.Device] = tr
		seen[tr.Scenario]++
	}
	for _, name := range ScenarioNames() {
		require.Positive(t, seen[name], "scenario %s never injected", name)
	}

	oddities := map[string]bool{}
	for i := range fleet.Len() {
		id := fleet.ID(i)
		tr, faulty := byDevice[id]
		kind := fleet.Kind(i)
		for _, r := range series[i] {
			require.Equal(t, kind.Model(), r.Model)
			if faulty && !r.At.Before(tr.Onset) {
				continue
			}
			for sc, symptom := range symptoms {
				id, _ := scenarioByName(sc)
				if id.applies(kind) {
					require.False(t, symptom(r), "%s (%s) shows %s before any fault at %s: %v", r.Device, kind, sc, r.At, r.Fields)
				}
			}
			switch {
			case val(r, "defrost") == 1:
				oddities["defrost"] = true
			case kind == HeatPump && val(r, "indoor_temp_c") < setpoint(r.At.Unix())-2:
				oddities["window open"] = true
			case val(r, "flow_lpm") > 9.5 && kind == WaterHeater:
				oddities["bath"] = true
			case val(r, "flow_lpm") > 45 && kind == WaterPump && hourOf(r.At.Unix()) < 5:
				oddities["hose at night"] = true
			case kind == EVCharger && val(r, "status_code") == 2 && hourOf(r.At.Unix()) < 14 && hourOf(r.At.Unix()) >= 12:
				oddities["guest charging"] = true
			}
		}
		if !faulty {
			continue
		}
		require.False(t, tr.Onset.Before(start), "%s onset before the run", id)
		require.Equal(t, kind.String(), tr.Kind)
		require.Equal(t, kind.Model(), tr.Model)
		if tr.Notice != nil {
			require.False(t, tr.Notice.Before(tr.Onset), "%s noticed before the onset", id)
		}
		var after []telemetry.Reading
		for _, r := range series[i] {
			if !r.At.Before(tr.Onset) {
				after = append(after, r)
			}
		}
		switch tr.Scenario {
		case "connectivity_loss":
			require.NotNil(t, tr.End)
			for _, r := range after {
				require.False(t, r.At.Before(*tr.End), "%s sent a reading while offline", id)
			}
		case "supply_sensor_stuck":
			require.NotEmpty(t, after)
			for _, r := range after {
				require.Equal(t, val(after[0], "supply_temp_c"), val(r, "supply_temp_c"), "%s: the stuck sensor moved", id)
			}
		default:
			symptom := symptoms[tr.Scenario]
			require.NotNil(t, symptom, tr.Scenario)
			n := 0
			for _, r := range after {
				if symptom(r) {
					n++
				}
			}
			if tr.Scenario == "contactor_failure" || tr.Scenario == "firmware_rollout" || tr.Scenario == "connector_wear" {
				if n == 0 { // shows only while a car is plugged in: was one?
					require.Nil(t, tr.Notice, "%s %s noticed without a symptom", id, tr.Scenario)
					continue
				}
			}
			require.Positive(t, n, "%s %s (onset %s) never shows its symptom", id, tr.Scenario, tr.Onset)
		}
		if tr.Scenario == "firmware_rollout" {
			require.Equal(t, badFirmware, after[len(after)-1].Firmware)
			require.NotEqual(t, badFirmware, tr.Firmware)
		}
	}
	for _, ev := range events {
		tr, ok := byDevice[fleet.ID(ev.dev)]
		require.True(t, ok, "a healthy device reported %s", ev.code)
		require.GreaterOrEqual(t, ev.at, tr.Onset.Unix())
		want := map[string]string{"compressor_trips": "E42", "element_intermittent": "E-ELEMENT-OPEN", "firmware_rollout": "E-OCPP-ABORT"}[tr.Scenario]
		require.Equal(t, want, ev.code, "%s %s", fleet.ID(ev.dev), tr.Scenario)
	}
	require.NotEmpty(t, events)
	for _, odd := range []string{"defrost", "window open", "bath", "guest charging"} {
		require.True(t, oddities[odd], "benign oddity %q never happened", odd)
	}
}
