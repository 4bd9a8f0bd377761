package ingest

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// This file holds the allocation-free pieces the decoders share: a JSON
// syntax scanner (RFC 8259), a float parser with the exact fast path, an
// RFC 3339 parser for the common form, and a bounded string interner.

// maxJSONDepth bounds nesting in skipped values.
const maxJSONDepth = 512

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanString scans the JSON string starting at b[i] == '"'. It returns the
// index after the closing quote and whether the string has escapes; -1 when
// the string is not valid JSON (unterminated, a control character, or a bad
// escape).
func scanString(b []byte, i int) (int, bool) {
	i++ // opening quote
	esc := false
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return -1, esc
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return -1, esc
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1, esc
					}
				}
				i += 6
			default:
				return -1, esc
			}
		case c < 0x20:
			return -1, esc
		default:
			i++
		}
	}
	return -1, esc
}

// scanNumber scans a JSON number at b[i]; -1 when it is not one.
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return -1
		}
	}
	return i
}

func hasPrefixAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// skipValue scans any JSON value at b[i] (after whitespace) and returns the
// index after it, or -1 when it is not valid JSON.
func skipValue(b []byte, i, depth int) int {
	i = skipSpace(b, i)
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		j, _ := scanString(b, i)
		return j
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return -1
		}
		obj := c == '{'
		end := byte(']')
		if obj {
			end = '}'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1
		}
		for {
			if obj {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i, _ = scanString(b, i); i < 0 {
					return -1
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return -1
				}
				i++
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == end {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		if hasPrefixAt(b, i, "true") {
			return i + 4
		}
	case c == 'f':
		if hasPrefixAt(b, i, "false") {
			return i + 5
		}
	case c == 'n':
		if hasPrefixAt(b, i, "null") {
			return i + 4
		}
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	}
	return -1
}

// unquote returns the contents of a valid JSON string literal s (quotes
// included); esc says whether it has escapes, which take the slow path.
func unquote(s []byte, esc bool) ([]byte, bool) {
	if !esc {
		return s[1 : len(s)-1], true
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return nil, false
	}
	return []byte(out), true
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat parses a number valid in JSON or line protocol syntax. Decimals
// of at most 15 significant digits and a power of ten up to 22 are exact in
// float64 arithmetic (Clinger's fast path) and allocate nothing; anything
// else goes through strconv.ParseFloat. ok is false for a value that is not
// finite.
func parseFloat(b []byte) (float64, bool) {
	i := 0
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if mant == 0 && b[i] == '0' {
			continue // leading zeros are not significant
		}
		mant = mant*10 + uint64(b[i]-'0')
		digits++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if mant == 0 && b[i] == '0' {
				exp--
				continue
			}
			mant = mant*10 + uint64(b[i]-'0')
			digits++
			exp--
		}
	}
	if i == len(b) && digits <= 15 {
		f := float64(mant)
		switch {
		case exp == 0:
		case exp < 0 && exp >= -22:
			f /= pow10[-exp]
		case exp > 0 && exp <= 22:
			f *= pow10[exp]
		default:
			goto slow
		}
		if neg {
			f = -f
		}
		return f, true
	}
slow:
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// parseUint parses up to 19 decimal digits; false for anything else.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func num2(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm) without
// allocating; other spellings that time.Parse accepts as RFC 3339 take the
// slow path, so the result is always the instant time.Parse(time.RFC3339Nano)
// gives (RFC 3339 section 5.6). year is the year as written, before any
// offset is applied.
func parseRFC3339(s []byte) (t time.Time, year int, ok bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return slowRFC3339(s)
	}
	y1, ok1 := num2(s[0:2])
	y2, ok2 := num2(s[2:4])
	mo, ok3 := num2(s[5:7])
	d, ok4 := num2(s[8:10])
	h, ok5 := num2(s[11:13])
	mi, ok6 := num2(s[14:16])
	sec, ok7 := num2(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return slowRFC3339(s)
	}
	y := y1*100 + y2
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return slowRFC3339(s)
	}
	i := 19
	nsec := 0
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < 9 {
			nsec = nsec*10 + int(s[i]-'0')
			i++
		}
		n := i - start
		if n == 0 || i < len(s) && s[i] >= '0' && s[i] <= '9' {
			return slowRFC3339(s)
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	var loc *time.Location
	switch rest := s[i:]; {
	case len(rest) == 1 && rest[0] == 'Z':
		loc = time.UTC
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num2(rest[1:3])
		om, ok2 := num2(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return slowRFC3339(s)
		}
		off := oh*3600 + om*60
		if rest[0] == '-' {
			off = -off
		}
		t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC).Add(-time.Duration(off) * time.Second)
		return t, y, true // the caller converts to UTC; the zone does not matter
	default:
		return slowRFC3339(s)
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, nsec, loc), y, true
}

func slowRFC3339(s []byte) (time.Time, int, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(s))
	return t, t.Year(), err == nil
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// interner hands out one string per distinct byte sequence, up to max
// entries, so metric names, models and firmware versions (few distinct
// values, repeated in every message) cost no allocation. Not safe for
// concurrent use.
type interner struct {
	m   map[string]string
	max int
}

func (n *interner) get(b []byte) string {
	if s, ok := n.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	return n.getString(string(b))
}

// getString is get for a string already made.
func (n *interner) getString(s string) string {
	if n.max == 0 {
		return s
	}
	if v, ok := n.m[s]; ok {
		return v
	}
	if n.m == nil {
		n.m = make(map[string]string)
	}
	if len(n.m) < n.max {
		n.m[s] = s
	}
	return s
}
