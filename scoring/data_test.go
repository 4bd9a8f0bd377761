package scoring

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchData returns the folder with the NAB and SKAB DEV sets
// (../shared/data next to the repository, or $FOREWARN_BENCH_DATA), or
// skips the test when it is absent.
func benchData(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv("FOREWARN_BENCH_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	dir = filepath.Join(dir, sub)
	if _, err := os.Stat(filepath.Join(dir, "SCORING.md")); err != nil {
		t.Skipf("benchmark data not found at %s (set FOREWARN_BENCH_DATA to the folder holding nab/ and skab/): %v", dir, err)
	}
	return dir
}

// readCSV reads a whole CSV file with separator sep; the header is row 0.
func readCSV(t *testing.T, path string, sep rune) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comma = sep
	rows, err := cr.ReadAll()
	require.NoError(t, err)
	return rows
}

// parseStamp parses the benchmarks' naive timestamps.
func parseStamp(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02 15:04:05"} {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts
		}
	}
	t.Fatalf("bad timestamp %q", s)
	return time.Time{}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return v
}
