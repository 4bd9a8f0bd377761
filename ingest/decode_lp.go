package ingest

import (
	"bytes"
	"math"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// DecodeLineProto decodes InfluxDB line protocol: one reading per line,
//
//	measurement[,tag=value…] field=value[,field=value…] [timestamp]
//
// Blank lines and lines starting with '#' are skipped. The measurement name
// is checked but not kept (readings go to measurement telemetry). Tags
// model, fw and device_id mean what they mean in JSON (device_id must equal
// the topic's); other tags are ignored. Field values are floats, integers
// (12i), unsigned integers (12u) or booleans (t, true, F, …); a string field
// is rejected (bad_type). Names use the metric charset, so escapes are never
// needed and a backslash is rejected. The timestamp is an integer epoch read
// by magnitude as in JSON (seconds, milliseconds, microseconds or, the line
// protocol default, nanoseconds); absent means the receive time.
func (d *Decoder) DecodeLineProto(device telemetry.DeviceID, payload []byte, received time.Time) ([]telemetry.Reading, error) {
	if len(payload) > d.lim.MaxPayloadBytes {
		return nil, reject(ReasonTooLarge, "%d bytes, limit %d", len(payload), d.lim.MaxPayloadBytes)
	}
	var out []telemetry.Reading
	for len(payload) > 0 {
		line := payload
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, payload = payload[:i], payload[i+1:]
		} else {
			payload = nil
		}
		line = bytes.TrimRight(line, "\r")
		if t := bytes.TrimLeft(line, " \t"); len(t) == 0 || t[0] == '#' {
			continue
		}
		r, err := d.decodeLine(device, line, received)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, reject(ReasonNoMetrics, "no line protocol lines")
	}
	return out, nil
}

// lpToken returns the bytes of b up to the first space, comma, or (with
// eq) '=', rejecting quotes and backslashes (names never need escaping here).
func lpToken(b []byte, eq bool) (tok, rest []byte, err error) {
	for i, c := range b {
		switch c {
		case ' ', ',':
			return b[:i], b[i:], nil
		case '=':
			if eq {
				return b[:i], b[i:], nil
			}
		case '\\', '"':
			return nil, nil, reject(ReasonBadMetricName, "line protocol name %.40q: escapes and quotes are not allowed", b[:i+1])
		}
	}
	return b, nil, nil
}

func (d *Decoder) decodeLine(device telemetry.DeviceID, line []byte, received time.Time) (telemetry.Reading, error) {
	lim := d.lim
	r := telemetry.Reading{Device: device, At: received}
	meas, rest, err := lpToken(line, false)
	if err != nil {
		return r, err
	}
	if len(meas) == 0 {
		return r, reject(ReasonMalformed, "line %.40q: no measurement", line)
	}
	if err := checkMetricNameBytes(meas); err != nil {
		return r, err
	}
	// Tags.
	for len(rest) > 0 && rest[0] == ',' {
		var k, v []byte
		if k, rest, err = lpToken(rest[1:], true); err != nil {
			return r, err
		}
		if len(rest) == 0 || rest[0] != '=' {
			return r, reject(ReasonMalformed, "line %.40q: tag %q has no value", line, k)
		}
		if v, rest, err = lpToken(rest[1:], false); err != nil {
			return r, err
		}
		if len(k) == 0 || len(v) == 0 {
			return r, reject(ReasonMalformed, "line %.40q: empty tag key or value", line)
		}
		switch string(k) {
		case "device_id":
			if string(v) != string(device) {
				return r, reject(ReasonDeviceMismatch, "payload device_id %q, topic device %q", v, device)
			}
		case "model":
			if len(v) > maxAttrLen || !validID(v) {
				return r, reject(ReasonBadAttribute, "model %q: want 1 to %d characters of [A-Za-z0-9._:-]", v, maxAttrLen)
			}
			r.Model = d.str(v)
		case "fw":
			if len(v) > maxAttrLen {
				return r, reject(ReasonBadAttribute, "fw: %d bytes, limit %d", len(v), maxAttrLen)
			}
			if err := checkFirmware(v); err != nil {
				return r, err
			}
			r.Firmware = d.str(v)
		}
	}
	if len(rest) == 0 || rest[0] != ' ' {
		return r, reject(ReasonMalformed, "line %.40q: no fields", line)
	}
	rest = rest[1:]
	// Fields.
	d.fields = d.fields[:0]
	for {
		var k []byte
		if k, rest, err = lpToken(rest, true); err != nil {
			return r, err
		}
		if len(rest) == 0 || rest[0] != '=' {
			return r, reject(ReasonMalformed, "line %.40q: field %q has no value", line, k)
		}
		rest = rest[1:]
		if err := checkMetricNameBytes(k); err != nil {
			return r, err
		}
		if len(rest) > 0 && rest[0] == '"' {
			return r, reject(ReasonBadType, "metric %q: string fields are not metrics", k)
		}
		end := bytes.IndexAny(rest, ", ")
		if end < 0 {
			end = len(rest)
		}
		f, err := parseLPValue(k, rest[:end])
		if err != nil {
			return r, err
		}
		f.Name = d.str(k)
		d.fields = append(d.fields, f)
		if len(d.fields) > lim.MaxMetrics {
			return r, reject(ReasonTooManyMetrics, "more than %d metrics", lim.MaxMetrics)
		}
		rest = rest[end:]
		if len(rest) > 0 && rest[0] == ',' {
			rest = rest[1:]
			continue
		}
		break
	}
	// Timestamp.
	if len(rest) > 0 {
		ts := bytes.TrimSpace(rest)
		if len(ts) > 0 {
			n, ok := parseUint(ts)
			if !ok || n > math.MaxInt64 {
				return r, reject(ReasonBadTimestamp, "timestamp %.40q: want an integer epoch", ts)
			}
			at, err := epochTime(float64(n), int64(n), ts)
			if err != nil {
				return r, err
			}
			r.At = at
		}
	}
	if err := checkSkew(r.At, received, lim); err != nil {
		return r, err
	}
	if err := d.checkRange(d.fields); err != nil {
		return r, err
	}
	r.Fields = d.sortedFields(d.fields)
	r.At = r.At.UTC()
	return r, nil
}

func parseLPValue(name, v []byte) (telemetry.Field, error) {
	switch string(v) {
	case "t", "T", "true", "True", "TRUE":
		return telemetry.Field{Value: 1, IsBool: true}, nil
	case "f", "F", "false", "False", "FALSE":
		return telemetry.Field{Value: 0, IsBool: true}, nil
	}
	if len(v) == 0 {
		return telemetry.Field{}, reject(ReasonMalformed, "metric %q: empty value", name)
	}
	num := v
	if c := v[len(v)-1]; c == 'i' || c == 'u' {
		num = v[:len(v)-1]
		if len(num) == 0 || c == 'u' && num[0] == '-' {
			return telemetry.Field{}, reject(ReasonBadType, "metric %q: %.40q is not a number", name, v)
		}
		for k, c := range num {
			if !(c >= '0' && c <= '9' || k == 0 && c == '-') {
				return telemetry.Field{}, reject(ReasonBadType, "metric %q: %.40q is not an integer", name, v)
			}
		}
		if num[len(num)-1] == '-' {
			return telemetry.Field{}, reject(ReasonBadType, "metric %q: %.40q is not an integer", name, v)
		}
	} else if j := scanNumber(v, 0); j != len(v) {
		// Line protocol floats follow strconv; JSON's grammar, which we
		// check, is the same apart from a leading '+' or '.', rejected here.
		return telemetry.Field{}, reject(ReasonBadType, "metric %q: %.40q is not a number or a boolean", name, v)
	}
	f, ok := parseFloat(num)
	if !ok {
		return telemetry.Field{}, reject(ReasonNonFinite, "metric %q: %.40s is not a finite float64", name, v)
	}
	return telemetry.Field{Value: f}, nil
}
