// Package simulator runs a fleet of virtual products (heat pumps, water
// heaters, EV chargers, water pumps) that publish telemetry, fault codes and
// status over MQTT per the device contract, injects fault scenarios into
// some of them, records the ground truth of each fault (onset, and when the
// customer noticed), and scores the tickets Forewarn opened against it
// (Evaluate).
//
// Every random value is a hash of the seed, the device and the event time,
// so a fleet is deterministic and costs a few dozen bytes per device.
//
// It imports telemetry (plus paho for publishing, and ticketing's types to
// read tickets over the REST API); its JSON encoder is tested against
// ingest's decoder so the two cannot drift apart.
package simulator
