package simulator

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// A Publisher sends one payload to one topic. Publish may return before the
// broker acknowledged; Flush waits for every outstanding acknowledgement.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte) error
	Flush(ctx context.Context) error
}

// A RetainPublisher also publishes retained messages; Run uses it for the
// status topic when Options.Status is set and the publisher is not a
// DeviceLinker.
type RetainPublisher interface {
	PublishRetained(ctx context.Context, topic string, payload []byte) error
}

// A DeviceLinker holds one broker connection per device, each with the Last
// Will "offline" on {prefix}/{id}/status and a retained "online" published
// on connect. Drop closes a device's connection without DISCONNECT, so the
// broker publishes the Will; Reconnect brings it back.
type DeviceLinker interface {
	Drop(dev telemetry.DeviceID) error
	Reconnect(ctx context.Context, dev telemetry.DeviceID) error
}

// An Acker counts the publishes the broker acknowledged (QoS 1) or that
// were written to the connection (QoS 0).
type Acker interface {
	Acked() int64
}

// Report says what a run sent and the ground truth to check Forewarn against.
type Report struct {
	Devices    int
	Sent       int // messages published: telemetry, events and status
	Acked      int64
	Readings   int
	Events     int
	Status     int
	Faulty     []telemetry.DeviceID // devices with an injected fault that started
	Truth      []Truth
	FirstAt    time.Time // event time of tick 0
	LastAt     time.Time // event time of the last reading
	Elapsed    time.Duration
	DeviceDays float64 // simulated device-days
	CaughtUp   bool    // stopped because the event time reached the wall clock
}

// Run publishes the fleet's telemetry: each device sends one reading per
// Step of event time, ticks paced Interval apart in wall-clock time (none
// when 0) and at most Rate messages per second, until SimDuration of event
// time, Count messages or Duration passed, or ctx is done; a run faster
// than real time also stops when its event time reaches the wall clock,
// since later readings would be rejected as lying in the future. Progress lines go
// to progress (nil: none). It returns what was sent and the ground truth.
func Run(ctx context.Context, opts Options, pub Publisher, progress io.Writer) (Report, error) {
	if err := opts.Validate(); err != nil {
		return Report{}, fmt.Errorf("simulator options: %w", err)
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart(opts, time.Now())
	}
	if opts.Progress <= 0 {
		opts.Progress = 10 * time.Second
	}
	fleet := NewFleet(opts, opts.Start)
	r := runner{opts: opts, fleet: fleet, pub: pub, progress: progress}
	r.retain, _ = pub.(RetainPublisher)
	r.linker, _ = pub.(DeviceLinker)
	r.acker, _ = pub.(Acker)
	r.rep.Devices = opts.Devices
	r.rep.FirstAt = opts.Start.Truncate(time.Second).UTC()
	err := r.run(ctx)
	r.rep.CaughtUp = r.caughtUp
	r.rep.Truth = fleet.Truth(r.reached)
	for _, tr := range r.rep.Truth {
		r.rep.Faulty = append(r.rep.Faulty, tr.Device)
	}
	if r.acker != nil {
		r.rep.Acked = r.acker.Acked()
	}
	r.rep.DeviceDays = float64(opts.Devices) * r.reached.Sub(r.rep.FirstAt).Hours() / 24
	return r.rep, err
}

// DefaultStart is the event time a run starts at when Options.Start is
// zero: now for a real-time run; for a faster run, now minus the span it
// will simulate, so that no timestamp lies in the future (ingest rejects
// readings beyond ingest.max_future_skew).
func DefaultStart(opts Options, now time.Time) time.Time {
	if opts.Interval > 0 && opts.Interval == opts.step() {
		return now.Truncate(time.Second)
	}
	// One step more: readings are staggered inside their step.
	return now.Add(-opts.horizon() - opts.step()).Truncate(time.Second)
}

type runner struct {
	opts     Options
	fleet    *Fleet
	pub      Publisher
	retain   RetainPublisher
	linker   DeviceLinker
	acker    Acker
	progress io.Writer
	rep      Report
	reached  time.Time // event time the run reached
	caughtUp bool      // an accelerated run stopped because its event time reached now
	began    time.Time
	lastProg time.Time
}

func (r *runner) run(ctx context.Context) error {
	r.began = time.Now()
	r.lastProg = r.began
	r.reached = r.rep.FirstAt
	defer func() { r.rep.Elapsed = time.Since(r.began) }()
	if r.opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.Duration)
		defer cancel()
	}
	var runErr error
	var s sample
	step := r.fleet.step
	simEnd := int64(-1)
	if r.opts.SimDuration > 0 {
		simEnd = r.fleet.start + int64(r.opts.SimDuration/time.Second)
	}
	prefix := r.opts.Prefix + "/"
	accelerated := r.opts.Interval < r.opts.step()
loop:
	for tick := int64(0); ; tick++ {
		tickAt := r.fleet.start + tick*step
		if simEnd >= 0 && tickAt >= simEnd {
			break
		}
		if accelerated && tickAt+step > time.Now().Unix() {
			r.caughtUp = true
			break // the event time reached the wall clock: later readings would lie in the future
		}
		for i := range r.fleet.devices {
			if ctx.Err() != nil {
				break loop
			}
			o := r.fleet.next(i, tick, &s)
			id := string(r.fleet.ID(i))
			if tick == 0 && r.opts.Status && r.linker == nil && r.retain != nil {
				if runErr = r.send(ctx, prefix+id+"/status", []byte("online"), true); runErr != nil {
					break loop
				}
				r.rep.Status++
			}
			if o.status != statusNone {
				if runErr = r.status(ctx, prefix+id+"/status", telemetry.DeviceID(id), o.status); runErr != nil {
					break loop
				}
			}
			if o.reading {
				if r.opts.Throttle != nil {
					if runErr = r.opts.Throttle.Wait(ctx, r.rep.Readings); runErr != nil {
						break loop
					}
				}
				rd := r.fleet.reading(i, o.at, &s)
				if runErr = r.send(ctx, prefix+id+"/telemetry", EncodeJSON(rd), false); runErr != nil {
					break loop
				}
				r.rep.Readings++
				r.rep.LastAt = rd.At
			}
			if o.event {
				ev := telemetry.DeviceEvent{Device: telemetry.DeviceID(id), At: time.Unix(o.at, 0).UTC(), Code: s.event, Message: s.message}
				if runErr = r.send(ctx, prefix+id+"/events", EncodeEvent(ev), false); runErr != nil {
					break loop
				}
				r.rep.Events++
			}
			if r.opts.Count > 0 && r.rep.Sent >= r.opts.Count {
				r.reached = time.Unix(tickAt+step, 0).UTC()
				break loop
			}
		}
		r.reached = time.Unix(tickAt+step, 0).UTC()
		if simEnd >= 0 && r.reached.Unix() > simEnd {
			r.reached = time.Unix(simEnd, 0).UTC()
		}
		r.showProgress(false)
		if r.opts.Interval > 0 {
			wait := time.Until(r.began.Add(time.Duration(tick+1) * r.opts.Interval))
			if err := sleep(ctx, wait); err != nil {
				break
			}
		}
	}
	if runErr != nil && ctx.Err() != nil {
		runErr = nil // stopped by ctx or Duration: not an error
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.pub.Flush(fctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("wait for broker acknowledgements: %w", err)
	}
	r.showProgress(true)
	return runErr
}

// send publishes one message, holding the rate limit.
func (r *runner) send(ctx context.Context, topic string, payload []byte, retained bool) error {
	if r.opts.Rate > 0 {
		due := r.began.Add(time.Duration(float64(r.rep.Sent) / r.opts.Rate * float64(time.Second)))
		if wait := time.Until(due); wait > time.Millisecond {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
	var err error
	if retained {
		err = r.retain.PublishRetained(ctx, topic, payload)
	} else {
		err = r.pub.Publish(ctx, topic, payload)
	}
	if err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	r.rep.Sent++
	return nil
}

// status announces a connectivity change: with a connection per device the
// connection really drops (the broker publishes the Last Will); on a shared
// connection the simulator publishes what the Will would say.
func (r *runner) status(ctx context.Context, topic string, dev telemetry.DeviceID, st int8) error {
	switch {
	case r.linker != nil && st == statusOffline:
		return r.linker.Drop(dev)
	case r.linker != nil:
		return r.linker.Reconnect(ctx, dev)
	case r.opts.Status && r.retain != nil:
		payload := "online"
		if st == statusOffline {
			payload = "offline"
		}
		if err := r.send(ctx, topic, []byte(payload), true); err != nil {
			return err
		}
		r.rep.Status++
	}
	return nil
}

func (r *runner) showProgress(final bool) {
	if r.progress == nil || (!final && time.Since(r.lastProg) < r.opts.Progress) {
		return
	}
	r.lastProg = time.Now()
	el := time.Since(r.began).Seconds()
	injected := 0
	for _, fl := range r.fleet.faults {
		if fl.onset < r.reached.Unix() {
			injected++
		}
	}
	acked := ""
	if r.acker != nil {
		acked = fmt.Sprintf(", %d acked", r.acker.Acked())
	}
	start, end := "", "\n"
	if r.opts.ProgressLive { // one line, rewritten in place on a terminal
		start, end = "\r\x1b[K", ""
		if final {
			end = "\n"
		}
	}
	fmt.Fprintf(r.progress, "%ssent %d (%.0f msg/s%s), event time %s, faults injected %d%s",
		start, r.rep.Sent, float64(r.rep.Sent)/max(el, 1e-9), acked, r.reached.Format(time.RFC3339), injected, end)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Summary writes a human summary of rep to w.
func (rep Report) Summary(w io.Writer) {
	fmt.Fprintf(w, "sent %d messages (%d readings, %d events, %d status) from %d devices in %s",
		rep.Sent, rep.Readings, rep.Events, rep.Status, rep.Devices, rep.Elapsed.Round(time.Millisecond))
	if rep.Elapsed > 0 {
		fmt.Fprintf(w, ", %.0f msg/s", float64(rep.Sent)/rep.Elapsed.Seconds())
	}
	if rep.Acked > 0 {
		fmt.Fprintf(w, ", %d acknowledged", rep.Acked)
	}
	if rep.Readings > 0 {
		fmt.Fprintf(w, ", event time %s to %s", rep.FirstAt.Format(time.RFC3339), rep.LastAt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if rep.CaughtUp {
		fmt.Fprintln(w, "stopped early: the event time reached the wall clock")
	}
	counts := map[string]int{}
	var order []string
	for _, tr := range rep.Truth {
		if counts[tr.Scenario] == 0 {
			order = append(order, tr.Scenario)
		}
		counts[tr.Scenario]++
	}
	slices.Sort(order)
	fmt.Fprintf(w, "faults injected: %d\n", len(rep.Truth))
	for _, sc := range order {
		fmt.Fprintf(w, "  %-24s %d\n", sc, counts[sc])
	}
}
