package telemetry

import (
	"errors"
	"fmt"
)

// MaxDeviceIDLen is the longest device id the device contract allows.
const MaxDeviceIDLen = 128

// DeviceID identifies one connected product: 1 to 128 characters of
// [A-Za-z0-9._:-] (DESIGN "Device contract").
type DeviceID string

// ErrInvalidDeviceID is wrapped by every error ParseDeviceID returns.
var ErrInvalidDeviceID = errors.New("invalid device id")

// ParseDeviceID checks s against the device contract and returns it as a DeviceID.
func ParseDeviceID(s string) (DeviceID, error) {
	if len(s) == 0 {
		return "", fmt.Errorf("%w: empty", ErrInvalidDeviceID)
	}
	if len(s) > MaxDeviceIDLen {
		return "", fmt.Errorf("%w: %d characters, at most %d", ErrInvalidDeviceID, len(s), MaxDeviceIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !deviceIDChar(s[i]) {
			return "", fmt.Errorf("%w: character %q at offset %d is not in [A-Za-z0-9._:-]", ErrInvalidDeviceID, s[i], i)
		}
	}
	return DeviceID(s), nil
}

func deviceIDChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '.', c == '_', c == ':', c == '-':
		return true
	}
	return false
}

// A Sighting is a device that sent telemetry or events, with the model and
// firmware it reported (either may be empty): what ingest asks the
// registry to admit.
type Sighting struct {
	Device          DeviceID
	Model, Firmware string
}
