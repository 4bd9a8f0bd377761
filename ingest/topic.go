package ingest

import (
	"fmt"
	"strings"

	"github.com/forewarn/forewarn/telemetry"
)

// TopicKind is what a device topic carries: the last level of
// {prefix}/{device_id}/{kind}.
type TopicKind uint8

// Topic kinds (DESIGN "Device contract").
const (
	TopicTelemetry TopicKind = iota + 1 // readings
	TopicEvents                         // device events and fault codes
	TopicStatus                         // online / offline, retained, the Last Will
)

func (k TopicKind) String() string {
	switch k {
	case TopicTelemetry:
		return "telemetry"
	case TopicEvents:
		return "events"
	case TopicStatus:
		return "status"
	}
	return fmt.Sprintf("TopicKind(%d)", int(k))
}

// Filters returns the subscription filters: {prefix}/+/telemetry/# (the
// optional last level names the payload format), {prefix}/+/events and
// {prefix}/+/status, each as $share/{group}/… with a shared group (MQTT 5
// section 4.8.2; Mosquitto honours it on 3.1.1 too).
func Filters(cfg MQTTConfig) []string {
	fs := []string{
		cfg.TopicPrefix + "/+/telemetry/#",
		cfg.TopicPrefix + "/+/events",
		cfg.TopicPrefix + "/+/status",
	}
	if cfg.SharedGroup != "" {
		for i, f := range fs {
			fs[i] = "$share/" + cfg.SharedGroup + "/" + f
		}
	}
	return fs
}

// TelemetryFilter returns the telemetry subscription filter (see Filters).
func TelemetryFilter(cfg MQTTConfig) string { return Filters(cfg)[0] }

// ParseTopic splits a device topic into the device id, the kind, and for
// telemetry the format named by an optional last level
// ({prefix}/{id}/telemetry/lp); def is the format without one.
func ParseTopic(prefix, topic string, def Format) (telemetry.DeviceID, TopicKind, Format, error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", 0, "", reject(ReasonBadTopic, "topic %.200q is not under prefix %q", topic, prefix)
	}
	id, kindS, ok := strings.Cut(rest, "/")
	if !ok {
		return "", 0, "", reject(ReasonBadTopic, "topic %.200q is not %s/{device_id}/{telemetry|events|status}", topic, prefix)
	}
	kindS, formatS, hasFormat := strings.Cut(kindS, "/")
	var kind TopicKind
	format := def
	switch kindS {
	case "telemetry":
		kind = TopicTelemetry
		if hasFormat {
			f, err := ParseFormat(formatS)
			if err != nil {
				return "", 0, "", reject(ReasonBadTopic, "topic %.200q: %v", topic, err)
			}
			format = f
		}
	case "events":
		kind = TopicEvents
	case "status":
		kind = TopicStatus
	default:
		return "", 0, "", reject(ReasonBadTopic, "topic %.200q is not %s/{device_id}/{telemetry|events|status}", topic, prefix)
	}
	if hasFormat && kind != TopicTelemetry {
		return "", 0, "", reject(ReasonBadTopic, "topic %.200q has levels after %q", topic, kindS)
	}
	dev, err := telemetry.ParseDeviceID(id)
	if err != nil {
		return "", 0, "", &DecodeError{Reason: ReasonBadDeviceID, Err: fmt.Errorf("topic %.200q: %w", topic, err)}
	}
	return dev, kind, format, nil
}

// DeviceFromTopic returns the device id of a {prefix}/{device_id}/telemetry topic.
func DeviceFromTopic(prefix, topic string) (telemetry.DeviceID, error) {
	dev, kind, _, err := ParseTopic(prefix, topic, FormatJSON)
	if err != nil {
		return "", err
	}
	if kind != TopicTelemetry {
		return "", reject(ReasonBadTopic, "topic %.200q is not %s/{device_id}/telemetry", topic, prefix)
	}
	return dev, nil
}

// Format is a telemetry payload format.
type Format string

// Payload formats: the ingest.format key, or the topic's last level.
const (
	FormatJSON      Format = "json"  // the JSON payload of the device contract
	FormatLineProto Format = "lp"    // InfluxDB line protocol
	FormatSenML     Format = "senml" // SenML JSON, RFC 8428
)

// ParseFormat parses "json", "lp" or "senml".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatLineProto, FormatSenML:
		return f, nil
	}
	return "", fmt.Errorf("format %q is not one of json, lp, senml", s)
}
