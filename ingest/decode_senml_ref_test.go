package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// decodeSenMLMaps is the SenML decoder as it was before the scanner: the
// pack through encoding/json into maps. FuzzDecodeSenML holds the scanner
// to it: the same readings, or a rejection with the same reason.
func (d *Decoder) decodeSenMLMaps(device telemetry.DeviceID, payload []byte, received time.Time) ([]telemetry.Reading, error) {
	lim := d.lim
	if len(payload) > lim.MaxPayloadBytes {
		return nil, reject(ReasonTooLarge, "%d bytes, limit %d", len(payload), lim.MaxPayloadBytes)
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, reject(ReasonMalformed, "SenML payload is not a JSON array")
	}
	if skipValue(trimmed, 0, 0) != len(trimmed) {
		return nil, reject(ReasonMalformed, "invalid JSON")
	}
	var recs []map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &recs); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, reject(ReasonMalformed, "SenML: want an array of objects")
		}
		return nil, reject(ReasonMalformed, "invalid JSON: %v", err)
	}
	if len(recs) == 0 {
		return nil, reject(ReasonNoMetrics, "empty SenML pack")
	}
	if len(recs) > lim.MaxMetrics {
		return nil, reject(ReasonTooManyMetrics, "%d records, limit %d", len(recs), lim.MaxMetrics)
	}
	var (
		bn        string
		bt, bv    float64
		out       []telemetry.Reading
		times     []time.Time
		fieldSets [][]telemetry.Field
	)
	for i, rec := range recs {
		if rec == nil {
			return nil, reject(ReasonMalformed, "SenML record %d is null", i)
		}
		for k := range rec {
			switch k {
			case "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut":
			default:
				if strings.HasSuffix(k, "_") {
					return nil, reject(ReasonMalformed, "SenML record %d: must-understand field %q is not supported", i, k)
				}
			}
		}
		if raw, ok := rec["bver"]; ok {
			v, err := senmlNumber(raw, "bver")
			if err != nil {
				return nil, err
			}
			if v < 1 || v > maxSenMLVersion || v != math.Trunc(v) {
				return nil, reject(ReasonMalformed, "SenML bver %v is not supported (at most %d)", v, maxSenMLVersion)
			}
		}
		if raw, ok := rec["bn"]; ok {
			s, err := senmlStringRef(raw, "bn")
			if err != nil {
				return nil, err
			}
			bn = s
		}
		if raw, ok := rec["bt"]; ok {
			v, err := senmlNumber(raw, "bt")
			if err != nil {
				return nil, err
			}
			bt = v
		}
		if raw, ok := rec["bv"]; ok {
			v, err := senmlNumber(raw, "bv")
			if err != nil {
				return nil, err
			}
			bv = v
		}
		for _, k := range []string{"vs", "vd", "s", "bs"} {
			if _, ok := rec[k]; ok {
				return nil, reject(ReasonBadType, "SenML record %d: %s is not a metric (numbers and booleans only)", i, k)
			}
		}
		name := ""
		if raw, ok := rec["n"]; ok {
			s, err := senmlStringRef(raw, "n")
			if err != nil {
				return nil, err
			}
			name = s
		}
		if name == "" {
			name = strings.TrimRight(bn, ":/")
		}
		if err := checkMetricName(name); err != nil {
			return nil, err
		}
		var f telemetry.Field
		rawV, hasV := rec["v"]
		rawVB, hasVB := rec["vb"]
		switch {
		case hasV && hasVB:
			return nil, reject(ReasonMalformed, "SenML record %d has both v and vb", i)
		case hasV:
			if len(rawV) == 0 || !(rawV[0] == '-' || rawV[0] >= '0' && rawV[0] <= '9') {
				return nil, reject(ReasonBadType, "metric %q: v must be a number", name)
			}
			v, ok := parseFloat(rawV)
			if !ok || math.IsInf(v+bv, 0) {
				return nil, reject(ReasonNonFinite, "metric %q: %.40s is not a finite float64", name, rawV)
			}
			f = telemetry.Field{Value: v + bv}
		case hasVB:
			switch string(rawVB) {
			case "true":
				f = telemetry.Field{Value: 1, IsBool: true}
			case "false":
				f = telemetry.Field{Value: 0, IsBool: true}
			default:
				return nil, reject(ReasonBadType, "metric %q: vb must be a boolean", name)
			}
		case bv != 0:
			f = telemetry.Field{Value: bv}
		default:
			return nil, reject(ReasonBadType, "metric %q: SenML record %d has no value", name, i)
		}
		f.Name = d.intern.getString(name)
		t := bt
		if raw, ok := rec["t"]; ok {
			v, err := senmlNumber(raw, "t")
			if err != nil {
				return nil, err
			}
			t += v
		}
		at, err := senmlTime(t, received)
		if err != nil {
			return nil, err
		}
		k := 0
		for k < len(times) && !times[k].Equal(at) {
			k++
		}
		if k == len(times) {
			times = append(times, at)
			fieldSets = append(fieldSets, nil)
		}
		fieldSets[k] = append(fieldSets[k], f)
	}
	for k, at := range times {
		if err := checkSkew(at, received, lim); err != nil {
			return nil, err
		}
		if err := d.checkRange(fieldSets[k]); err != nil {
			return nil, err
		}
		out = append(out, telemetry.Reading{Device: device, At: at.UTC(), Fields: d.sortedFields(fieldSets[k])})
	}
	return out, nil
}

func senmlStringRef(raw json.RawMessage, key string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", reject(ReasonBadType, "SenML %s: want a string, got %.32s", key, raw)
	}
	return s, nil
}
