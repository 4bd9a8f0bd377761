// Package live runs the detector engine inside forewarn serve: it shards
// devices by id over a fixed set of worker goroutines, each owning one
// single-threaded detectors.Engine (no lock shared by the shards on the hot
// path), drives the offline rules' timers from an injectable clock, evicts
// idle devices, snapshots the detector state to disk periodically and at
// shutdown and restores it at start-up, and reloads rules.
//
// It sits between ingest and ticketing: ingest's sink calls Observe with a
// batch of readings; every finding, including those raised by the clock,
// goes to the Handler given in Options. Package detectors stays pure; the
// goroutines, the clock and the files are here.
package live
