package scoring

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSKABTPScore(t *testing.T) {
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(SKABWindow)
	require.InDelta(t, 1, skabTPScore(start, start, end, SKABStandard), 1e-12)
	require.InDelta(t, -0.11, skabTPScore(end, start, end, SKABStandard), 1e-12)
	mid := skabTPScore(start.Add(30*time.Second), start, end, SKABStandard)
	require.InDelta(t, (1-0.11)/2, mid, 0.01)
}

func TestSKABChangepointsSmall(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2020, 1, 1, 0, 0, s, 0, time.UTC) }
	var times []time.Time
	for s := range 200 {
		times = append(times, at(s))
	}
	labels := func(ones ...int) []int {
		v := make([]int, 200)
		for _, i := range ones {
			v[i] = 1
		}
		return v
	}
	tests := []struct {
		name            string
		cps, pred       []int
		missed, fp      int
		wantRawStandard float64
	}{
		{"perfect", []int{10}, ones(10, 200), 0, 0, 1}, // the prediction's rise at 10 is the CP; it never falls
		{"missed", []int{10}, nil, 1, 0, -1},
		{"false alarm and fall", []int{10}, ones(100, 120), 1, 2, -1 - 0.22},
		{"first of two edges in the window counts", []int{10}, ones(10, 20), 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := SKABFile{Times: times, Anomaly: labels(), Changepoint: labels(tt.cps...), Pred: padTo(tt.pred, 200)}
			require.NoError(t, f.Validate())
			c := SKABScoreChangepoints([]SKABFile{f}, SKABStandard)
			require.Equal(t, tt.missed, c.Missed)
			require.Equal(t, tt.fp, c.FP)
			require.InDelta(t, tt.wantRawStandard, c.Raw, 1e-12)
		})
	}
}

// ones returns a 0/1 series that is 1 on rows [from, to).
func ones(from, to int) []int {
	v := make([]int, to)
	for i := from; i < to; i++ {
		v[i] = 1
	}
	return v
}

func padTo(v []int, n int) []int {
	out := make([]int, n)
	copy(out, v)
	return out
}

// TestSKABGolden re-scores SKAB's published per-row predictions of Conv-AE
// and T-squared+Q on the DEV test rows and checks every figure of the
// subset leaderboard.
func TestSKABGolden(t *testing.T) {
	dir := benchData(t, "skab")
	var board struct {
		Leaderboard map[string]map[string]float64
	}
	readJSON(t, filepath.Join(dir, "reference", "subset_leaderboard.json"), &board)
	for alg, golden := range map[string]string{"Conv-AE": "Conv_AE", "T-squared+Q (PCA-based)": "T2-q"} {
		t.Run(golden, func(t *testing.T) {
			names, err := filepath.Glob(filepath.Join(dir, "reference", "golden", golden, "*", "*.csv"))
			require.NoError(t, err)
			sort.Strings(names)
			require.Len(t, names, 17)
			var files []SKABFile
			rows := 0
			for _, gpath := range names {
				rel, err := filepath.Rel(filepath.Join(dir, "reference", "golden", golden), gpath)
				require.NoError(t, err)
				data := readCSV(t, filepath.Join(dir, rel), ';')
				header := data[0]
				require.Equal(t, "datetime", header[0])
				ai, ci := indexOf(header, "anomaly"), indexOf(header, "changepoint")
				require.True(t, ai > 0 && ci > 0)
				pred := readCSV(t, gpath, ',')
				test := data[1+SKABTrainRows:]
				require.Len(t, pred, len(test)+1, rel)
				f := SKABFile{Name: rel}
				for i, r := range test {
					require.Equal(t, r[0], pred[i+1][0], "%s row %d", rel, i)
					f.Times = append(f.Times, parseStamp(t, r[0]))
					f.Anomaly = append(f.Anomaly, int(atof(t, r[ai])))
					f.Changepoint = append(f.Changepoint, int(atof(t, r[ci])))
					f.Pred = append(f.Pred, int(atof(t, pred[i+1][1])))
				}
				require.NoError(t, f.Validate())
				rows += len(test)
				files = append(files, f)
			}
			want := board.Leaderboard[alg]
			require.InDelta(t, want["rows"], rows, 0)
			o := SKABScoreOutliers(files)
			require.InDelta(t, want["F1"], Round2(o.F1()), 1e-9)
			require.InDelta(t, want["FAR"], Round2(o.FAR()), 1e-9)
			require.InDelta(t, want["MAR"], Round2(o.MAR()), 1e-9)
			for _, p := range SKABProfiles {
				c := SKABScoreChangepoints(files, p)
				require.InDelta(t, want["NAB_"+p.Name], Round2(c.Score()), 1e-9, p.Name)
				require.InDelta(t, want["cps"], c.Windows, 0)
				require.InDelta(t, want["missed_cps"], c.Missed, 0)
				require.InDelta(t, want["fps"], c.FP, 0)
			}
		})
	}
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}
