package scoring

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// A NABProfile weighs true positives, false positives and false negatives.
// FP is stored positive; the scoring function gives it its sign.
type NABProfile struct {
	Name       string
	TP, FP, FN float64
}

// The NAB profiles.
var (
	NABStandard = NABProfile{Name: "standard", TP: 1, FP: 0.11, FN: 1}
	NABLowFP    = NABProfile{Name: "reward_low_FP_rate", TP: 1, FP: 0.22, FN: 1}
	NABLowFN    = NABProfile{Name: "reward_low_FN_rate", TP: 1, FP: 0.11, FN: 2}
	NABProfiles = []NABProfile{NABStandard, NABLowFP, NABLowFN}
)

// NABNoDetection is the threshold candidate that detects nothing.
const NABNoDetection = 1.1

// A NABWindow is an anomaly window as row indices, inclusive at both ends.
type NABWindow struct{ L, R int }

// A NABFile is one scored file: the detector's score for every row, in
// row order, and the file's windows, sorted and not overlapping.
type NABFile struct {
	Name    string
	Scores  []float64
	Windows []NABWindow
}

// nabSigma is NAB's scaled sigmoid.
func nabSigma(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// NABProbation is the number of leading rows of an n-row file that NAB
// ignores: min(floor(0.15*n), 750).
func NABProbation(n int) int { return min(int(math.Floor(0.15*float64(n))), 750) }

// weights returns each row's weight v_i and the window index of each row
// (-1 outside windows).
func (f *NABFile) weights(p NABProfile) (v []float64, win []int) {
	n := len(f.Scores)
	v, win = make([]float64, n), make([]int, n)
	sig1 := nabSigma(-1)
	k := 0     // next window
	prev := -1 // most recent window that ended
	for i := range n {
		for k < len(f.Windows) && f.Windows[k].R < i {
			prev = k
			k++
		}
		win[i] = -1
		switch {
		case k < len(f.Windows) && f.Windows[k].L <= i:
			w := f.Windows[k]
			width := float64(w.R - w.L + 1)
			v[i] = p.TP * nabSigma(-float64(w.R-i+1)/width) / sig1
			win[i] = k
		case prev < 0:
			v[i] = -p.FP
		default:
			w := f.Windows[prev]
			v[i] = p.FP * nabSigma(float64(i-w.R)/float64(w.R-w.L))
		}
	}
	return v, win
}

// counted reports whether window w counts (has a row at or after the
// probation).
func (w NABWindow) counted(probation int) bool { return w.R >= probation }

// Validate checks the windows against the file: inside the rows, sorted,
// not overlapping; and every score in [0, 1].
func (f *NABFile) Validate() error {
	for j, w := range f.Windows {
		if w.L < 0 || w.R >= len(f.Scores) || w.L > w.R {
			return fmt.Errorf("%s: window %d [%d, %d] is not within rows 0..%d", f.Name, j, w.L, w.R, len(f.Scores)-1)
		}
		if j > 0 && w.L <= f.Windows[j-1].R {
			return fmt.Errorf("%s: window %d overlaps or precedes window %d", f.Name, j, j-1)
		}
	}
	for i, s := range f.Scores {
		if !(s >= 0 && s <= 1) {
			return fmt.Errorf("%s: row %d: anomaly score %v is not in [0, 1]", f.Name, i, s)
		}
	}
	return nil
}

// Score returns the file's raw NAB score at threshold theta: a detection
// is a row past the probation with score >= theta.
func (f *NABFile) Score(p NABProfile, theta float64) float64 {
	v, win := f.weights(p)
	probation := NABProbation(len(f.Scores))
	best := make([]float64, len(f.Windows))
	hit := make([]bool, len(f.Windows))
	var s float64
	for i := probation; i < len(f.Scores); i++ {
		if f.Scores[i] < theta {
			continue
		}
		if k := win[i]; k >= 0 {
			if !hit[k] {
				hit[k], best[k] = true, v[i]
			}
			continue
		}
		s += v[i]
	}
	for k, w := range f.Windows {
		if !w.counted(probation) {
			continue
		}
		if hit[k] {
			s += best[k]
		} else {
			s -= p.FN
		}
	}
	return s
}

// NABCountedWindows returns the number of windows that count in files.
func NABCountedWindows(files []NABFile) int {
	n := 0
	for _, f := range files {
		p := NABProbation(len(f.Scores))
		for _, w := range f.Windows {
			if w.counted(p) {
				n++
			}
		}
	}
	return n
}

// NABNormalize turns a raw corpus score into NAB's 0-100 scale: 100 is
// perfect (every window detected at its first row), 0 the null detector.
func NABNormalize(raw float64, p NABProfile, counted, windows int) float64 {
	null := -p.FN * float64(counted)
	perfect := p.TP * float64(windows)
	return 100 * (raw - null) / (perfect - null)
}

// NABSweep finds the threshold that maximises the corpus's raw score: the
// candidates are NABNoDetection and every score of a scorable row; ties go
// to the higher threshold. It returns the threshold and the raw score.
func NABSweep(files []NABFile, p NABProfile) (theta, raw float64) {
	type row struct {
		score float64
		file  int
		i     int
	}
	var rows []row
	type fileState struct {
		v    []float64
		win  []int
		best []int // earliest detected row per window, -1 none
	}
	states := make([]fileState, len(files))
	for fi := range files {
		f := &files[fi]
		v, win := f.weights(p)
		best := make([]int, len(f.Windows))
		for k := range best {
			best[k] = -1
		}
		states[fi] = fileState{v: v, win: win, best: best}
		for i := NABProbation(len(f.Scores)); i < len(f.Scores); i++ {
			rows = append(rows, row{f.Scores[i], fi, i})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.score, a.score) })
	s := -p.FN * float64(NABCountedWindows(files))
	theta, raw = NABNoDetection, s
	for g := 0; g < len(rows); {
		h := g
		for h < len(rows) && rows[h].score == rows[g].score {
			r := rows[h]
			st := &states[r.file]
			if k := st.win[r.i]; k >= 0 {
				switch old := st.best[k]; {
				case old < 0:
					s += p.FN + st.v[r.i]
					st.best[k] = r.i
				case r.i < old:
					s += st.v[r.i] - st.v[old]
					st.best[k] = r.i
				}
			} else {
				s += st.v[r.i]
			}
			h++
		}
		if s > raw {
			theta, raw = rows[g].score, s
		}
		g = h
	}
	return theta, raw
}
