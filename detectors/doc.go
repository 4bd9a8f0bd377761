// Package detectors owns fault detection: the rule and profile configuration
// (Profile, Rule, with validation), the detector catalogue of DESIGN.md, one
// file each (threshold.go, rate.go, flatline.go, offline.go, anomaly.go,
// forecast.go, event.go, usage.go, context.go, each opening with its keys, semantics and
// an example rule), the built-in auto profile (auto.go) and the Engine that
// runs every rule of a device's profile against its readings, events and
// status changes, with snapshots of its state and rule reloads (state.go).
//
// It sits between ingest and ticketing: ingest hands each validated
// telemetry.Reading to Engine.Observe, which returns the telemetry.Findings
// (a fault raised or cleared, with its evidence) for ticketing to handle.
// Per-device state lives here and nowhere else.
//
// The package is pure: it does no I/O (Snapshot and Restore write to and
// read from the io.Writer and io.Reader they are given), reads no clock,
// starts no goroutines and does not log. An Engine is single-threaded;
// package live shards devices over several Engines. Detection runs on event time (telemetry.Reading.At), so
// replaying history gives the same findings as the live run.
package detectors
