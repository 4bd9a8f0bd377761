package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/config"
	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/simulator"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// pipeline is a Publisher that runs what serve runs on a device's messages
// (decode, detectors, ticketing on SQLite), without the broker and
// InfluxDB, so the shipped profiles can be scored on a month of fleet
// data in seconds. Telemetry goes through ingest.DecodeJSON to
// Engine.Observe, {prefix}/{id}/events through ingest.DecodeEvent to
// Engine.ObserveEvent, and {prefix}/{id}/status (the Last Will, emulated by
// the simulator on its shared connection) through ingest.DecodeStatus to
// Engine.ObserveStatus. Offline rules are ticked on event time: the clock
// is the latest event time seen, and Engine.Tick runs each time it moves
// on by tick (serve ticks on its wall clock every tick_interval).
type pipeline struct {
	t       *testing.T
	prefix  string
	engine  *detectors.Engine
	tickets *ticketing.Service
	tick    time.Duration
	now     time.Time // event-time clock: the latest reading or event time seen
	ticked  time.Time // the clock at the last Engine.Tick

	readings, events, statuses int
}

func (p *pipeline) Publish(ctx context.Context, topic string, payload []byte) error {
	dev, kind, _, err := ingest.ParseTopic(p.prefix, topic, ingest.FormatJSON)
	require.NoError(p.t, err)
	var fs []telemetry.Finding
	switch kind {
	case ingest.TopicTelemetry:
		r, err := ingest.DecodeJSON(dev, payload, p.received(), ingest.DefaultLimits())
		require.NoError(p.t, err)
		fs = append(p.advance(r.At), p.engine.Observe(r)...)
		p.readings++
	case ingest.TopicEvents:
		ev, err := ingest.DecodeEvent(dev, payload, p.received(), ingest.DefaultLimits())
		require.NoError(p.t, err)
		fs = append(p.advance(ev.At), p.engine.ObserveEvent(ev)...)
		p.events++
	case ingest.TopicStatus:
		// A status carries no timestamp: it is stamped with the receive
		// time, here the event-time clock.
		st, err := ingest.DecodeStatus(dev, payload, p.received())
		require.NoError(p.t, err)
		fs = p.engine.ObserveStatus(st)
		p.statuses++
	}
	if len(fs) > 0 {
		return p.tickets.Handle(ctx, fs...)
	}
	return nil
}

// PublishRetained takes the status topic (Options.Status).
func (p *pipeline) PublishRetained(ctx context.Context, topic string, payload []byte) error {
	return p.Publish(ctx, topic, payload)
}

// received is the receive time a message is decoded with: the event-time
// clock (or the wall clock before the first message), so max_future_skew
// judges the simulated ts as ingest judges a live one.
func (p *pipeline) received() time.Time {
	if p.now.IsZero() {
		return time.Now()
	}
	return p.now
}

// advance moves the event-time clock to at and ticks the offline rules when
// it has moved on by p.tick since the last tick.
func (p *pipeline) advance(at time.Time) []telemetry.Finding {
	if !at.After(p.now) {
		return nil
	}
	p.now = at
	if p.ticked.IsZero() {
		p.ticked = at
		return nil
	}
	if at.Sub(p.ticked) < p.tick {
		return nil
	}
	p.ticked = at
	return p.engine.Tick(at)
}

func (p *pipeline) Flush(context.Context) error { return nil }

// evaluateOffline runs opts through the pipeline with the profiles of the
// shipped example configuration and scores the tickets.
func evaluateOffline(t *testing.T, opts simulator.Options) simulator.Evaluation {
	cfg, err := config.Load(config.Options{File: filepath.Join("..", "..", "examples", "forewarn.yaml")})
	require.NoError(t, err)
	engine, err := detectors.NewEngine(cfg.Profiles)
	require.NoError(t, err)
	store, err := ticketing.Open(t.Context(), ticketing.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "t.db")})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	svc := ticketing.NewService(store, ticketing.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	opts.Status = true // the Last Will, emulated on the shared connection
	pl := &pipeline{t: t, prefix: opts.Prefix, engine: engine, tickets: svc, tick: cfg.Detectors.TickInterval}
	rep, err := simulator.Run(t.Context(), opts, pl, nil)
	require.NoError(t, err)
	require.Equal(t, rep.Readings, pl.readings)
	require.Equal(t, rep.Events, pl.events)
	require.Equal(t, rep.Status, pl.statuses)
	if fs := pl.engine.Tick(rep.LastAt.Add(opts.Step)); len(fs) > 0 { // the end of the run, as serve's clock would reach it
		require.NoError(t, svc.Handle(t.Context(), fs...))
	}
	var tickets []simulator.Ticket
	cursor := ""
	for {
		items, next, err := store.ListTickets(t.Context(), ticketing.Filter{Limit: ticketing.MaxLimit, Cursor: cursor})
		require.NoError(t, err)
		for _, tk := range items {
			tickets = append(tickets, simulator.Ticket{ID: tk.ID, Device: telemetry.DeviceID(tk.DeviceID), Fault: tk.Fault, OpenedAt: tk.OpenedAt})
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return simulator.Evaluate(simulator.EvalInput{
		Truth: rep.Truth, Tickets: tickets, Start: rep.FirstAt, End: rep.LastAt.Add(opts.Step), DeviceDays: rep.DeviceDays,
		InFleet: func(id telemetry.DeviceID) bool { return fleetDevice(string(id), opts.IDPrefix, opts.Devices) },
	})
}

// standardOptions is the standard scenario of docs/detection.md, scaled by devices.
func standardOptions(devices int) simulator.Options {
	o := simulator.DefaultOptions()
	o.Devices = devices
	o.Kinds, o.Scenarios = nil, []string{"all"}
	o.FaultyFraction, o.FaultAfter = 0.2, 0
	o.Interval, o.Step = 0, 5*time.Minute
	o.SimDuration = 720 * time.Hour
	o.Start = time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC)
	o.Seed = 7
	return o
}

// TestShippedProfilesOnSimulatedFleet scores examples/forewarn.yaml on a
// month of a mixed fleet (detectors and ticketing real, no broker).
func TestShippedProfilesOnSimulatedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("a month of 60 devices: about 10 s")
	}
	ev := evaluateOffline(t, standardOptions(60))
	var sb strings.Builder
	ev.Table(&sb)
	t.Logf("\n%s", sb.String())
	require.Positive(t, ev.Faults)
	require.LessOrEqual(t, ev.FalseTicketsPer1000DeviceDays, 1.0)
	require.LessOrEqual(t, ev.DuplicateTickets, ev.Faults/10, "at most one duplicate per ten faults")
	// Every injected fault is caught: each scenario has a rule in the
	// shipped profiles (simulator.Scenario.Fault) ...
	for _, se := range ev.Scenarios {
		require.NotEmpty(t, se.Fault, "scenario %s has no rule", se.Scenario)
		require.GreaterOrEqual(t, se.Recall, 0.99, "scenario %s", se.Scenario)
	}
	require.GreaterOrEqual(t, ev.Recall, 0.99)
	// ... and nearly always before the customer notices.
	noticed := 0
	for _, se := range ev.Scenarios {
		noticed += se.Noticed
	}
	require.GreaterOrEqual(t, ev.DetectedBeforeNotice, noticed*9/10, "detected before notice")
	require.NotNil(t, ev.LeadTimeMedianS)
	require.GreaterOrEqual(t, *ev.LeadTimeMedianS, 1800.0, "median lead at least half an hour")
	require.NotNil(t, ev.LeadTimeP10S)
	require.GreaterOrEqual(t, *ev.LeadTimeP10S, 0.0, "p10 lead not late")
}

// TestStandardScenarioOffline runs the standard scenario of
// docs/detection.md (200 devices, --faulty 0.4, 720h from 2026-10-01)
// through the in-process pipeline, once per seed in FOREWARN_SIM_SEEDS
// (e.g. "7" for the documented table, "3,11,23" for tuning on other
// seeds), logs each table and checks the same bounds as
// TestShippedProfilesOnSimulatedFleet. About a minute per seed.
func TestStandardScenarioOffline(t *testing.T) {
	seeds := os.Getenv("FOREWARN_SIM_SEEDS")
	if seeds == "" {
		t.Skip("set FOREWARN_SIM_SEEDS=7 (or a list) to run the standard scenario in-process (about a minute per seed)")
	}
	for _, s := range strings.Split(seeds, ",") {
		seed, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		require.NoError(t, err, "FOREWARN_SIM_SEEDS")
		t.Run("seed="+s, func(t *testing.T) {
			o := standardOptions(200)
			o.FaultyFraction, o.Seed = 0.4, seed
			o.Start = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
			ev := evaluateOffline(t, o)
			var sb strings.Builder
			ev.Table(&sb)
			t.Logf("seed %d\n%s", seed, sb.String())
			require.Zero(t, ev.FalseTickets, "false tickets by fault: %v", ev.FalseByFault)
			require.LessOrEqual(t, ev.DuplicateTickets, ev.Faults/10)
		})
	}
}

func TestSimulateFlagErrors(t *testing.T) {
	cfgFile := filepath.Join("..", "..", "config", "testdata", "good-minimal.yaml")
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--speed", "fast", "--count", "1"}, `speed: "fast" is not a positive number or "max"`},
		{[]string{"--speed", "0", "--count", "1"}, `speed: "0"`},
		{[]string{"--kinds", "toaster", "--count", "1"}, `unknown product kind "toaster"`},
		{[]string{"--scenarios", "gremlins", "--count", "1"}, `unknown scenario "gremlins"`},
		{[]string{"--qos", "2", "--count", "1"}, "qos: 2 is not 0 or 1"},
		{[]string{"--connections", "many", "--count", "1"}, `connections: "many" is not shared or per-device`},
		{[]string{"--connections", "per-device", "--devices", "5000", "--count", "1"}, "per-device allows at most 2000 devices"},
		{[]string{"--start", "yesterday", "--count", "1"}, "start:"},
		{[]string{"--speed", "max"}, "bound the run"},
		{[]string{"--evaluate", "--count", "1"}, "--evaluate needs a token"},
		{[]string{"--register", "--count", "1"}, "--register needs an admin token"},
		{[]string{"--register", "--register-workers", "0", "--token", "t", "--count", "1"}, "register-workers: 0 is out of range 1..256"},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			err := run(t.Context(), append([]string{"simulate", "--config", cfgFile}, tt.args...), io.Discard, io.Discard)
			require.Error(t, err)
			var ue usageError
			require.ErrorAs(t, err, &ue)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestFleetDevice(t *testing.T) {
	require.True(t, fleetDevice("sim-00042", "sim-", 43))
	require.False(t, fleetDevice("sim-00043", "sim-", 43))
	require.False(t, fleetDevice("other-00001", "sim-", 43))
	require.False(t, fleetDevice("sim-abc", "sim-", 43))
}

func TestSimulateFlagsResolve(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name           string
		args           []string
		step, interval time.Duration
		startBefore    time.Duration // start lies about this far before now (the span, and one step)
	}{
		{"real time", []string{"--count", "10"}, time.Minute, time.Minute, 0},
		{"sixty times", []string{"--speed", "60", "--sim-duration", "24h"}, time.Minute, time.Second, 24*time.Hour + time.Minute},
		{"max", []string{"--speed", "max", "--step", "5m", "--sim-duration", "720h"}, 5 * time.Minute, 0, 720*time.Hour + 5*time.Minute},
		{"legacy interval", []string{"--interval", "2s", "--duration", "1h"}, 2 * time.Second, 2 * time.Second, 0},
		{"demo (scripts/demo.sh)", []string{"--devices", "10", "--faulty", "0.2", "--kinds", "heatpump", "--scenarios", "overheating", "--fault-after", "6", "--interval", "2s", "--duration", "24h"}, 2 * time.Second, 2 * time.Second, 0},
		{"interval and step", []string{"--interval", "1s", "--step", "10s", "--count", "100", "--devices", "10"}, 10 * time.Second, time.Second, 110 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sf := newSimulateFlags()
			var interval time.Duration
			fs := pflag.NewFlagSet("simulate", pflag.ContinueOnError)
			sf.register(fs, &interval)
			require.NoError(t, fs.Parse(tt.args))
			var cfg config.Config
			cfg.MQTT.TopicPrefix, cfg.HTTP.Addr, cfg.HTTP.AdminToken = "devices", "127.0.0.1:8080", "tok"
			require.NoError(t, sf.resolve(cfg, fs, interval))
			require.Equal(t, tt.step, sf.opts.Step)
			require.Equal(t, tt.interval, sf.opts.Interval)
			require.WithinDuration(t, now.Add(-tt.startBefore), sf.opts.Start, 2*time.Second)
			require.Equal(t, "http://127.0.0.1:8080", sf.api)
			require.Equal(t, "tok", sf.token)
			if !strings.HasPrefix(tt.name, "demo") {
				require.Len(t, sf.opts.Kinds, 4)
			}
		})
	}
}
