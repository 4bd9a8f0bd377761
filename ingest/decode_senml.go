package ingest

import (
	"bytes"
	"math"
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
	b := bytes.TrimSpace(payload)
	if len(b) == 0 || b[0] != '[' {
		return nil, reject(ReasonMalformed, "SenML payload is not a JSON array")
	}
	if skipValue(b, 0, 0) != len(b) {
		return nil, reject(ReasonMalformed, "invalid JSON")
	}
	// The syntax is valid from here on. First the pack's shape: objects
	// (or null, rejected below in its turn), and how many.
	d.senRecs = d.senRecs[:0]
	for i := senmlFirst(b); i > 0; i = senmlNext(b, i) {
		if b[i] != '{' && b[i] != 'n' {
			return nil, reject(ReasonMalformed, "SenML: want an array of objects")
		}
		d.senRecs = append(d.senRecs, i)
	}
	if n := len(d.senRecs); n == 0 {
		return nil, reject(ReasonNoMetrics, "empty SenML pack")
	} else if n > lim.MaxMetrics {
		return nil, reject(ReasonTooManyMetrics, "%d records, limit %d", n, lim.MaxMetrics)
	}
	var (
		bn     []byte
		bt, bv float64
		rec    senmlRecord
	)
	d.senTimes, d.senFields = d.senTimes[:0], d.senFields[:0]
	for k, i := range d.senRecs {
		if b[i] == 'n' {
			return nil, reject(ReasonMalformed, "SenML record %d is null", k)
		}
		if err := rec.scan(b, i); err != nil {
			return nil, err
		}
		if rec.mustUnderstand != "" {
			return nil, reject(ReasonMalformed, "SenML record %d: must-understand field %q is not supported", k, rec.mustUnderstand)
		}
		if rec.bver != nil {
			v, err := senmlNumber(rec.bver, "bver")
			if err != nil {
				return nil, err
			}
			if v < 1 || v > maxSenMLVersion || v != math.Trunc(v) {
				return nil, reject(ReasonMalformed, "SenML bver %v is not supported (at most %d)", v, maxSenMLVersion)
			}
		}
		if rec.bn != nil {
			s, err := senmlString(rec.bn, "bn")
			if err != nil {
				return nil, err
			}
			bn = s
		}
		if rec.bt != nil {
			v, err := senmlNumber(rec.bt, "bt")
			if err != nil {
				return nil, err
			}
			bt = v
		}
		if rec.bv != nil {
			v, err := senmlNumber(rec.bv, "bv")
			if err != nil {
				return nil, err
			}
			bv = v
		}
		if rec.notMetric != "" {
			return nil, reject(ReasonBadType, "SenML record %d: %s is not a metric (numbers and booleans only)", k, rec.notMetric)
		}
		var name []byte
		if rec.n != nil {
			s, err := senmlString(rec.n, "n")
			if err != nil {
				return nil, err
			}
			name = s
		}
		if len(name) == 0 {
			name = bytes.TrimRight(bn, ":/")
		}
		if err := checkMetricNameBytes(name); err != nil {
			return nil, err
		}
		var f telemetry.Field
		switch rawV, rawVB := rec.v, rec.vb; {
		case rawV != nil && rawVB != nil:
			return nil, reject(ReasonMalformed, "SenML record %d has both v and vb", k)
		case rawV != nil:
			if !(rawV[0] == '-' || rawV[0] >= '0' && rawV[0] <= '9') {
				return nil, reject(ReasonBadType, "metric %q: v must be a number", name)
			}
			v, ok := parseFloat(rawV)
			if !ok || math.IsInf(v+bv, 0) {
				return nil, reject(ReasonNonFinite, "metric %q: %.40s is not a finite float64", name, rawV)
			}
			f = telemetry.Field{Value: v + bv}
		case rawVB != nil:
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
			return nil, reject(ReasonBadType, "metric %q: SenML record %d has no value", name, k)
		}
		f.Name = d.str(name)
		t := bt
		if rec.t != nil {
			v, err := senmlNumber(rec.t, "t")
			if err != nil {
				return nil, err
			}
			t += v
		}
		at, err := senmlTime(t, received)
		if err != nil {
			return nil, err
		}
		j := 0
		for j < len(d.senTimes) && !d.senTimes[j].Equal(at) {
			j++
		}
		if j == len(d.senTimes) {
			d.senTimes = append(d.senTimes, at)
		}
		d.senFields = append(d.senFields, senmlField{j, f})
	}
	out := make([]telemetry.Reading, 0, len(d.senTimes))
	for j, at := range d.senTimes {
		if err := checkSkew(at, received, lim); err != nil {
			return nil, err
		}
		d.fields = d.fields[:0]
		for _, sf := range d.senFields {
			if sf.reading == j {
				d.fields = append(d.fields, sf.f)
			}
		}
		if err := d.checkRange(d.fields); err != nil {
			return nil, err
		}
		out = append(out, telemetry.Reading{Device: device, At: at.UTC(), Fields: d.sortedFields(d.fields)})
	}
	return out, nil
}

// senmlField is a record's field and the index of the reading (the
// resolved time) it belongs to.
type senmlField struct {
	reading int
	f       telemetry.Field
}

// senmlFirst returns the index of the first element of the valid JSON
// array b, or 0 when it is empty.
func senmlFirst(b []byte) int {
	i := skipSpace(b, 1)
	if b[i] == ']' {
		return 0
	}
	return i
}

// senmlNext returns the index of the element after the one at i of the
// valid JSON array b, or 0 after the last.
func senmlNext(b []byte, i int) int {
	i = skipSpace(b, skipValue(b, i, 1))
	if b[i] == ']' {
		return 0
	}
	return skipSpace(b, i+1) // past ','
}

// senmlRecord is what the decoder reads of one record: each member's raw
// JSON value (nil when absent; of a repeated member, the last, as
// encoding/json into a map keeps it).
type senmlRecord struct {
	bn, bt, bv, bver, n, v, vb, t []byte
	notMetric                     string // vs, vd, s or bs, the first present in that order
	mustUnderstand                string // an unknown member whose name ends in '_'
}

// scan reads the record object at b[i] == '{' of valid JSON b.
func (r *senmlRecord) scan(b []byte, i int) error {
	*r = senmlRecord{}
	var vs, vd, s, bs bool
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		j, esc := scanString(b, i)
		key, ok := unquote(b[i:j], esc)
		if !ok {
			return malformedAt(i)
		}
		i = skipSpace(b, skipSpace(b, j)+1) // past ':'
		j = skipValue(b, i, 2)
		val := b[i:j]
		switch string(key) {
		case "bn":
			r.bn = val
		case "bt":
			r.bt = val
		case "bv":
			r.bv = val
		case "bver":
			r.bver = val
		case "n":
			r.n = val
		case "v":
			r.v = val
		case "vb":
			r.vb = val
		case "t":
			r.t = val
		case "vs":
			vs = true
		case "vd":
			vd = true
		case "s":
			s = true
		case "bs":
			bs = true
		case "bu", "u", "ut":
		default:
			if len(key) > 0 && key[len(key)-1] == '_' {
				r.mustUnderstand = string(key)
			}
		}
		i = skipSpace(b, j)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	switch {
	case vs:
		r.notMetric = "vs"
	case vd:
		r.notMetric = "vd"
	case s:
		r.notMetric = "s"
	case bs:
		r.notMetric = "bs"
	}
	return nil
}

func senmlNumber(raw []byte, key string) (float64, error) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, reject(ReasonBadType, "SenML %s: want a number, got %.32s", key, raw)
	}
	v, ok := parseFloat(raw)
	if !ok {
		return 0, reject(ReasonNonFinite, "SenML %s: %.40s is not a finite number", key, raw)
	}
	return v, nil
}

// senmlString returns the string value raw (a JSON string literal, with
// its escapes resolved); null is the empty string, as encoding/json had it.
func senmlString(raw []byte, key string) ([]byte, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return nil, reject(ReasonBadType, "SenML %s: want a string, got %.32s", key, raw)
	}
	j, esc := scanString(raw, 0)
	s, ok := unquote(raw[:j], esc)
	if !ok {
		return nil, reject(ReasonBadType, "SenML %s: want a string, got %.32s", key, raw)
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
