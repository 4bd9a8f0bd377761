// Package scoring implements the scoring rules of two public anomaly
// detection benchmarks, so Forewarn's detectors can be measured on labelled
// data nobody on the team wrote:
//
//   - NAB, the Numenta Anomaly Benchmark (nab.go): per-row anomaly scores
//     against anomaly windows, with early detection rewarded, one threshold
//     per corpus, and the standard, reward_low_FP_rate and
//     reward_low_FN_rate profiles.
//   - SKAB, the Skoltech Anomaly Benchmark leaderboard (skab.go): point-wise
//     F1, FAR and MAR of binary predictions, and the changepoint score (the
//     TSAD variant of NAB).
//
// Both follow the re-implementation specs in the data folders
// (../shared/data/{nab,skab}/SCORING.md); the tests check them against the
// published per-file and per-row golden vectors there. The package is pure:
// values in, numbers out, no I/O.
package scoring
