package telemetry

import "time"

// A Field is one metric of a Reading. Boolean metrics keep IsBool set and
// carry 1 (true) or 0 (false) in Value, so detectors can treat every field as
// a number while the InfluxDB writer stores booleans as booleans.
type Field struct {
	Name   string
	Value  float64
	IsBool bool
}

// Bool reports the field as a boolean (Value != 0).
func (f Field) Bool() bool { return f.Value != 0 }

// A Reading is one decoded, validated telemetry message from one device.
// Fields are sorted by Name and names are unique.
type Reading struct {
	Device   DeviceID
	Model    string    // device model, selects the detector profile; may be empty
	Firmware string    // firmware version as reported; may be empty
	At       time.Time // event time: the payload's ts, or the receive time when absent
	Seq      uint64    // the payload's optional per-device sequence number (1, 2, …); 0 = none
	Fields   []Field
}

// Field returns the named field and whether the reading has it.
func (r Reading) Field(name string) (Field, bool) {
	// Fields are few (tens at most); a linear scan beats a map here.
	for _, f := range r.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}
