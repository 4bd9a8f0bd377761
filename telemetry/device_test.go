package telemetry

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseDeviceID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "hp-0001", true},
		{"all classes", "A.z_0:9-", true},
		{"max length", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", 129), false},
		{"slash", "a/b", false},
		{"plus wildcard", "a+", false},
		{"space", "a b", false},
		{"non ascii", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseDeviceID(tt.in)
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, DeviceID(tt.in), id)
				return
			}
			require.ErrorIs(t, err, ErrInvalidDeviceID)
		})
	}
}

func TestSeverityText(t *testing.T) {
	for _, s := range []Severity{SeverityInfo, SeverityMinor, SeverityMajor, SeverityCritical} {
		b, err := s.MarshalText()
		require.NoError(t, err)
		var got Severity
		require.NoError(t, got.UnmarshalText(b))
		require.Equal(t, s, got)
	}
	var s Severity
	err := s.UnmarshalText([]byte("severe"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "want info, minor, major or critical")
	_, err = Severity(0).MarshalText()
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrInvalidDeviceID))
}
