package notify

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/ticketing"
)

// ParseClock parses a local time of day "HH:MM" (00:00 to 23:59) into
// minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("clock %q: want HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || h[0] < '0' || h[0] > '9' || m[0] < '0' || m[0] > '9' || hh > 23 || mm > 59 || hh < 0 || mm < 0 {
		return 0, fmt.Errorf("clock %q: want HH:MM between 00:00 and 23:59", s)
	}
	return hh*60 + mm, nil
}

// location returns the customer's time zone, UTC when unknown.
func location(tz string) *time.Location {
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		return loc
	}
	return time.UTC
}

// atClock is the instant of local day d's minute-of-day m in loc (a
// clock time a DST change skips moves forward, as time.Date does).
func atClock(d time.Time, m int, loc *time.Location) time.Time {
	y, mo, day := d.In(loc).Date()
	return time.Date(y, mo, day, m/60, m%60, 0, 0, loc)
}

// QuietUntil reports whether now falls in the quiet hours q in time zone
// tz and, if so, when they end. Start after End spans midnight
// (22:00-07:00); malformed hours count as none.
func QuietUntil(now time.Time, tz string, q *ticketing.QuietHours) (time.Time, bool) {
	if q == nil {
		return time.Time{}, false
	}
	start, err1 := ParseClock(q.Start)
	end, err2 := ParseClock(q.End)
	if err1 != nil || err2 != nil || start == end {
		return time.Time{}, false
	}
	loc := location(tz)
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	switch {
	case start < end && m >= start && m < end: // 01:00-06:00
		return atClock(local, end, loc), true
	case start > end && m >= start: // 22:00-07:00, evening part: ends tomorrow
		return atClock(local.AddDate(0, 0, 1), end, loc), true
	case start > end && m < end: // morning part: ends today
		return atClock(local, end, loc), true
	}
	return time.Time{}, false
}

// LocalDay is the customer's calendar day of now, "2006-01-02": the
// daily cap counts per local day.
func LocalDay(now time.Time, tz string) string { return now.In(location(tz)).Format(time.DateOnly) }

// NextLocalDay is the start (00:00) of the customer's next local day: when
// the day's digest is due.
func NextLocalDay(now time.Time, tz string) time.Time {
	loc := location(tz)
	return atClock(now.In(loc).AddDate(0, 0, 1), 0, loc)
}

// Backoff is the wait before attempt+1 after attempt failed (attempt from
// 1): exponential from initial, capped at max, with "equal jitter" (a
// uniformly random wait between half and all of it), so retries of many
// rows after one outage spread out. r returns a float in [0, 1).
func Backoff(attempt int, initial, max time.Duration, r func() float64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	if r == nil {
		r = rand.Float64
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// maxRetryAfter bounds what a receiver's Retry-After can ask for.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads an HTTP Retry-After value (RFC 9110 section
// 10.2.3): delay-seconds or an HTTP-date, relative to now. ok is false
// for an empty or malformed value; the wait is capped at a day and never
// negative.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			if err != nil && strings.Trim(v, "0123456789") == "" {
				return maxRetryAfter, true // too many digits: a very long wait
			}
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	return min(max(d, 0), maxRetryAfter), true
}
