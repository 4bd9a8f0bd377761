package ingest

import (
	"context"
	"errors"

	"github.com/forewarn/forewarn/telemetry"
)

// A Sink takes accepted readings once they are durable in the spool (so
// their MQTT messages are already acknowledged), in arrival order per
// device. Write is called from the subscriber's commit goroutine: a slow
// Write delays the next group commit, so it must not block for long. It
// returns early with ctx's error when ctx is done. An error is counted and
// logged; the readings are not offered again.
type Sink interface {
	Write(ctx context.Context, rs []telemetry.Reading) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, rs []telemetry.Reading) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, rs []telemetry.Reading) error { return f(ctx, rs) }

// Tee returns a Sink that writes to each sink in order and returns every
// error, joined. A failing sink does not keep the readings from the others.
func Tee(sinks ...Sink) Sink {
	return SinkFunc(func(ctx context.Context, rs []telemetry.Reading) error {
		var errs []error
		for _, s := range sinks {
			if err := s.Write(ctx, rs); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// An EventSink takes device events (from {prefix}/{id}/events) after they
// are durable in the spool, in arrival order per device. WriteEvents is
// called from the subscriber's commit goroutine: it must not block for long
// (hand off to your own goroutine if it does I/O), and it is never called
// concurrently with itself, Sink.Write or StatusSink.WriteStatus.
type EventSink interface {
	WriteEvents(ctx context.Context, es []telemetry.DeviceEvent) error
}

// A StatusSink takes device status changes (from the retained
// {prefix}/{id}/status topic, also the devices' Last Will), in arrival
// order per device, under the same rules as EventSink. The broker sends
// retained statuses again on every (re)subscription, so a StatusChange may
// repeat a device's current state; At is the receive time.
type StatusSink interface {
	WriteStatus(ctx context.Context, ss []telemetry.StatusChange) error
}
