package httpapi

import (
	"math"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleContrast keeps the stylesheet's text colours at a contrast
// ratio of at least 4.5:1 on their backgrounds (WCAG 2.2, 1.4.3).
func TestConsoleContrast(t *testing.T) {
	css, err := webFS.ReadFile("web/static/console.css")
	require.NoError(t, err)
	vars := map[string]string{"#fff": "#ffffff"}
	for _, m := range regexp.MustCompile(`--([a-z]+):\s*(#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars["--"+m[1]] = m[2]
	}
	for _, tc := range []struct{ fg, bg string }{
		{"--fg", "--bg"}, {"--muted", "--bg"}, {"--muted", "--panel"}, {"--link", "--bg"}, {"--fg", "--panel"},
		{"#fff", "--crit"}, {"#fff", "--major"}, {"#fff", "--minor"}, {"#fff", "--info"}, {"#fff", "--link"},
		{"--crit", "--bg"}, {"--major", "--bg"}, {"--ok", "--bg"}, {"--ok", "#e6f4ea"}, {"#fff", "#16213a"}, {"#d5dbe8", "#16213a"},
	} {
		t.Run(tc.fg+" on "+tc.bg, func(t *testing.T) {
			fg, bg := color(t, vars, tc.fg), color(t, vars, tc.bg)
			require.GreaterOrEqual(t, contrast(fg, bg), 4.5)
		})
	}
}

func color(t *testing.T, vars map[string]string, name string) string {
	if v, ok := vars[name]; ok {
		return v
	}
	require.Regexp(t, `^#[0-9a-f]{6}$`, name, "unknown colour %s", name)
	return name
}

// contrast is the WCAG contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(hex string) float64 {
	ch := func(i int) float64 {
		v, _ := strconv.ParseUint(hex[i:i+2], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(1) + 0.7152*ch(3) + 0.0722*ch(5)
}
