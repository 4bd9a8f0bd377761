package notify

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ticketing"
)

func TestParseClock(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"00:00", 0, true}, {"07:30", 450, true}, {"23:59", 1439, true},
		{"24:00", 0, false}, {"7:30", 0, false}, {"07:60", 0, false}, {"", 0, false}, {"-1:00", 0, false}, {"+1:00", 0, false}, {"07-30", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseClock(tc.in)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestQuietUntil(t *testing.T) {
	paris := "Europe/Paris" // UTC+1 in November
	night := &ticketing.QuietHours{Start: "22:00", End: "07:00"}
	day := &ticketing.QuietHours{Start: "12:00", End: "14:00"}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		name  string
		now   string
		tz    string
		q     *ticketing.QuietHours
		quiet bool
		until string
	}{
		{"none", "2026-11-22T03:00:00Z", paris, nil, false, ""},
		{"evening spans midnight", "2026-11-22T22:30:00Z", paris, night, true, "2026-11-23T06:00:00Z"},
		{"after midnight", "2026-11-23T02:00:00Z", paris, night, true, "2026-11-23T06:00:00Z"},
		{"start is quiet", "2026-11-22T21:00:00Z", paris, night, true, "2026-11-23T06:00:00Z"},
		{"end is not quiet", "2026-11-23T06:00:00Z", paris, night, false, ""},
		{"daytime", "2026-11-22T15:00:00Z", paris, night, false, ""},
		{"same-day window", "2026-11-22T12:30:00Z", "UTC", day, true, "2026-11-22T14:00:00Z"},
		{"unknown zone is UTC", "2026-11-22T12:30:00Z", "Mars/Olympus", day, true, "2026-11-22T14:00:00Z"},
		{"malformed hours are none", "2026-11-22T23:00:00Z", paris, &ticketing.QuietHours{Start: "late", End: "07:00"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			until, quiet := QuietUntil(at(tc.now), tc.tz, tc.q)
			require.Equal(t, tc.quiet, quiet)
			if tc.quiet {
				require.Equal(t, at(tc.until), until.UTC())
			}
		})
	}
}

func TestLocalDay(t *testing.T) {
	now := time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC)
	require.Equal(t, "2026-11-23", LocalDay(now, "Europe/Paris"))
	require.Equal(t, "2026-11-22", LocalDay(now, "UTC"))
	require.Equal(t, time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC), NextLocalDay(now, "Europe/Paris").UTC())
}

func TestBackoff(t *testing.T) {
	lo, hi := func() float64 { return 0 }, func() float64 { return 0.999999 }
	for _, tc := range []struct {
		attempt int
		min     time.Duration
		max     time.Duration
	}{
		{1, 5 * time.Second, 10 * time.Second},
		{2, 10 * time.Second, 20 * time.Second},
		{3, 20 * time.Second, 40 * time.Second},
		{10, 30 * time.Second, time.Minute}, // capped
	} {
		require.Equal(t, tc.min, Backoff(tc.attempt, 10*time.Second, time.Minute, lo), "attempt %d", tc.attempt)
		require.InDelta(t, float64(tc.max), float64(Backoff(tc.attempt, 10*time.Second, time.Minute, hi)), float64(time.Millisecond), "attempt %d", tc.attempt)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Sun, 22 Nov 2026 12:01:30 GMT", 90 * time.Second, true},
		{"Sun, 22 Nov 2026 11:00:00 GMT", 0, true}, // in the past
		{"99999999999999999999999", 24 * time.Hour, true},
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ParseRetryAfter(tc.in, now)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseClock(f *testing.F) {
	for _, s := range []string{"22:00", "07:30", "24:00", "7:3", "", "ab:cd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseClock(s)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, m, 0)
		require.Less(t, m, 24*60)
		require.Len(t, s, 5)
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Sun, 22 Nov 2026 12:01:30 GMT", "-1", "", "1e3"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if !ok {
			require.Zero(t, d)
			return
		}
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, 24*time.Hour)
	})
}
