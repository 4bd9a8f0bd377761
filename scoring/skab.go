package scoring

import (
	"fmt"
	"math"
	"time"
)

// SKABTrainRows is the number of leading rows of each SKAB file that are
// for training; scoring uses the rows after them.
const SKABTrainRows = 400

// A SKABFile is the test part of one SKAB file: for each row its time, the
// labels (Anomaly, Changepoint: 0 or 1) and the detector's binary outlier
// prediction (Pred: 0 or 1, or -1 for a row without a prediction).
type SKABFile struct {
	Name        string
	Times       []time.Time
	Anomaly     []int
	Changepoint []int
	Pred        []int
}

// Validate checks that the columns have one value per row.
func (f *SKABFile) Validate() error {
	n := len(f.Times)
	if len(f.Anomaly) != n || len(f.Changepoint) != n || len(f.Pred) != n {
		return fmt.Errorf("%s: %d times, %d anomaly labels, %d changepoint labels, %d predictions", f.Name, n, len(f.Anomaly), len(f.Changepoint), len(f.Pred))
	}
	return nil
}

// SKABOutliers is the point-wise outlier score of SKAB's leaderboard.
type SKABOutliers struct {
	TP, FP, FN, TN int
}

// F1 is TP / (TP + (FP+FN)/2).
func (o SKABOutliers) F1() float64 { return float64(o.TP) / (float64(o.TP) + float64(o.FP+o.FN)/2) }

// FAR is the false alarm rate in percent, 100*FP/(FP+TN).
func (o SKABOutliers) FAR() float64 { return 100 * float64(o.FP) / float64(o.FP+o.TN) }

// MAR is the missed alarm rate in percent, 100*FN/(FN+TP).
func (o SKABOutliers) MAR() float64 { return 100 * float64(o.FN) / float64(o.FN+o.TP) }

// SKABScoreOutliers counts TP, FP, FN and TN over every row of files with
// a prediction.
func SKABScoreOutliers(files []SKABFile) SKABOutliers {
	var o SKABOutliers
	for _, f := range files {
		for i, p := range f.Pred {
			if p < 0 {
				continue
			}
			switch a := f.Anomaly[i]; {
			case p == 1 && a == 1:
				o.TP++
			case p == 1:
				o.FP++
			case a == 1:
				o.FN++
			default:
				o.TN++
			}
		}
	}
	return o
}

// A SKABProfile weighs the changepoint score; FP and FN are negative.
type SKABProfile struct {
	Name       string
	TP, FP, FN float64
}

// The SKAB (TSAD) changepoint profiles.
var (
	SKABStandard = SKABProfile{Name: "Standard", TP: 1, FP: -0.11, FN: -1}
	SKABLowFP    = SKABProfile{Name: "LowFP", TP: 1, FP: -0.22, FN: -1}
	SKABLowFN    = SKABProfile{Name: "LowFN", TP: 1, FP: -0.11, FN: -2}
	SKABProfiles = []SKABProfile{SKABStandard, SKABLowFP, SKABLowFN}
)

// SKABWindow is the span after a true changepoint in which a predicted one
// counts.
const SKABWindow = 60 * time.Second

// SKABChangepoints is the changepoint score of a set of files.
type SKABChangepoints struct {
	Raw, Null, Perfect float64
	Windows            int // true changepoints
	Missed             int // windows without a predicted changepoint (FN)
	FP                 int // predicted changepoints outside every window
}

// Score is the normalised score 100*(Raw-Null)/(Perfect-Null), not rounded.
func (c SKABChangepoints) Score() float64 { return 100 * (c.Raw - c.Null) / (c.Perfect - c.Null) }

// SKABScoreChangepoints scores the predicted changepoints, the edges of
// each file's binary prediction (c_0 = o_0, c_i = |o_i - o_(i-1)|),
// against windows [t, t+60s] after each true changepoint.
func SKABScoreChangepoints(files []SKABFile, p SKABProfile) SKABChangepoints {
	var c SKABChangepoints
	for _, f := range files {
		type window struct{ start, end time.Time }
		var ws []window
		for i, cp := range f.Changepoint {
			if cp == 1 {
				ws = append(ws, window{f.Times[i], f.Times[i].Add(SKABWindow)})
			}
		}
		for j := 1; j < len(ws); j++ {
			if !ws[j-1].end.Before(ws[j].start) {
				ws[j].start = ws[j-1].end
			}
		}
		var pred []time.Time
		prev := 0
		for i, o := range f.Pred {
			o = max(o, 0)
			if (i == 0 && o == 1) || (i > 0 && o != prev) {
				pred = append(pred, f.Times[i])
			}
			prev = o
		}
		inWindow := make([]bool, len(pred))
		var s float64
		for _, w := range ws {
			found := false
			for k, t := range pred {
				if t.Before(w.start) || t.After(w.end) {
					continue
				}
				inWindow[k] = true
				if !found {
					found = true
					s += skabTPScore(t, w.start, w.end, p)
				}
			}
			if !found {
				s += p.FN
				c.Missed++
			}
		}
		for _, in := range inWindow {
			if !in {
				s += p.FP
				c.FP++
			}
		}
		c.Raw += s
		c.Windows += len(ws)
	}
	c.Null = p.FN * float64(c.Windows)
	c.Perfect = p.TP * float64(c.Windows)
	return c
}

// skabTPScore is the score of a first predicted changepoint at t in
// [start, end]: TP at start, FP (the profile's) at end.
func skabTPScore(t, start, end time.Time, p SKABProfile) float64 {
	e := 0.0
	if end.After(start) {
		e = math.Min(math.Floor(float64(t.Sub(start))/float64(end.Sub(start))*1000), 999)
	}
	x := -math.Pi/2 + e*math.Pi/999
	return (p.TP-p.FP)/2*(1-math.Tanh(x)/math.Tanh(math.Pi/2)) + p.FP
}

// Round2 rounds to 2 decimals, as SKAB's leaderboard does.
func Round2(v float64) float64 { return math.Round(v*100) / 100 }
