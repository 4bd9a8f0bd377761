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

// senmlRelative: SenML times below 2**28 are relative to now (RFC 8428
// section 4.5.3).
const senmlRelative = 1 << 28

// maxSenMLVersion is the highest bver understood (RFC 8428 section 4.4).
const maxSenMLVersion = 10

// DecodeSenML decodes a SenML pack in its JSON form (RFC 8428): an array of
// records. Base fields (bn, bt, bu, bv, bver) apply to the record that holds
// them and the ones after it (section 4.1). Records with the same resolved
// time (bt + t; times below 2**28 are relative to the receive time, section
// 4.5.3) form one reading, in order of first appearance. A record's metric
// name is its n; bn names the device and is not prepended (the topic already
// identifies the device, and a per-device prefix would make every device's
// fields distinct in InfluxDB); a record with only bn uses bn without a
// trailing ':' or '/'. Values: v (plus bv) and vb; vs and vd (strings, data)
// and s (sums) are not metrics and are rejected (bad_type). Units are not
// kept. Fields whose name ends in '_' must be understood (section 4.4):
// unknown ones are rejected. The whole pack may hold at most max_metrics
// records.
func (d *Decoder) DecodeSenML(device telemetry.DeviceID, payload []byte, received time.Time) ([]telemetry.Reading, error) {
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
			s, err := senmlString(raw, "bn")
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
			s, err := senmlString(raw, "n")
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

func senmlNumber(raw json.RawMessage, key string) (float64, error) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, reject(ReasonBadType, "SenML %s: want a number, got %.32s", key, raw)
	}
	v, ok := parseFloat(raw)
	if !ok {
		return 0, reject(ReasonNonFinite, "SenML %s: %.40s is not a finite number", key, raw)
	}
	return v, nil
}

func senmlString(raw json.RawMessage, key string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", reject(ReasonBadType, "SenML %s: want a string, got %.32s", key, raw)
	}
	return s, nil
}

// senmlTime resolves a SenML time in seconds: 0 is now, below 2**28 is
// relative to now, else absolute epoch seconds (RFC 8428 section 4.5.3).
// SenML times are binary floats, so they are rounded to the microsecond
// (1.276020076001e+09 is 18:01:16.001, not .000999928).
func senmlTime(t float64, received time.Time) (time.Time, error) {
	switch {
	case math.IsNaN(t) || math.IsInf(t, 0):
		return time.Time{}, reject(ReasonBadTimestamp, "time is not finite")
	case t < senmlRelative && t > -senmlRelative:
		return received.Add(time.Duration(math.Round(t*1e6)) * time.Microsecond), nil
	case t < 0:
		return time.Time{}, reject(ReasonBadTimestamp, "time %v is before 1970", t)
	case t >= 1e11:
		return time.Time{}, reject(ReasonBadTimestamp, "time %v is not plausible epoch seconds", t)
	}
	return time.UnixMicro(int64(math.Round(t * 1e6))), nil
}
