package telemetry

import "time"

// A DeviceEvent is an event or fault code a device reported on
// {prefix}/{device_id}/events. Payload (JSON):
//
//	{"ts": "2026-11-22T15:30:00Z", "code": "E42", "message": "compressor overcurrent"}
//
// ts is optional as in telemetry; code is required: 1 to 64 characters of
// [A-Za-z0-9._:-]; message is optional free text for people.
type DeviceEvent struct {
	Device  DeviceID
	At      time.Time
	Code    string
	Message string
}

// A StatusChange is a device's online state from the retained
// {prefix}/{device_id}/status topic, which devices also set as their Last
// Will: the payload "online" or "offline" (or JSON {"status": "online"}).
type StatusChange struct {
	Device DeviceID
	At     time.Time // receive time: status payloads carry no timestamp
	Online bool
}
