package simulator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

var t0 = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

func h(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }

func hp(n float64) *time.Time { return ptr(h(n)) }

func TestEvaluate(t *testing.T) {
	truth := []Truth{
		{Device: "d1", Scenario: "filter_clogging", Class: "gradual", Fault: "filter_clogging", Onset: h(10), Notice: hp(100)},
		{Device: "d2", Scenario: "filter_clogging", Class: "gradual", Fault: "filter_clogging", Onset: h(20), Notice: hp(60)},
		{Device: "d3", Scenario: "dry_run", Class: "sudden", Fault: "low_pressure", Onset: h(30), Notice: hp(30.25)},
		{Device: "d4", Scenario: "dry_run", Class: "sudden", Fault: "low_pressure", Onset: h(40), Notice: hp(40.5)},
		{Device: "d5", Scenario: "tank_sensor_spikes", Class: "sensor", Onset: h(50)},
		{Device: "d6", Scenario: "connectivity_loss", Class: "connectivity", Onset: h(60), End: hp(70)},
		{Device: "d7", Scenario: "connectivity_loss", Class: "connectivity", Onset: h(60), End: hp(70)},
	}
	tickets := []Ticket{
		{ID: 1, Device: "d1", Fault: "filter_clogging", OpenedAt: h(40)},   // 60h early
		{ID: 2, Device: "d1", Fault: "filter_clogging", OpenedAt: h(50)},   // duplicate of 1
		{ID: 3, Device: "d2", Fault: "heating_loss", OpenedAt: h(70)},      // 10h late, other fault name still detects
		{ID: 4, Device: "d3", Fault: "low_pressure", OpenedAt: h(30.5)},    // 15 min late
		{ID: 5, Device: "d4", Fault: "low_pressure", OpenedAt: h(39)},      // before onset: false
		{ID: 6, Device: "d5", Fault: "tank_overheat", OpenedAt: h(51)},     // detects spikes (no notice: no lead)
		{ID: 7, Device: "d6", Fault: "offline", OpenedAt: h(61)},           // detects
		{ID: 8, Device: "d7", Fault: "offline", OpenedAt: h(72)},           // after the device came back + 1h: false
		{ID: 9, Device: "d9", Fault: "overheating", OpenedAt: h(5)},        // healthy device: false
		{ID: 10, Device: "x1", Fault: "overheating", OpenedAt: h(5)},       // not this fleet: ignored
		{ID: 11, Device: "d9", Fault: "overheating", OpenedAt: h(-5)},      // before the run: ignored
		{ID: 12, Device: "d9", Fault: "overheating", OpenedAt: h(200 + 2)}, // after the run + grace: ignored
	}
	ev := Evaluate(EvalInput{
		Truth: truth, Tickets: tickets, Start: t0, End: h(200), DeviceDays: 2000,
		InFleet: func(id telemetry.DeviceID) bool { return strings.HasPrefix(string(id), "d") },
	})
	require.Equal(t, 7, ev.Faults)
	require.Equal(t, 5, ev.Detected) // d1 d2 d3 d5 d6
	require.InDelta(t, 5.0/7, ev.Recall, 1e-9)
	require.Equal(t, 9, ev.Tickets)
	require.Equal(t, 3, ev.FalseTickets) // 5, 8, 9
	require.Equal(t, map[string]int{"low_pressure": 1, "offline": 1, "overheating": 1}, ev.FalseByFault)
	require.InDelta(t, 1.5, ev.FalseTicketsPer1000DeviceDays, 1e-9)
	require.Equal(t, 1, ev.DuplicateTickets)
	require.Equal(t, 1, ev.DetectedBeforeNotice)
	// leads (s): d1 +216000, d2 -36000, d3 -900 -> sorted -36000, -900, 216000
	require.InDelta(t, -900, *ev.LeadTimeMedianS, 1e-9)
	require.InDelta(t, -36000+0.2*(36000-900), *ev.LeadTimeP10S, 1e-9)

	byName := map[string]ScenarioEval{}
	for _, se := range ev.Scenarios {
		byName[se.Scenario] = se
	}
	require.Len(t, byName, 4)
	fc := byName["filter_clogging"]
	require.Equal(t, 2, fc.Detected)
	require.Equal(t, 1, fc.DuplicateTickets)
	require.Equal(t, "forecast", fc.Needs)
	require.InDelta(t, (216000-36000)/2.0, *fc.LeadTimeMedianS, 1e-9)
	dr := byName["dry_run"]
	require.Equal(t, 1, dr.Detected)
	require.InDelta(t, 0.5, dr.Recall, 1e-9)
	require.InDelta(t, -900, *dr.LeadTimeMedianS, 1e-9)
	sp := byName["tank_sensor_spikes"]
	require.Equal(t, 1, sp.Detected)
	require.Zero(t, sp.Noticed)
	require.Nil(t, sp.LeadTimeMedianS)
	cl := byName["connectivity_loss"]
	require.Equal(t, 2, cl.Faults)
	require.Equal(t, 1, cl.Detected)

	// The JSON report carries the keys the issue asks for.
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"recall", "lead_time_median_s", "lead_time_p10_s", "false_tickets_per_1000_device_days", "duplicate_tickets", "scenarios"} {
		require.Contains(t, m, k)
	}
	require.Len(t, m["scenarios"], 4)

	var sb strings.Builder
	ev.Table(&sb)
	require.Contains(t, sb.String(), "| filter_clogging | gradual | 2 | 2 | 100% | 1/2 | 25.0h | ")
	require.Contains(t, sb.String(), "| **all** | | 7 | 5 | 71% | 1 | -15m | ")
	require.Contains(t, sb.String(), "false tickets: 3 in 2000 device-days (1.50 per 1,000 device-days): low_pressure 1, offline 1, overheating 1; tickets: 9")
}

func TestEvaluatePrefersTheMatchingFault(t *testing.T) {
	truth := []Truth{
		{Device: "d1", Scenario: "filter_clogging", Fault: "filter_clogging", Onset: h(10)},
		{Device: "d1", Scenario: "overheating", Fault: "overheating", Onset: h(20)},
	}
	ev := Evaluate(EvalInput{Truth: truth, Start: t0, End: h(100), Tickets: []Ticket{
		{ID: 1, Device: "d1", Fault: "filter_clogging", OpenedAt: h(30)},
		{ID: 2, Device: "d1", Fault: "pressure", OpenedAt: h(31)}, // no name matches: the latest onset
	}})
	require.Equal(t, 2, ev.Detected)
	require.Zero(t, ev.DuplicateTickets)
	require.Zero(t, ev.FalseTickets)
}

func TestEvaluateEmpty(t *testing.T) {
	ev := Evaluate(EvalInput{Start: t0, End: h(1)})
	require.Zero(t, ev.Recall)
	require.Nil(t, ev.LeadTimeMedianS)
	require.NotNil(t, ev.Scenarios)
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	require.Contains(t, string(b), `"lead_time_median_s":null`)
	require.Contains(t, string(b), `"scenarios":[]`)
}

func TestQuantile(t *testing.T) {
	require.Nil(t, quantile(nil, 0.5))
	require.Equal(t, 7.0, *quantile([]float64{7}, 0.1))
	require.Equal(t, 2.5, *quantile([]float64{4, 1, 3, 2}, 0.5))
	require.InDelta(t, 1.3, *quantile([]float64{4, 1, 3, 2}, 0.1), 1e-9)
}
