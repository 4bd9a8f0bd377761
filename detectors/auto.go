package detectors

import "github.com/forewarn/forewarn/telemetry"

// AutoModel is the model name of the built-in profile for metrics nobody
// wrote rules for (forewarn replay without --config).
const AutoModel = "auto"

// The auto profile's anomaly parameters, chosen once on the NAB and SKAB
// DEV sets (docs/detection.md) and frozen: scoring never re-tunes them.
const (
	autoK          = 4.5
	autoClearK     = 2.25
	autoHalfLife   = 100
	autoWarmup     = 200
	autoLikelihood = 1000
)

// AutoProfile returns the "auto" profile for metrics: one anomaly rule per
// metric (name <metric>/anomaly, fault <metric>_anomaly with characters
// outside [a-z0-9_] replaced by _, severity minor), with the frozen
// parameters above. It needs no knowledge of the metric's units, cadence
// or cycle.
func AutoProfile(metrics []string) Profile {
	p := Profile{Rules: make([]Rule, 0, len(metrics))}
	for _, m := range metrics {
		k, ck := autoK, autoClearK
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
