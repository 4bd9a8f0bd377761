package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/forewarn/forewarn/config"
	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/replay"
	"github.com/forewarn/forewarn/scoring"
	"github.com/forewarn/forewarn/telemetry"
)

// replayOptions are forewarn replay's flags.
type replayOptions struct {
	input, out, config, model, score, labels, scoreboard string
	tune, writeConfig                                    string
	from, to, device                                     string
	skipDirs                                             []string
}

// replayed is one replayed input file.
type replayed struct {
	rel   string
	table *replay.Table
	res   replay.Result
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o replayOptions
	fset := pflag.NewFlagSet("replay", pflag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.StringVar(&o.input, "input", "", "a CSV file or a directory of them (or use --from/--to)")
	fset.StringVar(&o.from, "from", "", "replay InfluxDB telemetry from this time (RFC 3339) instead of --input; needs --config")
	fset.StringVar(&o.to, "to", "", "with --from: up to this time (RFC 3339); default now")
	fset.StringVar(&o.device, "device", "", "with --from: only this device")
	fset.StringVar(&o.out, "out", "", "directory for the per-row results and findings.jsonl (required)")
	fset.StringVar(&o.config, "config", "", "configuration file whose profiles to use; default the built-in auto profile")
	fset.StringVar(&o.model, "model", detectors.AutoModel, "the profile (device model) to replay the files as")
	fset.StringVar(&o.score, "score", "", "score the results: nab or skab")
	fset.StringVar(&o.labels, "labels", "", "NAB windows file; default INPUT/combined_windows.json")
	fset.StringVar(&o.scoreboard, "scoreboard", "", "published scores to print beside ours; default INPUT/reference/subset_scoreboard.json (nab) or subset_leaderboard.json (skab)")
	fset.StringSliceVar(&o.skipDirs, "skip-dir", []string{"reference"}, "directory names not to descend into")
	fset.StringVar(&o.tune, "tune", "", "tune the anomaly parameters on the input for nab (NAB standard at the frozen threshold) or skab (F1), write them to --write-config, then replay with them")
	fset.StringVar(&o.writeConfig, "write-config", "", "where --tune writes the frozen configuration")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	switch {
	case fset.NArg() > 0:
		return usageError{fmt.Sprintf("unexpected argument %q", fset.Arg(0))}
	case o.from != "" && (o.input != "" || o.config == "" || o.score != "" || o.tune != ""):
		return usageError{"--from needs --config and no --input, --score or --tune"}
	case o.from != "" && o.out != "":
		return replayInflux(ctx, o, stderr)
	case o.input == "" || o.out == "":
		return usageError{"replay needs --input (or --from) and --out"}
	case o.score != "" && o.score != "nab" && o.score != "skab":
		return usageError{fmt.Sprintf("--score %q: want nab or skab", o.score)}
	case o.tune != "" && o.tune != "nab" && o.tune != "skab":
		return usageError{fmt.Sprintf("--tune %q: want nab or skab", o.tune)}
	case o.tune != "" && (o.writeConfig == "" || o.config != ""):
		return usageError{"--tune needs --write-config and no --config"}
	}
	var profiles map[string]detectors.Profile
	if o.config != "" {
		cfg, err := config.Load(config.Options{File: o.config})
		if err != nil {
			return fmt.Errorf("invalid configuration:\n%w", err)
		}
		profiles = cfg.Profiles
		if !hasProfile(profiles, o.model) {
			return fmt.Errorf("%s has no profile for model %q (set --model)", o.config, o.model)
		}
	}
	files, err := replayInputs(o.input, o.skipDirs)
	if err != nil {
		return err
	}
	if o.tune != "" {
		profiles, err = tuneAuto(stderr, o, files)
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	jf, err := os.Create(filepath.Join(o.out, "findings.jsonl"))
	if err != nil {
		return fmt.Errorf("create findings file: %w", err)
	}
	defer jf.Close()
	var done []replayed
	nf := 0
	for _, f := range files {
		r, err := replayFile(f, profiles, o.model)
		if err != nil {
			return err
		}
		if err := writeReplay(o.out, r); err != nil {
			return err
		}
		if err := replay.WriteFindings(jf, r.rel, r.res.Findings); err != nil {
			return err
		}
		nf += len(r.res.Findings)
		done = append(done, r)
	}
	if err := jf.Close(); err != nil {
		return fmt.Errorf("write findings file: %w", err)
	}
	fmt.Fprintf(stderr, "replayed %d files, %d findings, results in %s\n", len(done), nf, o.out)
	switch o.score {
	case "nab":
		return scoreNAB(stdout, o, done)
	case "skab":
		return scoreSKAB(stdout, o, done)
	}
	return nil
}

func hasProfile(ps map[string]detectors.Profile, model string) bool {
	for m := range ps {
		if strings.EqualFold(m, model) {
			return true
		}
	}
	return false
}

// inputFile is an input CSV and its path relative to --input.
type inputFile struct{ path, rel string }

func replayInputs(input string, skip []string) ([]inputFile, error) {
	st, err := os.Stat(input)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if !st.IsDir() {
		return []inputFile{{input, filepath.Base(input)}}, nil
	}
	var files []inputFile
	err = filepath.WalkDir(input, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != input && slices.Contains(skip, d.Name()) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".csv") {
			rel, err := filepath.Rel(input, path)
			if err != nil {
				return err
			}
			files = append(files, inputFile{path, filepath.ToSlash(rel)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list input: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("input: no .csv file in %s", input)
	}
	return files, nil
}

func readInput(f inputFile) (*replay.Table, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", f.rel, err)
	}
	defer fh.Close()
	t, err := replay.ReadTable(fh)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", f.rel, err)
	}
	return t, nil
}

func replayFile(f inputFile, profiles map[string]detectors.Profile, model string) (replayed, error) {
	t, err := readInput(f)
	if err != nil {
		return replayed{}, err
	}
	return replayTable(f.rel, t, profiles, model)
}

func replayTable(rel string, t *replay.Table, profiles map[string]detectors.Profile, model string) (replayed, error) {
	f := inputFile{rel: rel}
	ps := profiles
	if ps == nil {
		ps = map[string]detectors.Profile{model: detectors.AutoProfile(t.Metrics)}
	}
	e, err := detectors.NewEngine(ps)
	if err != nil {
		return replayed{}, fmt.Errorf("replay %s: %w", f.rel, err)
	}
	id := telemetry.DeviceID(strings.NewReplacer("/", ":", " ", "_").Replace(strings.TrimSuffix(f.rel, filepath.Ext(f.rel))))
	return replayed{rel: f.rel, table: t, res: replay.Run(t, e, id, model)}, nil
}

func writeReplay(out string, r replayed) error {
	path := filepath.Join(out, filepath.FromSlash(r.rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := replay.WriteRows(f, r.table, r.res); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// nabFiles pairs the replayed files with their NAB windows (--labels).
func nabFiles(o replayOptions, done []replayed) ([]scoring.NABFile, error) {
	labels := o.labels
	if labels == "" {
		labels = filepath.Join(o.input, "combined_windows.json")
	}
	var windows map[string][][2]string
	if err := readJSONFile(labels, &windows); err != nil {
		return nil, fmt.Errorf("nab labels: %w", err)
	}
	var files []scoring.NABFile
	for _, r := range done {
		ws, ok := windows[r.rel]
		if !ok {
			continue
		}
		f := scoring.NABFile{Name: r.rel, Scores: make([]float64, len(r.res.Rows))}
		for i, rr := range r.res.Rows {
			f.Scores[i] = rr.Score
		}
		for _, win := range ws {
			l, rt := rowOf(r.table, win[0]), rowOf(r.table, win[1])
			if l < 0 || rt < 0 {
				return nil, fmt.Errorf("nab labels: window %v of %s does not match a row", win, r.rel)
			}
			f.Windows = append(f.Windows, scoring.NABWindow{L: l, R: rt})
		}
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("nab: %w", err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("nab: no replayed file is in %s", labels)
	}
	return files, nil
}

// nabFrozenThreshold is the fixed threshold of the frozen NAB score: an
// anomaly score of 0.5 is every rule's raise level (anomaly: |z| = k;
// context: the novelty limit).
const nabFrozenThreshold = 0.5

func scoreNAB(w io.Writer, o replayOptions, done []replayed) error {
	files, err := nabFiles(o, done)
	if err != nil {
		return err
	}
	counted := scoring.NABCountedWindows(files)
	total := 0
	for _, f := range files {
		total += len(f.Windows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAB: %d files, %d windows\n\n", len(files), total)
	fmt.Fprintln(tw, "file\twindows\tstandard\treward_low_FP_rate\treward_low_FN_rate\t(raw, frozen threshold 0.5)")
	sums := make([]float64, len(scoring.NABProfiles))
	for _, f := range files {
		fmt.Fprintf(tw, "%s\t%d", f.Name, len(f.Windows))
		for j, p := range scoring.NABProfiles {
			s := f.Score(p, nabFrozenThreshold)
			sums[j] += s
			fmt.Fprintf(tw, "\t%.4f", s)
		}
		fmt.Fprintln(tw, "\t")
	}
	fmt.Fprintln(tw, "\nforewarn\tstandard\treward_low_FP_rate\treward_low_FN_rate\t")
	fmt.Fprint(tw, "frozen threshold 0.5")
	for j, p := range scoring.NABProfiles {
		fmt.Fprintf(tw, "\t%.2f", scoring.NABNormalize(sums[j], p, counted, total))
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprint(tw, "swept threshold (as NAB publishes)")
	for _, p := range scoring.NABProfiles {
		theta, raw := scoring.NABSweep(files, p)
		fmt.Fprintf(tw, "\t%.2f (t=%.4g)", scoring.NABNormalize(raw, p, counted, total), theta)
	}
	fmt.Fprintln(tw, "\t")
	board := o.scoreboard
	if board == "" {
		board = filepath.Join(o.input, "reference", "subset_scoreboard.json")
	}
	var sb struct {
		Scoreboard map[string]map[string]struct{ Normalized float64 }
	}
	if err := readJSONFile(board, &sb); err == nil {
		fmt.Fprintf(tw, "\npublished (%s)\tstandard\treward_low_FP_rate\treward_low_FN_rate\t\n", filepath.Base(board))
		names := make([]string, 0, len(sb.Scoreboard))
		for n := range sb.Scoreboard {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int {
			return -cmpFloat(sb.Scoreboard[a]["standard"].Normalized, sb.Scoreboard[b]["standard"].Normalized)
		})
		for _, n := range names {
			fmt.Fprintf(tw, "%s", n)
			for _, p := range scoring.NABProfiles {
				fmt.Fprintf(tw, "\t%.2f", sb.Scoreboard[n][p.Name].Normalized)
			}
			fmt.Fprintln(tw, "\t")
		}
	} else {
		fmt.Fprintf(tw, "\n(no published scoreboard: %v)\n", err)
	}
	return tw.Flush()
}

// skabFiles takes the test rows (400 onwards) of the replayed files that
// have SKAB's label columns; a row's prediction is 1 while a fault is open.
func skabFiles(done []replayed) ([]scoring.SKABFile, error) {
	var files []scoring.SKABFile
	for _, r := range done {
		an, cp := r.table.Labels["anomaly"], r.table.Labels["changepoint"]
		if an == nil || cp == nil {
			continue // anomaly-free training file
		}
		f := scoring.SKABFile{Name: r.rel}
		for i := scoring.SKABTrainRows; i < len(r.table.Rows); i++ {
			f.Times = append(f.Times, r.table.Rows[i].At)
			f.Anomaly = append(f.Anomaly, label(an[i]))
			f.Changepoint = append(f.Changepoint, label(cp[i]))
			p := 0
			if r.res.Rows[i].Open {
				p = 1
			}
			f.Pred = append(f.Pred, p)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errors.New("skab: no replayed file has anomaly and changepoint columns")
	}
	return files, nil
}

func scoreSKAB(w io.Writer, o replayOptions, done []replayed) error {
	files, err := skabFiles(done)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SKAB: %d files (test rows %d..)\n\n", len(files), scoring.SKABTrainRows)
	fmt.Fprintln(tw, "file\tTP\tFP\tFN\tTN\tCPs\tmissed CPs\tFP CPs\t")
	for _, f := range files {
		ol := scoring.SKABScoreOutliers([]scoring.SKABFile{f})
		c := scoring.SKABScoreChangepoints([]scoring.SKABFile{f}, scoring.SKABStandard)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", f.Name, ol.TP, ol.FP, ol.FN, ol.TN, c.Windows, c.Missed, c.FP)
	}
	ol := scoring.SKABScoreOutliers(files)
	fmt.Fprintln(tw, "\nalgorithm\tF1\tFAR %\tMAR %\tNAB std\tNAB LowFP\tNAB LowFN\tmissed CPs\tFPs\tCPs\t")
	fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f", ourLabel(o), scoring.Round2(ol.F1()), scoring.Round2(ol.FAR()), scoring.Round2(ol.MAR()))
	var std scoring.SKABChangepoints
	for _, p := range scoring.SKABProfiles {
		c := scoring.SKABScoreChangepoints(files, p)
		if p == scoring.SKABStandard {
			std = c
		}
		fmt.Fprintf(tw, "\t%.2f", scoring.Round2(c.Score()))
	}
	fmt.Fprintf(tw, "\t%d\t%d\t%d\t\n", std.Missed, std.FP, std.Windows)
	board := o.scoreboard
	if board == "" {
		board = filepath.Join(o.input, "reference", "subset_leaderboard.json")
	}
	var lb struct {
		Leaderboard map[string]map[string]float64
	}
	if err := readJSONFile(board, &lb); err == nil {
		names := make([]string, 0, len(lb.Leaderboard))
		for n := range lb.Leaderboard {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int { return -cmpFloat(lb.Leaderboard[a]["F1"], lb.Leaderboard[b]["F1"]) })
		for _, n := range names {
			m := lb.Leaderboard[n]
			fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t\n", n, m["F1"], m["FAR"], m["MAR"],
				m["NAB_Standard"], m["NAB_LowFP"], m["NAB_LowFN"], m["missed_cps"], m["fps"], m["cps"])
		}
	} else {
		fmt.Fprintf(tw, "\n(no published leaderboard: %v)\n", err)
	}
	return tw.Flush()
}

// ourLabel names Forewarn's row in the score tables.
func ourLabel(o replayOptions) string {
	switch {
	case o.tune != "":
		return "forewarn (tuned)"
	case o.config != "":
		return "forewarn (" + filepath.Base(o.config) + ")"
	}
	return "forewarn (auto)"
}

func label(v float64) int {
	if v == 1 {
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rowOf returns the first row of t whose time equals the timestamp s, or -1.
func rowOf(t *replay.Table, s string) int {
	at, err := replay.ParseTime(s)
	if err != nil {
		return -1
	}
	for i, r := range t.Rows {
		if r.At.Equal(at) {
			return i
		}
	}
	return -1
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// tunePoint is one setting --tune tries: the anomaly rule's k, half_life
// and likelihood_half_life (clear_k is k/2, warmup 2*half_life).
type tunePoint struct {
	k                  float64
	halfLife, likelihd int
}

// tuneGrid is what --tune searches: z judged by k directly, and z judged
// against its usual level (likelihood_half_life), where k is smaller.
var tuneGrid = func() []tunePoint {
	var g []tunePoint
	for _, k := range []float64{3, 4, 5, 6} {
		for _, hl := range []int{30, 100, 300} {
			g = append(g, tunePoint{k, hl, 0})
		}
	}
	for _, k := range []float64{3, 3.5, 4, 4.5} {
		for _, hl := range []int{30, 100} {
			for _, lk := range []int{300, 1000} {
				g = append(g, tunePoint{k, hl, lk})
			}
		}
	}
	return g
}()

// tuneAuto replays the input with every point of the grid, keeps the best
// by the --tune objective (nab: NAB standard at the frozen threshold 0.5;
// skab: F1), writes it to --write-config as a profile named --model with
// one anomaly rule per metric of the input, and returns those profiles.
// Scoring with that file later never re-tunes.
func tuneAuto(stderr io.Writer, o replayOptions, files []inputFile) (map[string]detectors.Profile, error) {
	tables := make([]*replay.Table, len(files))
	var metrics []string
	for i, f := range files {
		t, err := readInput(f)
		if err != nil {
			return nil, err
		}
		tables[i] = t
		for _, m := range t.Metrics {
			if !slices.Contains(metrics, m) {
				metrics = append(metrics, m)
			}
		}
	}
	best, bestScore := detectors.Profile{}, math.Inf(-1)
	var bestAt tunePoint
	for _, pt := range tuneGrid {
		p := anomalyProfile(metrics, pt.k, pt.halfLife, pt.likelihd)
		ps := map[string]detectors.Profile{o.model: p}
		done := make([]replayed, len(files))
		for i, f := range files {
			r, err := replayTable(f.rel, tables[i], ps, o.model)
			if err != nil {
				return nil, err
			}
			done[i] = r
		}
		score, err := tuneObjective(o, done)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "tune %s: k=%g half_life=%d likelihood_half_life=%d: %.4f\n", o.tune, pt.k, pt.halfLife, pt.likelihd, score)
		if score > bestScore {
			best, bestScore, bestAt = p, score, pt
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Frozen by forewarn replay --tune %s on %s: k=%g, half_life=%d, likelihood_half_life=%d scored %.4f\n",
		o.tune, o.input, bestAt.k, bestAt.halfLife, bestAt.likelihd, bestScore)
	fmt.Fprintf(&b, "# (%s). Replaying with --config this file never re-tunes.\nprofiles:\n  %s:\n    rules:\n", tuneObjectiveName(o.tune), o.model)
	for _, r := range best.Rules {
		fmt.Fprintf(&b, "      - metric: %q\n        detector: anomaly\n        k: %g\n        clear_k: %g\n        half_life: %d\n        warmup: %d\n        likelihood_half_life: %d\n        fault: %s\n        severity: minor\n",
			r.Metric, *r.K, *r.ClearK, r.HalfLife, r.Warmup, r.LikelihoodHalfLife, r.Fault)
	}
	if err := os.WriteFile(o.writeConfig, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write frozen config: %w", err)
	}
	fmt.Fprintf(stderr, "tuned: k=%g half_life=%d likelihood_half_life=%d (%.4f), written to %s\n", bestAt.k, bestAt.halfLife, bestAt.likelihd, bestScore, o.writeConfig)
	return map[string]detectors.Profile{o.model: best}, nil
}

func tuneObjectiveName(set string) string {
	if set == "nab" {
		return "objective: NAB standard profile, normalised, at the frozen threshold 0.5"
	}
	return "objective: SKAB point-wise F1 on test rows 400 onwards"
}

func tuneObjective(o replayOptions, done []replayed) (float64, error) {
	if o.tune == "nab" {
		files, err := nabFiles(o, done)
		if err != nil {
			return 0, err
		}
		raw, total := 0.0, 0
		for _, f := range files {
			raw += f.Score(scoring.NABStandard, nabFrozenThreshold)
			total += len(f.Windows)
		}
		return scoring.NABNormalize(raw, scoring.NABStandard, scoring.NABCountedWindows(files), total), nil
	}
	files, err := skabFiles(done)
	if err != nil {
		return 0, err
	}
	f1 := scoring.SKABScoreOutliers(files).F1()
	if math.IsNaN(f1) {
		f1 = 0
	}
	return f1, nil
}

// anomalyProfile is one anomaly rule per metric (named and faulted as the
// auto profile's) with the parameters of a grid point.
func anomalyProfile(metrics []string, k float64, halfLife, likelihood int) detectors.Profile {
	var p detectors.Profile
	for _, r := range detectors.AutoProfile(metrics).Rules {
		if r.Detector != detectors.DetectorAnomaly {
			continue
		}
		kk, ck := k, k/2
		p.Rules = append(p.Rules, detectors.Rule{Metric: r.Metric, Detector: detectors.DetectorAnomaly, K: &kk, ClearK: &ck,
			HalfLife: halfLife, Warmup: 2 * halfLife, LikelihoodHalfLife: likelihood, Fault: r.Fault, Severity: r.Severity})
	}
	return p
}
