package detectors

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func f64(v float64) *float64             { return &v }
func dur(d time.Duration) *time.Duration { return &d }

// goodRule is a valid above rule with every key set.
func goodRule() Rule {
	return Rule{
		Metric:          "supply_temp_c",
		Detector:        "threshold",
		Above:           f64(65),
		ClearBelow:      f64(60),
		For:             10 * time.Minute,
		ClearFor:        dur(5 * time.Minute),
		Fault:           "supply_overheat",
		Severity:        telemetry.SeverityMajor,
		CustomerVisible: true,
		Remedy:          "Check the circulation pump.",
	}
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *Rule)
		wants []string // message fragments; none means valid
	}{
		{name: "every key set", edit: func(*Rule) {}},
		{name: "minimal above", edit: func(r *Rule) {
			*r = Rule{Metric: "m", Detector: "threshold", Above: f64(1), Fault: "f", Severity: telemetry.SeverityInfo}
		}},
		{name: "below with clear_above", edit: func(r *Rule) {
			r.Above, r.ClearBelow, r.Below, r.ClearAbove = nil, nil, f64(10), f64(12)
		}},
		{name: "clear level equal to limit", edit: func(r *Rule) { r.ClearBelow = f64(65) }},
		{name: "negative limits", edit: func(r *Rule) { r.Above, r.ClearBelow = f64(-5), f64(-10.5) }},
		{name: "zero durations", edit: func(r *Rule) { r.For, r.ClearFor = 0, dur(0) }},
		{name: "named", edit: func(r *Rule) { r.Name = "too hot" }},
		{name: "fault with digits", edit: func(r *Rule) { r.Fault = "fan_2_stall" }},

		{name: "no limit", edit: func(r *Rule) { r.Above, r.ClearBelow = nil, nil },
			wants: []string{"above or below is required"}},
		{name: "both limits", edit: func(r *Rule) { r.Below = f64(10) },
			wants: []string{"both above and below set: use two rules"}},
		{name: "clear_below above the limit", edit: func(r *Rule) { r.ClearBelow = f64(70) },
			wants: []string{"clear_below: 70 must not be above above (65)"}},
		{name: "clear_above below the limit", edit: func(r *Rule) {
			r.Above, r.ClearBelow, r.Below, r.ClearAbove = nil, nil, f64(10), f64(8.5)
		}, wants: []string{"clear_above: 8.5 must not be below below (10)"}},
		{name: "clear_above on an above rule", edit: func(r *Rule) { r.ClearAbove = f64(70) },
			wants: []string{"clear_above: applies only to a below rule"}},
		{name: "clear_below on a below rule", edit: func(r *Rule) { r.Above, r.Below = nil, f64(10) },
			wants: []string{"clear_below: applies only to an above rule"}},
		{name: "NaN limit", edit: func(r *Rule) { r.Above = f64(math.NaN()) },
			wants: []string{"above: must be a finite number, not NaN"}},
		{name: "infinite limit", edit: func(r *Rule) { r.Above, r.ClearBelow, r.Below = nil, nil, f64(math.Inf(1)) },
			wants: []string{"below: must be a finite number, not +Inf"}},
		{name: "infinite clear level", edit: func(r *Rule) { r.ClearBelow = f64(math.Inf(-1)) },
			wants: []string{"clear_below: must be a finite number, not -Inf"}},
		{name: "no metric", edit: func(r *Rule) { r.Metric = "" },
			wants: []string{"metric: required"}},
		{name: "no detector", edit: func(r *Rule) { r.Detector = "" },
			wants: []string{"detector: required (supported: threshold, rate, flatline, offline, anomaly, forecast, event, usage, context)"}},
		{name: "key of another detector", edit: func(r *Rule) { r.Horizon = time.Hour },
			wants: []string{"horizon: does not apply to detector threshold (its keys: above, below, clear_below, clear_above, for, clear_for)"}},
		{name: "unknown detector", edit: func(r *Rule) { r.Detector = "Threshold" },
			wants: []string{`detector: unknown detector "Threshold" (supported: threshold, rate, flatline, offline, anomaly, forecast, event, usage, context)`}},
		{name: "no fault", edit: func(r *Rule) { r.Fault = "" },
			wants: []string{"fault: required"}},
		{name: "bad fault", edit: func(r *Rule) { r.Fault = "Heating Loss" },
			wants: []string{`fault: "Heating Loss" must match [a-z0-9_]+`}},
		{name: "fault with dash", edit: func(r *Rule) { r.Fault = "heating-loss" },
			wants: []string{`fault: "heating-loss" must match [a-z0-9_]+`}},
		{name: "no severity", edit: func(r *Rule) { r.Severity = 0 },
			wants: []string{"severity: required (info, minor, major, critical)"}},
		{name: "bad severity", edit: func(r *Rule) { r.Severity = 9 },
			wants: []string{"severity: Severity(9) is not one of info, minor, major, critical"}},
		{name: "negative for", edit: func(r *Rule) { r.For = -time.Second },
			wants: []string{"for: must not be negative"}},
		{name: "negative clear_for", edit: func(r *Rule) { r.ClearFor = dur(-time.Second) },
			wants: []string{"clear_for: must not be negative"}},
		{name: "blank name", edit: func(r *Rule) { r.Name = "  " },
			wants: []string{"name: must not be blank"}},
		{name: "every problem reported", edit: func(r *Rule) {
			*r = Rule{Detector: "threshold", For: -1}
		}, wants: []string{"metric: required", "fault: required", "severity: required", "above or below is required", "for: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := goodRule()
			tt.edit(&r)
			err := r.Validate()
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

func TestProfileValidate(t *testing.T) {
	below := goodRule()
	below.Name, below.Above, below.ClearBelow, below.Below = "too cold", nil, nil, f64(5)
	noFault := goodRule()
	noFault.Fault = ""
	noLimit := goodRule()
	noLimit.Above, noLimit.ClearBelow = nil, nil

	tests := []struct {
		name    string
		profile Profile
		want    string // the whole message; empty means valid
	}{
		{name: "empty", profile: Profile{}},
		{name: "two rules on one metric", profile: Profile{OfflineAfter: 10 * time.Minute, Rules: []Rule{goodRule(), below}}},
		{name: "negative offline_after", profile: Profile{OfflineAfter: -time.Minute},
			want: "offline_after: must not be negative"},
		{name: "rule key", profile: Profile{Rules: []Rule{below, noFault}},
			want: `rules[1].fault: required (rule "supply_temp_c/threshold")`},
		{name: "rule as a whole", profile: Profile{Rules: []Rule{noLimit}},
			want: `rules[0]: above or below is required (rule "supply_temp_c/threshold")`},
		{name: "rule without a name", profile: Profile{Rules: []Rule{{Detector: "threshold", Above: f64(1), Fault: "f", Severity: telemetry.SeverityInfo}}},
			want: "rules[0].metric: required"},
		{name: "default names collide", profile: Profile{Rules: []Rule{goodRule(), func() Rule { r := below; r.Name = ""; return r }()}},
			want: `rules[1].name: "supply_temp_c/threshold" is already used by rules[0] (give one of them a distinct name)`},
		{name: "explicit names collide", profile: Profile{Rules: []Rule{below, goodRule(), below}},
			want: `rules[2].name: "too cold" is already used by rules[0] (give one of them a distinct name)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.profile.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestValidateProfiles(t *testing.T) {
	hot := goodRule()
	hot.ClearBelow = f64(70)
	noSeverity := goodRule()
	noSeverity.Severity = 0

	tests := []struct {
		name     string
		profiles map[string]Profile
		want     string // the whole message; empty means valid
	}{
		{name: "nil", profiles: nil},
		{name: "good", profiles: map[string]Profile{"heatpump-a2": {Rules: []Rule{goodRule()}}, "boiler-x": {}}},
		{name: "full key path", profiles: map[string]Profile{"heatpump-a2": {Rules: []Rule{hot}}},
			want: `profiles.heatpump-a2.rules[0].clear_below: 70 must not be above above (65) (rule "supply_temp_c/threshold")`},
		{name: "profile key", profiles: map[string]Profile{"heatpump-a2": {OfflineAfter: -1}},
			want: "profiles.heatpump-a2.offline_after: must not be negative"},
		{name: "sorted by model, every problem", profiles: map[string]Profile{
			"zz": {Rules: []Rule{noSeverity}},
			"aa": {Rules: []Rule{goodRule(), goodRule()}},
		}, want: `profiles.aa.rules[1].name: "supply_temp_c/threshold" is already used by rules[0] (give one of them a distinct name)` + "\n" +
			`profiles.zz.rules[0].severity: required (info, minor, major, critical) (rule "supply_temp_c/threshold")`},
		{name: "empty model", profiles: map[string]Profile{"": {}},
			want: "profiles: model name must not be empty"},
		{name: "models differ only in case", profiles: map[string]Profile{"HeatPump-A2": {}, "heatpump-a2": {}},
			want: "profiles.heatpump-a2: same model as profiles.HeatPump-A2 (model names are matched case-insensitively)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateProfiles(tt.profiles)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
		})
	}
}
