// Package telemetry holds the values every Forewarn stage shares: device
// identity (DeviceID), a decoded telemetry Reading, and a detector's Finding
// with its Severity and Evidence.
//
// It sits at the bottom of the import graph: ingest, detectors, ticketing,
// httpapi and simulator import it, and it imports only the standard library.
// It does no I/O.
package telemetry
