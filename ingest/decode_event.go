package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forewarn/forewarn/telemetry"
)

const (
	maxEventCodeLen    = 64
	maxEventMessageLen = 1024
)

// DecodeEvent decodes a {prefix}/{device_id}/events payload (see
// telemetry.DeviceEvent): {"ts": …, "code": "E42", "message": "…"}. ts
// follows the telemetry rules and limits; code is required.
func DecodeEvent(device telemetry.DeviceID, payload []byte, received time.Time, lim Limits) (telemetry.DeviceEvent, error) {
	if len(payload) > lim.MaxPayloadBytes {
		return telemetry.DeviceEvent{}, reject(ReasonTooLarge, "%d bytes, limit %d", len(payload), lim.MaxPayloadBytes)
	}
	var p struct {
		TS      json.RawMessage `json:"ts"`
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return telemetry.DeviceEvent{}, reject(ReasonMalformed, "event payload is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, &p); err != nil {
		return telemetry.DeviceEvent{}, reject(ReasonMalformed, "invalid JSON: %v", err)
	}
	e := telemetry.DeviceEvent{Device: device, At: received}
	code, ok, err := optionalString(p.Code, "code", maxEventCodeLen)
	if err != nil {
		return telemetry.DeviceEvent{}, err
	}
	if !ok || code == "" {
		return telemetry.DeviceEvent{}, reject(ReasonBadAttribute, "code is required")
	}
	if _, err := telemetry.ParseDeviceID(code); err != nil { // same charset: it becomes a tag
		return telemetry.DeviceEvent{}, reject(ReasonBadAttribute, "code %q: want 1 to %d characters of [A-Za-z0-9._:-]", code, maxEventCodeLen)
	}
	e.Code = code
	if e.Message, _, err = optionalString(p.Message, "message", maxEventMessageLen); err != nil {
		return telemetry.DeviceEvent{}, err
	}
	if !utf8.ValidString(e.Message) || strings.IndexFunc(e.Message, func(c rune) bool { return c < 0x20 && c != '\n' || c == 0x7f }) >= 0 {
		return telemetry.DeviceEvent{}, reject(ReasonBadAttribute, "message contains control characters or invalid UTF-8")
	}
	if len(p.TS) > 0 && string(p.TS) != "null" {
		at, err := parseTS(p.TS)
		if err != nil {
			return telemetry.DeviceEvent{}, err
		}
		e.At = at
	}
	if err := checkSkew(e.At, received, lim); err != nil {
		return telemetry.DeviceEvent{}, err
	}
	e.At = e.At.UTC()
	return e, nil
}

// DecodeStatus decodes a {prefix}/{device_id}/status payload: "online" or
// "offline" (case-insensitive, surrounding space ignored), or JSON
// {"status": "online"}. An empty payload is a retained status being cleared:
// it is rejected as no_metrics so nothing downstream sees it.
func DecodeStatus(device telemetry.DeviceID, payload []byte, received time.Time) (telemetry.StatusChange, error) {
	s := bytes.TrimSpace(payload)
	if len(s) == 0 {
		return telemetry.StatusChange{}, reject(ReasonNoMetrics, "empty status (a retained status cleared)")
	}
	if len(s) > 256 {
		return telemetry.StatusChange{}, reject(ReasonTooLarge, "status payload of %d bytes", len(s))
	}
	if s[0] == '{' {
		var p struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(s, &p); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return telemetry.StatusChange{}, reject(ReasonBadType, "status: want a string")
			}
			return telemetry.StatusChange{}, reject(ReasonMalformed, "invalid JSON: %v", err)
		}
		s = []byte(p.Status)
	}
	st := telemetry.StatusChange{Device: device, At: received.UTC()}
	switch {
	case bytes.EqualFold(s, []byte("online")):
		st.Online = true
	case bytes.EqualFold(s, []byte("offline")):
	default:
		return telemetry.StatusChange{}, reject(ReasonMalformed, "status %.40q is not online or offline", s)
	}
	return st, nil
}

// checkSkew applies max_future_skew and max_age to an event time.
func checkSkew(at, received time.Time, lim Limits) error {
	if lim.MaxFutureSkew > 0 && at.Sub(received) > lim.MaxFutureSkew {
		return reject(ReasonFutureTS, "ts %s is %s ahead of the receive time, limit %s",
			at.Format(time.RFC3339Nano), at.Sub(received).Round(time.Second), lim.MaxFutureSkew)
	}
	if lim.MaxAge > 0 && received.Sub(at) > lim.MaxAge {
		return reject(ReasonStaleTS, "ts %s is older than max_age %s", at.Format(time.RFC3339Nano), lim.MaxAge)
	}
	return nil
}
