// Package ingest owns the way in: the MQTT subscription (paho), the payload
// decoders and their validation, and the batched InfluxDB writer.
//
// Data flows one way: a message on {prefix}/{device_id}/telemetry is decoded
// into a telemetry.Reading (or rejected with a DecodeError whose Reason is
// counted), and accepted readings are handed to a Sink: the InfluxDB Writer,
// the detector feeder, or both through Tee. ingest imports only telemetry; it
// knows nothing of detectors or tickets.
package ingest
