package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/config"
)

func TestReplayCommand(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	in := filepath.Join("..", "..", "replay", "testdata", "in")
	require.NoError(t, run(context.Background(), []string{"replay", "--input", in, "--out", out}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "replayed 2 files")
	for _, rel := range []string{"level_shift.csv", "sub/wide.csv"} {
		inRows := countLines(t, filepath.Join(in, rel))
		b, err := os.ReadFile(filepath.Join(out, rel))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Equal(t, "timestamp,anomaly_score,finding", lines[0])
		require.Len(t, lines, inRows, rel) // one line per input row, both with a header
	}
	f, err := os.Open(filepath.Join(out, "findings.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var fd struct {
			File, Fault, State string
			Evidence           struct{ Detector string }
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &fd))
		require.Contains(t, []string{"level_shift.csv", "sub/wide.csv"}, fd.File)
		require.Equal(t, "anomaly", fd.Evidence.Detector)
		require.Contains(t, []string{"raised", "cleared"}, fd.State)
	}
	require.Positive(t, n)
}

func TestReplayUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "replay needs --input (or --from) and --out"},
		{[]string{"replay", "--from", "2026-01-01T00:00:00Z", "--out", "y"}, "--from needs --config"},
		{[]string{"replay", "--input", "x", "--out", "y", "--score", "f1"}, `--score "f1": want nab or skab`},
		{[]string{"replay", "--input", "/nonexistent", "--out", "y"}, "input: "},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.ErrorContains(t, run(context.Background(), tt.args, &stdout, &stderr), tt.want)
		})
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return len(strings.Split(strings.TrimSpace(string(b)), "\n"))
}

// benchData returns ../shared/data/<sub> (or $FOREWARN_BENCH_DATA/<sub>),
// or skips the test when it is absent.
func benchData(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv("FOREWARN_BENCH_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	dir = filepath.Join(dir, sub)
	if _, err := os.Stat(filepath.Join(dir, "SCORING.md")); err != nil {
		t.Skipf("benchmark data not found at %s (set FOREWARN_BENCH_DATA to the folder holding nab/ and skab/): %v", dir, err)
	}
	return dir
}

var spaces = regexp.MustCompile(`\s{2,}`)

// TestReplayScoresInDocs replays the NAB and SKAB DEV sets with the auto
// profile and checks that docs/detection.md reports exactly these scores.
func TestReplayScoresInDocs(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "detection.md"))
	require.NoError(t, err)
	for _, tt := range []struct {
		name, set string
		tune      bool
		lines     []string // output lines whose numbers the docs must show
	}{
		{"nab", "nab", false, []string{"frozen threshold 0.5", "swept threshold (as NAB publishes)"}},
		{"skab", "skab", false, []string{"forewarn (auto)"}},
		{"nab tuned", "nab", true, []string{"frozen threshold 0.5", "swept threshold (as NAB publishes)"}},
		{"skab tuned", "skab", true, []string{"forewarn (tuned)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"replay", "--input", benchData(t, tt.set), "--out", t.TempDir(), "--score", tt.set}
			prefix := ""
			if tt.tune {
				if testing.Short() {
					t.Skip("tuning replays the set 12 times; skipped under -short")
				}
				args = append(args, "--tune", tt.set, "--write-config", filepath.Join(t.TempDir(), "frozen.yaml"))
				prefix = "tuned "
			}
			var stdout, stderr bytes.Buffer
			require.NoError(t, run(context.Background(), args, &stdout, &stderr))
			found := 0
			for line := range strings.Lines(stdout.String()) {
				cells := spaces.Split(strings.TrimSpace(line), -1)
				for _, label := range tt.lines {
					if cells[0] == label {
						if !strings.HasPrefix(label, "forewarn") {
							cells[0] = prefix + cells[0]
						}
						row := "| " + strings.Join(cells, " | ") + " |"
						require.Truef(t, strings.Contains(string(docs), row), "docs/detection.md does not contain the row %s", row)
						found++
					}
				}
			}
			require.Len(t, tt.lines, found)
		})
	}
}

// TestReplayTune: --tune writes a frozen configuration that loads, and
// replaying with it reproduces the tuned scores without tuning again.
func TestReplayTune(t *testing.T) {
	in := filepath.Join("..", "..", "replay", "testdata", "in", "sub")
	frozen := filepath.Join(t.TempDir(), "frozen.yaml")
	var tuned, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"replay", "--input", in, "--out", t.TempDir(),
		"--tune", "skab", "--write-config", frozen, "--score", "skab"}, &tuned, &stderr))
	require.Contains(t, stderr.String(), "tuned: k=")
	require.Equal(t, len(tuneGrid), strings.Count(stderr.String(), "tune skab: "))

	cfg, err := config.Load(config.Options{File: frozen})
	require.NoError(t, err)
	rules := cfg.Profiles["auto"].Rules
	require.Len(t, rules, 2)
	require.Equal(t, "Pressure", rules[0].Metric)
	require.Equal(t, "anomaly", rules[0].Detector)

	var again bytes.Buffer
	stderr.Reset()
	require.NoError(t, run(context.Background(), []string{"replay", "--input", in, "--out", t.TempDir(),
		"--config", frozen, "--score", "skab"}, &again, &stderr))
	require.NotContains(t, stderr.String(), "tune")
	ours := func(out string) string {
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, "forewarn (") {
				_, rest, _ := strings.Cut(line, ")")
				return strings.TrimSpace(rest)
			}
		}
		return ""
	}
	require.NotEmpty(t, ours(tuned.String()))
	require.Equal(t, ours(tuned.String()), ours(again.String()))
}
