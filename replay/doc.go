// Package replay runs the detector engine over recorded history, so a rule
// can be tried before it goes live and the detectors can be scored on
// labelled benchmark data.
//
// It reads CSV files in two layouts (ReadTable): `timestamp,value` as in
// NAB, and `;`-separated wide files with a `datetime` column and one column
// per metric as in SKAB. Columns named `anomaly` and `changepoint` are
// labels: they are kept apart and never reach a detector. Run feeds the
// rows to a detectors.Engine in order, one device per file, and records
// for every row the anomaly score and the findings it decided, using rows
// 0..i only to decide row i (no look-ahead: the engine sees row i+1 only
// after row i's results are recorded).
//
// It sits beside ingest on the flow: history in, findings out. It does no
// network I/O; the caller opens files.
package replay
