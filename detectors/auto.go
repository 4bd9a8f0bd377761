package detectors

import (
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// AutoModel is the model name of the built-in profile for metrics nobody
// wrote rules for (forewarn replay without --config).
const AutoModel = "auto"

// The auto profile's parameters, chosen once on the NAB and SKAB DEV sets
// (docs/detection.md) and frozen: scoring never re-tunes them. The choice
// between the two shapes is by the number of metrics, never by file.
const (
	// One metric (a univariate stream, NAB): a context rule and a
	// second-level anomaly rule.
	autoContextBins    = 3
	autoContextDepth   = 3
	autoContextNovelty = 1.0
	autoContextRest    = 200
	autoContextMemory  = 1024
	autoContextWarmup  = 250
	autoContextMargin  = 0.15
	autoContextRecut   = 1.0 // the warm-up's re-cut factor, kept on once judging
	autoK              = 7
	autoClearK         = 2.25
	autoHalfLife       = 30
	autoWarmup         = 200
	autoLikelihood     = 1000

	// Several metrics of one device (a multichannel machine, SKAB): one
	// anomaly rule per metric judging z directly, with a short clear_for.
	autoMultiK        = 3.125
	autoMultiClearK   = 1.75
	autoMultiHalfLife = 200
	autoMultiWarmup   = 600
	autoMultiClearFor = 2 * time.Second
)

// AutoProfile returns the "auto" profile for metrics. It needs no knowledge
// of the metrics' units, cadence or cycle; its shape depends only on how
// many metrics there are:
//
//   - one metric: a context rule (name <metric>/context, fault
//     <metric>_context) and an anomaly rule with the second level
//     (likelihood_half_life; name <metric>/anomaly, fault <metric>_anomaly);
//   - several metrics: one anomaly rule per metric judging z itself (name
//     <metric>/anomaly, fault <metric>_anomaly), clearing after clear_for.
//
// Fault names have characters outside [a-z0-9_] replaced by _; every rule
// has severity minor.
func AutoProfile(metrics []string) Profile {
	if len(metrics) > 1 {
		p := Profile{Rules: make([]Rule, 0, len(metrics))}
		for _, m := range metrics {
			k, ck, cf := autoMultiK, autoMultiClearK, autoMultiClearFor
			p.Rules = append(p.Rules, Rule{
				Metric: m, Detector: DetectorAnomaly, K: &k, ClearK: &ck, ClearFor: &cf,
				HalfLife: autoMultiHalfLife, Warmup: autoMultiWarmup,
				Fault: faultName(m) + "_anomaly", Severity: telemetry.SeverityMinor,
			})
		}
		return p
	}
	p := Profile{Rules: make([]Rule, 0, 2*len(metrics))}
	for _, m := range metrics {
		nov, rest, margin, recut := autoContextNovelty, autoContextRest, autoContextMargin, autoContextRecut
		p.Rules = append(p.Rules, Rule{
			Metric: m, Detector: DetectorContext, Bins: autoContextBins, Depth: autoContextDepth,
			Novelty: &nov, Rest: &rest, Margin: &margin, Recut: &recut, Memory: autoContextMemory, Warmup: autoContextWarmup,
			Fault: faultName(m) + "_context", Severity: telemetry.SeverityMinor,
		})
		k, ck := float64(autoK), autoClearK
		p.Rules = append(p.Rules, Rule{
			Metric:   m,
			Detector: DetectorAnomaly,
			K:        &k,
			ClearK:   &ck,
			HalfLife: autoHalfLife,
			Warmup:   autoWarmup,
			// Judge |z| against its usual level: spiky metrics stop
			// alarming on every spike (docs/detection.md).
			LikelihoodHalfLife: autoLikelihood,
			Fault:              faultName(m) + "_anomaly",
			Severity:           telemetry.SeverityMinor,
		})
	}
	return p
}

// faultName lower-cases s and replaces characters outside [a-z0-9_] by _.
func faultName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "metric"
	}
	return string(b)
}
