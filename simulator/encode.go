package simulator

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// EncodeJSON writes r as the device contract's JSON telemetry payload, with
// ts in RFC 3339 and fields in r's order. It allocates one buffer.
func EncodeJSON(r telemetry.Reading) []byte {
	b := make([]byte, 0, 96+32*len(r.Fields))
	b = append(b, `{"ts":"`...)
	b = r.At.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Model != "" {
		b = append(b, `,"model":`...)
		b = strconv.AppendQuote(b, r.Model)
	}
	if r.Firmware != "" {
		b = append(b, `,"fw":`...)
		b = strconv.AppendQuote(b, r.Firmware)
	}
	b = append(b, `,"metrics":{`...)
	for i, f := range r.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.Name) // metric names are [A-Za-z0-9._:-]: no JSON escaping differs
		b = append(b, ':')
		switch {
		case f.IsBool:
			b = strconv.AppendBool(b, f.Bool())
		default:
			b = strconv.AppendFloat(b, f.Value, 'g', -1, 64)
		}
	}
	return append(b, "}}"...)
}

// EncodeEvent writes ev as the events topic's JSON payload:
// {"ts": "...", "code": "E42", "message": "..."}.
func EncodeEvent(ev telemetry.DeviceEvent) []byte {
	b := make([]byte, 0, 64+len(ev.Code)+len(ev.Message))
	b = append(b, `{"ts":"`...)
	b = ev.At.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","code":`...)
	b = strconv.AppendQuote(b, ev.Code) // codes are [A-Za-z0-9._:-]
	if ev.Message != "" {
		b = append(b, `,"message":`...)
		m, _ := json.Marshal(ev.Message) // free text: JSON's escaping, not Go's
		b = append(b, m...)
	}
	return append(b, '}')
}
