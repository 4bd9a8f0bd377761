package scoring

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNABSigma(t *testing.T) {
	// Reference values from SCORING.md section 2.
	for _, tt := range []struct{ y, want float64 }{
		{-1, 0.9866142981514305}, {-0.5, 0.8482836399575131}, {0, 0}, {1, -0.9866142981514303}, {3.5, -1},
	} {
		require.InDelta(t, tt.want, nabSigma(tt.y), 1e-15, "sigma(%v)", tt.y)
	}
}

// TestNABConformance restates the behaviours of SCORING.md section 7, with
// every weight 1 and no probation (files of fewer than 7 rows have none).
func TestNABConformance(t *testing.T) {
	ones := NABProfile{TP: 1, FP: 1, FN: 1}
	file := func(n int, windows []NABWindow, detections ...int) *NABFile {
		f := &NABFile{Scores: make([]float64, n), Windows: windows}
		for _, i := range detections {
			f.Scores[i] = 1
		}
		return f
	}
	score := func(f *NABFile) float64 { return f.Score(ones, 0.5) }
	require.Zero(t, NABProbation(6))
	w := []NABWindow{{2, 4}}

	t.Run("first row of the only window scores A_TP", func(t *testing.T) {
		require.InDelta(t, 1, score(file(6, w, 2)), 1e-12)
	})
	t.Run("earlier beats later", func(t *testing.T) {
		require.Greater(t, score(file(6, w, 2)), score(file(6, w, 3)))
	})
	t.Run("second detection in a window changes nothing", func(t *testing.T) {
		require.Equal(t, score(file(6, w, 3)), score(file(6, w, 3, 4)))
	})
	t.Run("first row scores the same whatever the width", func(t *testing.T) {
		require.InDelta(t, score(file(6, []NABWindow{{1, 1}}, 1)), score(file(6, []NABWindow{{1, 4}}, 1)), 1e-12)
	})
	t.Run("last row positive, next row negative, nearly cancel", func(t *testing.T) {
		wide := []NABWindow{{20, 59}} // 100 rows: probation 15
		base := score(file(100, wide, 20))
		last := score(file(100, wide, 59)) // only the window's last row
		next := score(file(100, wide, 20, 60)) - base
		require.Greater(t, last, 0.0)
		require.Less(t, next, 0.0)
		require.Less(t, math.Abs(last+next), 0.01)
	})
	t.Run("false positives", func(t *testing.T) {
		require.InDelta(t, -1, score(file(6, nil, 3)), 1e-12)
		require.Less(t, score(file(6, nil, 3, 4)), score(file(6, nil, 3)))
		near := score(file(20, []NABWindow{{2, 4}}, 2, 5)) - score(file(20, []NABWindow{{2, 4}}, 2))
		far := score(file(20, []NABWindow{{2, 4}}, 2, 12)) - score(file(20, []NABWindow{{2, 4}}, 2))
		require.Less(t, near, 0.0)
		require.Greater(t, near, far)
	})
}

// TestNABSweepMatchesBruteForce checks the one-pass threshold sweep against
// scoring every candidate threshold, on random corpora with tied scores.
func TestNABSweepMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for trial := range 200 {
		var files []NABFile
		for range 1 + rng.IntN(3) {
			n := 10 + rng.IntN(60)
			f := NABFile{Scores: make([]float64, n)}
			for i := range f.Scores {
				f.Scores[i] = float64(rng.IntN(8)) / 7
			}
			for l := 1 + rng.IntN(10); l < n; l += 3 + rng.IntN(20) {
				r := min(n-1, l+rng.IntN(8))
				f.Windows = append(f.Windows, NABWindow{l, r})
				l = r
			}
			require.NoError(t, f.Validate())
			files = append(files, f)
		}
		for _, p := range NABProfiles {
			theta, raw := NABSweep(files, p)
			cands := []float64{NABNoDetection}
			for _, f := range files {
				cands = append(cands, f.Scores[NABProbation(len(f.Scores)):]...)
			}
			slices.Sort(cands)
			slices.Reverse(cands)
			bestTheta, best := 0.0, math.Inf(-1)
			for _, c := range slices.Compact(cands) {
				s := 0.0
				for i := range files {
					s += files[i].Score(p, c)
				}
				if s > best+1e-12 {
					bestTheta, best = c, s
				}
			}
			require.InDelta(t, best, raw, 1e-9, "trial %d %s", trial, p.Name)
			require.Equal(t, bestTheta, theta, "trial %d %s", trial, p.Name)
		}
	}
}

// nabDEV loads the DEV files' windows as row indices, with the given
// per-row scores (a golden detector's), keyed by relative path.
func nabDEV(t *testing.T, dir, detector string) map[string]*NABFile {
	t.Helper()
	var windows map[string][][2]string
	readJSON(t, filepath.Join(dir, "combined_windows.json"), &windows)
	files := map[string]*NABFile{}
	for name, ws := range windows {
		rows := readCSV(t, filepath.Join(dir, "reference", "golden", detector, name), ',')
		require.Equal(t, []string{"timestamp", "anomaly_score"}, rows[0])
		data := readCSV(t, filepath.Join(dir, name), ',')
		require.Len(t, rows, len(data), name)
		f := &NABFile{Name: name}
		for i, r := range rows[1:] {
			require.Equal(t, data[i+1][0], r[0], "%s row %d", name, i)
			f.Scores = append(f.Scores, atof(t, r[1]))
		}
		for _, w := range ws {
			l, r := -1, -1
			for i, d := range data[1:] {
				ts := parseStamp(t, d[0])
				if l < 0 && ts.Equal(parseStamp(t, w[0])) {
					l = i
				}
				if r < 0 && ts.Equal(parseStamp(t, w[1])) {
					r = i
				}
			}
			require.True(t, l >= 0 && r >= l, "%s window %v", name, w)
			f.Windows = append(f.Windows, NABWindow{l, r})
		}
		require.NoError(t, f.Validate())
		files[name] = f
	}
	return files
}

// TestNABGolden reproduces NAB's published per-file raw scores of the
// numenta and windowedGaussian detectors on the DEV files, at their
// published thresholds, to 1e-9.
func TestNABGolden(t *testing.T) {
	dir := benchData(t, "nab")
	published := readCSV(t, filepath.Join(dir, "reference", "per_file_published_scores.csv"), ',')
	require.Equal(t, []string{"detector", "profile", "file", "threshold", "raw_score"}, published[0][:5])
	profiles := map[string]NABProfile{}
	for _, p := range NABProfiles {
		profiles[p.Name] = p
	}
	for _, det := range []string{"numenta", "windowedGaussian"} {
		t.Run(det, func(t *testing.T) {
			files := nabDEV(t, dir, det)
			require.Len(t, files, 19)
			checked := 0
			totals := map[string]float64{}
			for _, row := range published[1:] {
				if row[0] != det {
					continue
				}
				p, ok := profiles[row[1]]
				require.True(t, ok, row[1])
				f := files[row[2]]
				require.NotNil(t, f, row[2])
				got := f.Score(p, atof(t, row[3]))
				require.InDelta(t, atof(t, row[4]), got, 1e-9, "%s %s %s", det, p.Name, f.Name)
				totals[p.Name] += got
				checked++
			}
			require.Equal(t, 19*3, checked)
			// And the subset scoreboard's normalised totals.
			var board struct {
				Scoreboard map[string]map[string]struct{ Raw, Normalized float64 }
			}
			readJSON(t, filepath.Join(dir, "reference", "subset_scoreboard.json"), &board)
			var all []NABFile
			for _, f := range files {
				all = append(all, *f)
			}
			counted := NABCountedWindows(all)
			require.Equal(t, 30, counted)
			for _, p := range NABProfiles {
				want := board.Scoreboard[det][p.Name]
				require.InDelta(t, want.Raw, totals[p.Name], 1e-5, p.Name)
				require.InDelta(t, want.Normalized, math.Round(100*NABNormalize(totals[p.Name], p, counted, counted))/100, 1e-9, p.Name)
			}
		})
	}
}
