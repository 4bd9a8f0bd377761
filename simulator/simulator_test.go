package simulator

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/telemetry"
)

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu       sync.Mutex
	topics   []string
	payloads [][]byte
	retained []bool
	flushes  int
}

func (r *recorder) Publish(_ context.Context, topic string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.topics = append(r.topics, topic)
	r.payloads = append(r.payloads, payload)
	r.retained = append(r.retained, false)
	return nil
}

func (r *recorder) PublishRetained(ctx context.Context, topic string, payload []byte) error {
	r.Publish(ctx, topic, payload)
	r.retained[len(r.retained)-1] = true
	return nil
}

func (r *recorder) Flush(context.Context) error { r.flushes++; return nil }

var start = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// testOptions is the legacy heat pump fleet: 7 devices, 2 overheat.
func testOptions() Options {
	o := DefaultOptions()
	o.Devices = 7
	o.FaultyFraction = 2.0 / 7
	o.Interval = 0
	o.Step = 10 * time.Second
	o.Start = start
	o.Count = 7 * 30
	return o
}

// mixedOptions is every product kind and every scenario over ten days.
func mixedOptions() Options {
	o := DefaultOptions()
	o.Devices = 40
	o.Kinds = nil
	o.Scenarios = nil
	o.FaultyFraction = 0.5
	o.FaultAfter = 0
	o.Interval = 0
	o.Step = 5 * time.Minute
	o.Start = start
	o.SimDuration = 4 * 24 * time.Hour
	o.Status = true
	return o
}

// message is one decoded publish of a run.
type message struct {
	dev     telemetry.DeviceID
	kind    string // telemetry, events, status
	reading telemetry.Reading
	event   telemetry.DeviceEvent
	status  string
}

func decodeAll(t *testing.T, rec *recorder) []message {
	t.Helper()
	var out []message
	for i, topic := range rec.topics {
		parts := strings.Split(topic, "/")
		require.Len(t, parts, 3, topic)
		m := message{dev: telemetry.DeviceID(parts[1]), kind: parts[2]}
		switch m.kind {
		case "telemetry":
			dev, err := ingest.DeviceFromTopic("devices", topic)
			require.NoError(t, err)
			m.reading, err = ingest.DecodeJSON(dev, rec.payloads[i], time.Now(), ingest.DefaultLimits())
			require.NoError(t, err, "payload %s", rec.payloads[i])
			require.False(t, rec.retained[i])
		case "events":
			var ev struct {
				TS      time.Time `json:"ts"`
				Code    string    `json:"code"`
				Message string    `json:"message"`
			}
			require.NoError(t, json.Unmarshal(rec.payloads[i], &ev))
			m.event = telemetry.DeviceEvent{Device: m.dev, At: ev.TS, Code: ev.Code, Message: ev.Message}
		case "status":
			m.status = string(rec.payloads[i])
			require.True(t, rec.retained[i], "status is retained")
		default:
			t.Fatalf("unexpected topic %s", topic)
		}
		out = append(out, m)
	}
	return out
}

// TestEncodeMatchesIngestDecoder proves the simulator speaks the device
// contract: every reading of every kind decodes in ingest back to what the
// fleet generated, and re-encodes to the same bytes.
func TestEncodeMatchesIngestDecoder(t *testing.T) {
	rec := &recorder{}
	opts := mixedOptions()
	opts.SimDuration = 2 * 24 * time.Hour
	rep, err := Run(t.Context(), opts, rec, nil)
	require.NoError(t, err)
	msgs := decodeAll(t, rec)
	var readings []telemetry.Reading
	for i, m := range msgs {
		if m.kind == "telemetry" {
			readings = append(readings, m.reading)
			require.Equal(t, string(rec.payloads[i]), string(EncodeJSON(m.reading)))
		}
	}
	require.Equal(t, rep.Readings, len(readings))
	fleet := NewFleet(opts, start)
	n := 0
	for tick := int64(0); tick < 2*24*12; tick++ {
		for i := range fleet.Len() {
			if r, ok := fleet.Reading(i, tick); ok {
				require.Equal(t, r, readings[n])
				n++
			}
		}
	}
	require.Equal(t, len(readings), n)
}

func TestEncodeJSONEdgeValues(t *testing.T) {
	r := telemetry.Reading{
		Device: "d", Model: "m-1", Firmware: `1.0 "beta"`, At: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Fields: []telemetry.Field{{Name: "a", Value: -1e-300}, {Name: "b", Value: 1e21}, {Name: "c", Value: 1, IsBool: true}},
	}
	lim := ingest.DefaultLimits()
	lim.MaxAbsValue = 0 // this tests the encoder's edge values, not ingest's range limit
	got, err := ingest.DecodeJSON("d", EncodeJSON(r), r.At, lim)
	require.NoError(t, err)
	require.Equal(t, r, got)
}

func TestEncodeEvent(t *testing.T) {
	ev := telemetry.DeviceEvent{Device: "d", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Code: "E42", Message: "über \"hot\"\n"}
	var got struct {
		TS      time.Time `json:"ts"`
		Code    string    `json:"code"`
		Message string    `json:"message"`
	}
	require.NoError(t, json.Unmarshal(EncodeEvent(ev), &got))
	require.Equal(t, ev.At, got.TS)
	require.Equal(t, ev.Code, got.Code)
	require.Equal(t, ev.Message, got.Message)
}

func TestRunIsDeterministicAndBounded(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	repA, err := Run(t.Context(), mixedOptions(), a, nil)
	require.NoError(t, err)
	repB, err := Run(t.Context(), mixedOptions(), b, nil)
	require.NoError(t, err)
	require.Equal(t, a.topics, b.topics)
	require.Equal(t, a.payloads, b.payloads, "same seed, same bytes")
	require.Equal(t, repA.Truth, repB.Truth)
	require.NotEmpty(t, repA.Truth)
	// sim-duration bounds the run: every device sends one reading per step, except while offline.
	fleet := NewFleet(mixedOptions(), start)
	perDevice := map[telemetry.DeviceID]int{}
	for _, m := range decodeAll(t, a) {
		if m.kind == "telemetry" {
			perDevice[m.dev]++
		}
	}
	for i := range fleet.Len() {
		want := 4 * 24 * 12
		for _, tr := range repA.Truth {
			if tr.Device == fleet.ID(i) && tr.End != nil {
				for tick := range int64(want) {
					if at := fleet.At(i, tick); !at.Before(tr.Onset) && at.Before(*tr.End) {
						want--
					}
				}
			}
		}
		require.Equal(t, want, perDevice[fleet.ID(i)], "device %s", fleet.ID(i))
	}
	require.Positive(t, a.flushes)

	other := mixedOptions()
	other.Seed = 2
	c := &recorder{}
	_, err = Run(t.Context(), other, c, nil)
	require.NoError(t, err)
	require.NotEqual(t, a.payloads, c.payloads)

	legacy, err := Run(t.Context(), testOptions(), &recorder{}, nil)
	require.NoError(t, err)
	require.Equal(t, 210, legacy.Sent, "count bounds the run")
	require.Len(t, legacy.Faulty, 2)
}

func TestFaultyDevicesRampOverThreshold(t *testing.T) {
	rec := &recorder{}
	rep, err := Run(t.Context(), testOptions(), rec, nil)
	require.NoError(t, err)
	faulty := map[telemetry.DeviceID]bool{}
	for _, id := range rep.Faulty {
		faulty[id] = true
	}
	maxTemp := map[telemetry.DeviceID]float64{}
	for _, m := range decodeAll(t, rec) {
		f, ok := m.reading.Field("supply_temp_c")
		require.True(t, ok)
		maxTemp[m.dev] = max(maxTemp[m.dev], f.Value)
	}
	require.Len(t, maxTemp, 7)
	for dev, m := range maxTemp {
		if faulty[dev] {
			require.Greater(t, m, 65.0, "faulty %s must overheat", dev)
		} else {
			require.Less(t, m, 52.0, "healthy %s must stay normal", dev)
		}
	}
}

func TestRunStopsOnDuration(t *testing.T) {
	o := testOptions()
	o.Count = 0
	o.Interval = 5 * time.Millisecond
	o.Duration = 100 * time.Millisecond
	rec := &recorder{}
	rep, err := Run(t.Context(), o, rec, nil)
	require.NoError(t, err)
	require.Positive(t, rep.Sent)
	require.Less(t, rep.Elapsed, 5*time.Second)
}

func TestRunHoldsRate(t *testing.T) {
	o := testOptions()
	o.Count = 60
	o.Rate = 200
	rep, err := Run(t.Context(), o, &recorder{}, nil)
	require.NoError(t, err)
	require.Equal(t, 60, rep.Sent)
	require.GreaterOrEqual(t, rep.Elapsed, 250*time.Millisecond, "60 messages at 200/s take about 300ms")
	require.Less(t, rep.Elapsed, 3*time.Second)
}

func TestProgressLine(t *testing.T) {
	o := mixedOptions()
	o.SimDuration = 24 * time.Hour
	o.Progress = time.Nanosecond
	var sb strings.Builder
	_, err := Run(t.Context(), o, &recorder{}, &sb)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	require.Greater(t, len(lines), 10)
	require.Regexp(t, `^sent \d+ \(\d+ msg/s\), event time 2026-11-03T00:00:00Z, faults injected \d+$`, lines[len(lines)-1])

	o.ProgressLive = true
	sb.Reset()
	_, err = Run(t.Context(), o, &recorder{}, &sb)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(sb.String(), "\n"), "one line, rewritten")
	require.Greater(t, strings.Count(sb.String(), "\r\x1b[K"), 10)
}

func TestDefaultStartKeepsTimestampsInThePast(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	o := mixedOptions()
	o.SimDuration = 720 * time.Hour
	require.Equal(t, now.Add(-720*time.Hour-5*time.Minute), DefaultStart(o, now), "accelerated: the run ends a step before now")
	o.Interval = o.Step
	require.Equal(t, now, DefaultStart(o, now), "real time starts now")
}

func TestAcceleratedRunStopsAtNow(t *testing.T) {
	o := mixedOptions()
	o.SimDuration, o.Count = 0, 1_000_000
	o.Step = 10 * time.Minute
	o.Start = time.Now().Add(-2 * time.Hour)
	rep, err := Run(t.Context(), o, &recorder{}, nil)
	require.NoError(t, err)
	require.True(t, rep.CaughtUp)
	require.Less(t, rep.Sent, o.Count)
	require.False(t, rep.LastAt.After(time.Now()), "no reading from the future: %s", rep.LastAt)
	require.Greater(t, rep.Readings, 10*40, "it ran until about now")
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		msg  string
	}{
		{"unbounded", func(o *Options) { o.Count, o.Duration, o.SimDuration = 0, 0, 0 }, "bound the run"},
		{"no devices", func(o *Options) { o.Devices = 0 }, "devices: 0"},
		{"fraction", func(o *Options) { o.FaultyFraction = 1.5 }, "faulty: 1.5"},
		{"step", func(o *Options) { o.Interval, o.Step = 0, 0 }, "step: must be positive"},
		{"step seconds", func(o *Options) { o.Step = 1500 * time.Millisecond }, "whole number of seconds"},
		{"scenario", func(o *Options) { o.Scenarios = []string{"gremlins"} }, `unknown scenario "gremlins"`},
		{"kind", func(o *Options) { o.Kinds = []Kind{9} }, "kinds: Kind(9)"},
		{"negative rate", func(o *Options) { o.Rate = -1 }, "must not be negative"},
		{"id prefix", func(o *Options) { o.IDPrefix = "a/b" }, "id-prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.mod(&o)
			err := o.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
	require.NoError(t, testOptions().Validate())
	require.NoError(t, mixedOptions().Validate())
}

func TestSummary(t *testing.T) {
	rep, err := Run(t.Context(), testOptions(), &recorder{}, nil)
	require.NoError(t, err)
	var sb strings.Builder
	rep.Summary(&sb)
	require.Contains(t, sb.String(), "sent 210 messages (210 readings, 0 events, 0 status) from 7 devices")
	require.Contains(t, sb.String(), "faults injected: 2\n  overheating              2\n")
}

func TestParseKind(t *testing.T) {
	for _, k := range AllKinds() {
		got, err := ParseKind(k.String())
		require.NoError(t, err)
		require.Equal(t, k, got)
		got, err = ParseKind(k.Model())
		require.NoError(t, err)
		require.Equal(t, k, got)
	}
	_, err := ParseKind("toaster")
	require.ErrorContains(t, err, `unknown product kind "toaster"`)
}

// BenchmarkFleetReading measures the cost of one reading: the model and the
// JSON encoding, over a mixed fleet with faults.
func BenchmarkFleetReading(b *testing.B) {
	o := mixedOptions()
	o.Devices = 1000
	fleet := NewFleet(o, start)
	var s sample
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		i, tick := n%fleet.Len(), int64(n/fleet.Len())
		out := fleet.next(i, tick, &s)
		if out.reading {
			_ = EncodeJSON(fleet.reading(i, out.at, &s))
		}
		n++
	}
}

// TestFleetMemoryPerDevice builds a 100,000-device fleet and reports
// (with -v) and bounds the heap it holds per device.
func TestFleetMemoryPerDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a 100,000-device fleet")
	}
	o := mixedOptions()
	o.Devices = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fleet := NewFleet(o, start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(o.Devices)
	t.Logf("fleet of %d devices (%d faults): %.1f bytes/device", fleet.Len(), len(fleet.faults), per)
	require.Less(t, per, 64.0)

	// Three ticks of the whole fleet: model and JSON encoding of 300,000 readings.
	var s sample
	began := time.Now()
	bytes := 0
	for tick := range int64(3) {
		for i := range fleet.Len() {
			if out := fleet.next(i, tick, &s); out.reading {
				bytes += len(EncodeJSON(fleet.reading(i, out.at, &s)))
			}
		}
	}
	el := time.Since(began)
	t.Logf("generated and encoded 300000 readings (%d bytes) in %s: %.0f readings/s on one core", bytes, el.Round(time.Millisecond), 300000/el.Seconds())
	runtime.KeepAlive(fleet)
}
