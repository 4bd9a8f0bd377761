package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forewarn/forewarn/telemetry"
)

// Reason is why a message was rejected: the label of the
// forewarn_ingest_rejected_total metric. Reasons are a closed set so the
// metric's cardinality stays bounded.
type Reason string

// Rejection reasons.
const (
	ReasonTooLarge       Reason = "too_large"        // payload over max_payload_bytes
	ReasonMalformed      Reason = "malformed"        // not a JSON object (includes bare NaN, which JSON does not allow)
	ReasonBadType        Reason = "bad_type"         // a key holds the wrong JSON type
	ReasonNonFinite      Reason = "non_finite"       // a number overflows float64 (±Inf)
	ReasonNoMetrics      Reason = "no_metrics"       // metrics missing or empty
	ReasonTooManyMetrics Reason = "too_many_metrics" // more than max_metrics
	ReasonBadMetricName  Reason = "bad_metric_name"  // empty, too long, bad characters, or a leading '_'
	ReasonBadTimestamp   Reason = "bad_timestamp"    // ts unparseable or not positive
	ReasonFutureTS       Reason = "future_timestamp" // ts further ahead than max_future_skew
	ReasonStaleTS        Reason = "stale_timestamp"  // ts older than max_age
	ReasonBadDeviceID    Reason = "bad_device_id"    // the topic's device id breaks the device contract
	ReasonDeviceMismatch Reason = "device_mismatch"  // the payload names another device than the topic
	ReasonBadTopic       Reason = "bad_topic"        // topic is not {prefix}/{device_id}/telemetry
	ReasonBadAttribute   Reason = "bad_attribute"    // model, fw or an event code too long or with bad characters
	ReasonOutOfRange     Reason = "out_of_range"     // a value's magnitude is above max_abs_value
	ReasonUnknownDevice  Reason = "unknown_device"   // SubscriberOptions.Admit refused the device (registry.unknown_devices: reject)
)

// A DecodeError says why a payload was rejected. Reason labels the metric;
// Err gives the detail for logs and the dead-letter message.
type DecodeError struct {
	Reason Reason
	Err    error
}

func (e *DecodeError) Error() string { return string(e.Reason) + ": " + e.Err.Error() }

func (e *DecodeError) Unwrap() error { return e.Err }

func reject(r Reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the rejection reason of err, or "" when err is not a DecodeError.
func ReasonOf(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

const (
	maxMetricNameLen = 128
	maxAttrLen       = 64
)

// A Decoder decodes telemetry payloads. It keeps scratch space and interns
// metric names, models and firmware versions (up to internMax distinct
// strings), so a JSON message costs one allocation (its Fields). It is not
// safe for concurrent use: the subscriber's MQTT handler owns one.
type Decoder struct {
	lim     Limits
	intern  interner
	metrics []rawMetric
	fields  []telemetry.Field
	idx     []int32
	// DecodeSenML's scratch: where each record starts, the pack's distinct
	// times, and each record's field with the index of its time.
	senRecs   []int
	senTimes  []time.Time
	senFields []senmlField
}

// internMax bounds the interner: past it, strings are allocated per message.
const internMax = 1 << 14

type rawMetric struct {
	name []byte // the name's JSON literal, quotes included
	esc  bool   // the name has escapes
	val  []byte // the value's JSON text
}

// NewDecoder returns a Decoder applying lim.
func NewDecoder(lim Limits) *Decoder {
	return &Decoder{lim: lim, intern: interner{max: internMax}}
}

// Decode decodes a telemetry payload in format f.
func (d *Decoder) Decode(f Format, device telemetry.DeviceID, payload []byte, received time.Time) ([]telemetry.Reading, error) {
	switch f {
	case FormatJSON, "":
		r, err := d.DecodeJSON(device, payload, received)
		if err != nil {
			return nil, err
		}
		return []telemetry.Reading{r}, nil
	case FormatLineProto:
		return d.DecodeLineProto(device, payload, received)
	case FormatSenML:
		return d.DecodeSenML(device, payload, received)
	}
	return nil, reject(ReasonBadTopic, "unknown payload format %q", f)
}

// DecodeJSON decodes one JSON telemetry payload from device, received at
// received, into a Reading. Every rejection is a *DecodeError.
//
//	{"ts": "2026-11-22T15:30:00Z", "model": "heatpump-a2", "fw": "1.4.2",
//	 "metrics": {"supply_temp_c": 12.1, "defrost": false}}
//
// ts is optional: RFC 3339, or a JSON number of epoch seconds, milliseconds,
// microseconds or nanoseconds told apart by magnitude; absent means received.
// Unknown top-level keys are ignored (after a syntax check) so firmware can
// add fields; of a key given twice, the last counts, and so does the last of
// a metric given twice.
func DecodeJSON(device telemetry.DeviceID, payload []byte, received time.Time, lim Limits) (telemetry.Reading, error) {
	d := Decoder{lim: lim}
	return d.DecodeJSON(device, payload, received)
}

// DecodeJSON is the function DecodeJSON with d's limits and scratch space.
func (d *Decoder) DecodeJSON(device telemetry.DeviceID, payload []byte, received time.Time) (telemetry.Reading, error) {
	lim := d.lim
	if len(payload) > lim.MaxPayloadBytes {
		return telemetry.Reading{}, reject(ReasonTooLarge, "%d bytes, limit %d", len(payload), lim.MaxPayloadBytes)
	}
	b := payload
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return telemetry.Reading{}, reject(ReasonMalformed, "payload is not a JSON object")
	}
	// Phase 1: syntax, and where the keys we know are.
	var ts, devID, model, fw, seq, metricsRaw []byte
	metricsObj := false
	d.metrics = d.metrics[:0]
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return telemetry.Reading{}, malformedAt(i)
			}
			j, esc := scanString(b, i)
			if j < 0 {
				return telemetry.Reading{}, malformedAt(i)
			}
			key, ok := unquote(b[i:j], esc)
			if !ok {
				return telemetry.Reading{}, malformedAt(i)
			}
			i = skipSpace(b, j)
			if i >= len(b) || b[i] != ':' {
				return telemetry.Reading{}, malformedAt(i)
			}
			i = skipSpace(b, i+1)
			start := i
			if string(key) == "metrics" && i < len(b) && b[i] == '{' {
				if j = d.scanMetrics(b, i); j < 0 {
					return telemetry.Reading{}, malformedAt(i)
				}
				metricsObj, metricsRaw = true, nil
			} else {
				if j = skipValue(b, i, 1); j < 0 {
					return telemetry.Reading{}, malformedAt(i)
				}
				switch string(key) {
				case "ts":
					ts = b[start:j]
				case "device_id":
					devID = b[start:j]
				case "model":
					model = b[start:j]
				case "fw":
					fw = b[start:j]
				case "seq":
					seq = b[start:j]
				case "metrics":
					metricsObj, metricsRaw = false, b[start:j]
					d.metrics = d.metrics[:0]
				}
			}
			i = skipSpace(b, j)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return telemetry.Reading{}, malformedAt(i)
		}
	}
	if i = skipSpace(b, i); i != len(b) {
		return telemetry.Reading{}, reject(ReasonMalformed, "invalid JSON: data after the object at offset %d", i)
	}

	// Phase 2: meaning.
	r := telemetry.Reading{Device: device, At: received}
	if id, ok, err := jsonString(devID, "device_id", telemetry.MaxDeviceIDLen); err != nil {
		return telemetry.Reading{}, err
	} else if ok && string(id) != string(device) {
		return telemetry.Reading{}, reject(ReasonDeviceMismatch, "payload device_id %q, topic device %q", id, device)
	}
	if m, ok, err := jsonString(model, "model", maxAttrLen); err != nil {
		return telemetry.Reading{}, err
	} else if ok {
		if !validID(m) { // models share the device id charset: they become a tag
			return telemetry.Reading{}, reject(ReasonBadAttribute, "model %q: want 1 to %d characters of [A-Za-z0-9._:-]", m, maxAttrLen)
		}
		r.Model = d.str(m)
	}
	if v, ok, err := jsonString(fw, "fw", maxAttrLen); err != nil {
		return telemetry.Reading{}, err
	} else if ok {
		if err := checkFirmware(v); err != nil {
			return telemetry.Reading{}, err
		}
		r.Firmware = d.str(v)
	}
	if len(seq) > 0 && string(seq) != "null" {
		n, ok := parseUint(seq)
		if !ok || n == 0 || n > 1<<53 {
			return telemetry.Reading{}, reject(ReasonBadType, "seq: want an integer from 1 to 2^53, got %.32s", seq)
		}
		r.Seq = n
	}
	if len(ts) > 0 && string(ts) != "null" {
		at, err := parseJSONTS(ts)
		if err != nil {
			return telemetry.Reading{}, err
		}
		r.At = at
	}
	if err := checkSkew(r.At, received, lim); err != nil {
		return telemetry.Reading{}, err
	}
	if !metricsObj && len(metricsRaw) > 0 && string(metricsRaw) != "null" {
		return telemetry.Reading{}, reject(ReasonBadType, "metrics: want a JSON object, got %.32s", metricsRaw)
	}
	if len(d.metrics) == 0 {
		return telemetry.Reading{}, reject(ReasonNoMetrics, "metrics is missing or empty")
	}
	if len(d.metrics) > lim.MaxMetrics {
		return telemetry.Reading{}, reject(ReasonTooManyMetrics, "%d metrics, limit %d", len(d.metrics), lim.MaxMetrics)
	}
	d.fields = d.fields[:0]
	for _, m := range d.metrics {
		name, ok := unquote(m.name, m.esc)
		if !ok {
			return telemetry.Reading{}, reject(ReasonMalformed, "invalid JSON: metric name %.40s", m.name)
		}
		if err := checkMetricNameBytes(name); err != nil {
			return telemetry.Reading{}, err
		}
		f, err := parseJSONValue(name, m.val)
		if err != nil {
			return telemetry.Reading{}, err
		}
		f.Name = d.str(name)
		d.fields = append(d.fields, f)
	}
	if err := d.checkRange(d.fields); err != nil {
		return telemetry.Reading{}, err
	}
	r.Fields = d.sortedFields(d.fields)
	r.At = r.At.UTC()
	return r, nil
}

// sortedFields returns a new slice of fs sorted by name, keeping the last
// of fields with the same name. Fields already in order are copied as they
// are; others are sorted through an index slice (ints move, not strings).
func (d *Decoder) sortedFields(fs []telemetry.Field) []telemetry.Field {
	sorted := true
	for i := 1; i < len(fs); i++ {
		if fs[i-1].Name >= fs[i].Name {
			sorted = false
			break
		}
	}
	if sorted {
		return slices.Clone(fs)
	}
	if len(fs) <= 32 {
		// Few fields: insert each into place in the result.
		out := make([]telemetry.Field, 0, len(fs))
		for _, f := range fs {
			j := len(out)
			for j > 0 && out[j-1].Name > f.Name {
				j--
			}
			if j > 0 && out[j-1].Name == f.Name {
				out[j-1] = f // a later one of the same name wins
				continue
			}
			out = slices.Insert(out, j, f)
		}
		return out
	}
	d.idx = d.idx[:0]
	for i := range fs {
		d.idx = append(d.idx, int32(i))
	}
	slices.SortFunc(d.idx, func(a, b int32) int {
		if c := strings.Compare(fs[a].Name, fs[b].Name); c != 0 {
			return c
		}
		return int(a - b)
	})
	n := 0
	for k, i := range d.idx {
		if k+1 < len(d.idx) && fs[d.idx[k+1]].Name == fs[i].Name {
			continue // a later one of the same name wins
		}
		n++
	}
	out := make([]telemetry.Field, 0, n)
	for k, i := range d.idx {
		if k+1 < len(d.idx) && fs[d.idx[k+1]].Name == fs[i].Name {
			continue
		}
		out = append(out, fs[i])
	}
	return out
}

func malformedAt(i int) error {
	return reject(ReasonMalformed, "invalid JSON at offset %d", i)
}

// str returns b as a string, interned when d has an interner.
func (d *Decoder) str(b []byte) string {
	if d.intern.max == 0 {
		return string(b)
	}
	return d.intern.get(b)
}

// scanMetrics scans the metrics object at b[i] == '{' into d.metrics and
// returns the index after it, or -1 on a syntax error.
func (d *Decoder) scanMetrics(b []byte, i int) int {
	d.metrics = d.metrics[:0]
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		j, esc := scanString(b, i)
		if j < 0 {
			return -1
		}
		name := b[i:j]
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = skipSpace(b, i+1)
		start := i
		if i = skipValue(b, i, 2); i < 0 {
			return -1
		}
		d.metrics = append(d.metrics, rawMetric{name: name, esc: esc, val: b[start:i]})
		i = skipSpace(b, i)
		if i >= len(b) {
			return -1
		}
		if b[i] == '}' {
			return i + 1
		}
		if b[i] != ',' {
			return -1
		}
		i = skipSpace(b, i+1)
	}
}

// jsonString interprets raw (a JSON value, or empty when the key was absent)
// as an optional string of at most maxLen bytes.
func jsonString(raw []byte, key string, maxLen int) ([]byte, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	if raw[0] != '"' {
		return nil, false, reject(ReasonBadType, "%s: want a string, got %.32s", key, raw)
	}
	_, esc := scanString(raw, 0)
	s, ok := unquote(raw, esc)
	if !ok {
		return nil, false, reject(ReasonMalformed, "%s: invalid JSON string", key)
	}
	if len(s) > maxLen {
		return nil, false, reject(ReasonBadAttribute, "%s: %d bytes, limit %d", key, len(s), maxLen)
	}
	return s, true, nil
}

// validID reports whether b is 1 to 128 bytes of [A-Za-z0-9._:-].
func validID(b []byte) bool {
	if len(b) == 0 || len(b) > telemetry.MaxDeviceIDLen {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func checkFirmware(b []byte) error {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return reject(ReasonBadAttribute, "fw contains control characters")
		}
	}
	if !utf8.Valid(b) {
		return reject(ReasonBadAttribute, "fw is not valid UTF-8")
	}
	return nil
}

func parseJSONValue(name, raw []byte) (telemetry.Field, error) {
	switch {
	case string(raw) == "true":
		return telemetry.Field{Value: 1, IsBool: true}, nil
	case string(raw) == "false":
		return telemetry.Field{Value: 0, IsBool: true}, nil
	case len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'):
		v, ok := parseFloat(raw)
		if !ok {
			return telemetry.Field{}, reject(ReasonNonFinite, "metric %q: %.40s is not a finite float64", name, raw)
		}
		return telemetry.Field{Value: v}, nil
	}
	return telemetry.Field{}, reject(ReasonBadType, "metric %q: want a number or a boolean, got %.40s", name, raw)
}

// parseJSONTS parses ts (a JSON value) without allocating in the common
// forms: an RFC 3339 string without escapes, or an integer epoch.
func parseJSONTS(raw []byte) (time.Time, error) {
	if raw[0] == '"' {
		if _, esc := scanString(raw, 0); !esc {
			s := raw[1 : len(raw)-1]
			t, _, ok := parseRFC3339(s)
			if !ok {
				return time.Time{}, reject(ReasonBadTimestamp, "ts %.40q is not RFC 3339", s)
			}
			if t.Unix() < minEpoch {
				return time.Time{}, reject(ReasonBadTimestamp, "ts %.40q is before 1973-03-03 (a clock that was never set)", s)
			}
			return t, nil
		}
		return parseTS(raw)
	}
	if n, ok := parseUint(raw); ok {
		if n >= 1e17 {
			if n > math.MaxInt64 {
				return time.Time{}, reject(ReasonBadTimestamp, "ts %.40s is out of range", raw)
			}
			return time.Unix(0, int64(n)), nil
		}
		return epochTime(float64(n), int64(n), raw)
	}
	return parseTS(raw)
}

// epochTime applies the magnitude rule to an epoch number v (exact is v as
// an integer, for nanoseconds).
func epochTime(v float64, exact int64, raw []byte) (time.Time, error) {
	if v < minEpoch { // a clock that was never set
		return time.Time{}, reject(ReasonBadTimestamp, "ts %.40s is not a plausible epoch time", raw)
	}
	switch {
	case v < 1e11:
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))), nil
	case v < 1e14:
		return time.UnixMilli(int64(v)), nil
	case v < 1e17:
		return time.UnixMicro(int64(v)), nil
	}
	return time.Unix(0, exact), nil
}

func optionalString(raw json.RawMessage, key string, maxLen int) (string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, reject(ReasonBadType, "%s: want a string, got %.32s", key, raw)
	}
	if len(s) > maxLen {
		return "", false, reject(ReasonBadAttribute, "%s: %d bytes, limit %d", key, len(s), maxLen)
	}
	return s, true, nil
}

// checkMetricName allows 1 to 128 bytes of [A-Za-z0-9._:-] not starting
// with '_' (InfluxDB reserves _field, _measurement, _time, …).
func checkMetricName(name string) error {
	if name == "" || len(name) > maxMetricNameLen {
		return reject(ReasonBadMetricName, "metric name %.40q: want 1 to %d characters", name, maxMetricNameLen)
	}
	if name[0] == '_' {
		return reject(ReasonBadMetricName, "metric name %q: must not start with '_'", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == ':') {
			return reject(ReasonBadMetricName, "metric name %q: character %q is not in [A-Za-z0-9._:-]", name, c)
		}
	}
	return nil
}

// checkMetricNameBytes is checkMetricName without converting name.
func checkMetricNameBytes(name []byte) error {
	if len(name) == 0 || len(name) > maxMetricNameLen || name[0] == '_' {
		return checkMetricName(string(name))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == ':') {
			return checkMetricName(string(name))
		}
	}
	return nil
}

// minEpoch is the earliest plausible event time, 1973-03-03T09:46:40Z (1e8
// seconds): earlier stamps come from clocks that were never set, and from
// it on the magnitude rule below is unambiguous (its nanoseconds are at
// least 1e17).
const minEpoch = 1e8

// Epoch magnitudes: a number below 1e11 is seconds (up to the year 5138),
// below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
func parseTS(raw json.RawMessage) (time.Time, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, reject(ReasonBadTimestamp, "ts: %v", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s) // RFC 3339 section 5.6
		if err != nil {
			return time.Time{}, reject(ReasonBadTimestamp, "ts %.40q is not RFC 3339", s)
		}
		if t.Unix() < minEpoch {
			return time.Time{}, reject(ReasonBadTimestamp, "ts %.40q is before 1973-03-03 (a clock that was never set)", s)
		}
		return t, nil
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return time.Time{}, reject(ReasonBadTimestamp, "ts: want an RFC 3339 string or epoch number, got %.40s", raw)
	}
	if v >= 1e17 && v < math.MaxInt64 {
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return time.Unix(0, n), nil // exact, where float64 would round
		}
		return time.Unix(0, int64(v)), nil
	}
	if v >= math.MaxInt64 {
		return time.Time{}, reject(ReasonBadTimestamp, "ts %.40s is out of range", raw)
	}
	return epochTime(v, int64(v), raw)
}

// Decode decodes a telemetry payload in format f with a fresh Decoder.
func Decode(f Format, device telemetry.DeviceID, payload []byte, received time.Time, lim Limits) ([]telemetry.Reading, error) {
	d := Decoder{lim: lim}
	return d.Decode(f, device, payload, received)
}

var allReasons = []Reason{
	ReasonTooLarge, ReasonMalformed, ReasonBadType, ReasonNonFinite, ReasonNoMetrics, ReasonTooManyMetrics,
	ReasonBadMetricName, ReasonBadTimestamp, ReasonFutureTS, ReasonStaleTS, ReasonBadDeviceID,
	ReasonDeviceMismatch, ReasonBadTopic, ReasonBadAttribute, ReasonOutOfRange, ReasonUnknownDevice,
}

// checkRange applies max_abs_value to the fields.
func (d *Decoder) checkRange(fs []telemetry.Field) error {
	if d.lim.MaxAbsValue <= 0 {
		return nil
	}
	for _, f := range fs {
		if math.Abs(f.Value) > d.lim.MaxAbsValue {
			return reject(ReasonOutOfRange, "metric %q: %g is beyond max_abs_value %g", f.Name, f.Value, d.lim.MaxAbsValue)
		}
	}
	return nil
}
