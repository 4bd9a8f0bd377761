package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/config"
	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// startServeWith runs serve in-process with the given detectors and
// profiles sections, against fresh mosquitto and influxd.
func startServeWith(t *testing.T, detectorsYAML, profilesYAML string) *instance {
	t.Helper()
	in := newInstance(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in.http = "http://" + addr
	cfg := fmt.Sprintf(`
log: {level: debug}
mqtt: {url: %s, client_id: forewarn-detect-%d, topic_prefix: %s}
influx: {url: %s, org: %s, bucket: %s, flush_interval: 100ms}
store: {dsn: "sqlite:%s"}
spool: {dir: "%s"}
http: {addr: "%s", admin_token: %s}
shutdown_timeout: 20s
detectors:
%s
profiles:
%s
`, in.broker.URL, time.Now().UnixNano(), in.prefix, in.influx.URL, in.influx.Org, in.influx.Bucket,
		filepath.Join(dir, "forewarn.db"), filepath.Join(dir, "spool"), addr, testToken, detectorsYAML, profilesYAML)
	path := filepath.Join(dir, "forewarn.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	in.configPath = path
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- run(ctx, []string{"serve", "--config", path}, io.Discard, in.stderr) }()
	t.Cleanup(func() {
		in.stop(t)
		if t.Failed() {
			t.Logf("serve log:\n%s", in.stderr.String())
		}
	})
	in.waitReady(t)
	return in
}

func ticketOf(tickets []ticketing.Ticket, device, fault string) *ticketing.Ticket {
	for i := range tickets {
		if tickets[i].DeviceID == device && tickets[i].Fault == fault {
			return &tickets[i]
		}
	}
	return nil
}

// TestServeForecastAndOfflineIntegration: through real mosquitto, the
// detector engine and InfluxDB, a forecast rule opens a ticket for a
// slowly clogging filter days before its pressure drop reaches the limit,
// with the predicted crossing time on the ticket and the finding in
// InfluxDB measurement findings; and an offline rule opens a ticket when a
// device falls silent, from the engine's clock.
func TestServeForecastAndOfflineIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	in := startServeWith(t, `  tick_interval: 200ms
  snapshot_dir: `+t.TempDir(), `  filter-x:
    rules:
      - metric: filter_dp_pa
        detector: forecast
        limit: 250
        window: 12h
        horizon: 72h
        fault: filter_clogging
        severity: minor
        customer_visible: true
        remedy: Replace the air filter.
  hp-live:
    rules:
      - detector: offline
        for: 3s
        fault: device_offline
        severity: major`)
	pub := dialPublisher(t, in)

	// A filter clogging at 1 Pa per hour from 120 Pa, a reading every 15
	// minutes of event time, for 110 hours (it would reach 250 Pa at 130h).
	// Event times end 20h in the past: ingest refuses future timestamps.
	start := time.Now().UTC().Add(-130 * time.Hour).Truncate(time.Second)
	var last float64
	for i := 0; i <= 110*4; i++ {
		at := start.Add(time.Duration(i) * 15 * time.Minute)
		last = 120 + float64(i)/4 + 1.5*math.Sin(float64(i)) // deterministic noise
		publish(t, pub, in.prefix+"/flt-1/telemetry",
			fmt.Sprintf(`{"ts": %q, "model": "filter-x", "metrics": {"filter_dp_pa": %.2f}}`, at.Format(time.RFC3339), last))
	}
	var tk *ticketing.Ticket
	require.Eventually(t, func() bool {
		tk = ticketOf(in.openTickets(t), "flt-1", "filter_clogging")
		return tk != nil
	}, 30*time.Second, 100*time.Millisecond, "no filter_clogging ticket")
	require.Less(t, last, 250.0)
	ev := tk.Evidence
	require.Equal(t, "forecast", ev.Detector)
	require.Less(t, ev.Value, 250.0, "raised before the limit was reached")
	// Raised about 72h before the crossing at 130h: after 55h, well before 110h.
	require.True(t, tk.OpenedAt.After(start.Add(55*time.Hour)) && tk.OpenedAt.Before(start.Add(70*time.Hour)), "opened at %s", tk.OpenedAt.Sub(start))
	require.WithinDuration(t, start.Add(130*time.Hour), ev.CrossAt, 12*time.Hour)
	require.GreaterOrEqual(t, ev.Confidence, 0.9)

	// The finding is in InfluxDB too.
	c := influxdb2.NewClient(in.influx.URL, in.influx.Token)
	defer c.Close()
	q := fmt.Sprintf(`from(bucket: %q) |> range(start: -30d, stop: 1d)
	  |> filter(fn: (r) => r._measurement == "findings" and r.fault == "filter_clogging" and r._field == "value")`, in.influx.Bucket)
	require.Eventually(t, func() bool {
		res, err := c.QueryAPI(in.influx.Org).Query(context.Background(), q)
		if err != nil {
			return false
		}
		n := 0
		for res.Next() {
			require.Equal(t, "flt-1", res.Record().ValueByKey("device_id"))
			require.Equal(t, "raised", res.Record().ValueByKey("state"))
			require.InDelta(t, ev.Value, res.Record().Value(), 1e-9)
			require.True(t, res.Record().Time().Equal(tk.OpenedAt))
			n++
		}
		return res.Err() == nil && n == 1
	}, 30*time.Second, 200*time.Millisecond, "finding not in InfluxDB measurement findings")

	// A live device (receive-time timestamps) that stops reporting.
	for range 3 {
		publish(t, pub, in.prefix+"/hp-7/telemetry", `{"model": "hp-live", "metrics": {"supply_temp_c": 40}}`)
	}
	silentSince := time.Now()
	require.Eventually(t, func() bool {
		return ticketOf(in.openTickets(t), "hp-7", "device_offline") != nil
	}, 30*time.Second, 100*time.Millisecond, "no device_offline ticket")
	require.GreaterOrEqual(t, time.Since(silentSince), 2*time.Second, "raised before the device was silent for 3s")
}

// TestReplayFromInfluxIntegration: telemetry written to a real InfluxDB is
// read back for a time range and replayed through the config's profiles,
// giving the findings the live engine gives for the same readings.
func TestReplayFromInfluxIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs influxd (run make test)")
	}
	t.Parallel()
	db := testenv.InfluxDB(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "forewarn.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
influx: {url: %s, org: %s, bucket: %s}
profiles:
  heatpump-a2:
    rules:
      - metric: supply_temp_c
        detector: threshold
        above: 60
        clear_below: 55
        for: 10m
        fault: overheating
        severity: major
      - metric: defrost
        detector: threshold
        above: 0.5
        for: 1h
        fault: defrost_stuck
        severity: minor
`, db.URL, db.Org, db.Bucket)), 0o600))

	// Two devices, a reading every 5 minutes for 3 hours; hp-1 overheats
	// from 1h to 2h; hp-2 is stuck in defrost from 30m on.
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var rs []telemetry.Reading
	for i := range 36 {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		v := 50.0
		if i >= 12 && i < 24 {
			v = 65
		}
		rs = append(rs,
			telemetry.Reading{Device: "hp-1", Model: "heatpump-a2", At: at, Fields: []telemetry.Field{{Name: "supply_temp_c", Value: v}}},
			telemetry.Reading{Device: "hp-2", Model: "heatpump-a2", At: at, Fields: []telemetry.Field{
				{Name: "defrost", Value: map[bool]float64{true: 1, false: 0}[i >= 6], IsBool: true}, {Name: "supply_temp_c", Value: 45}}})
	}
	c := influxdb2.NewClient(db.URL, db.Token)
	defer c.Close()
	w := c.WriteAPIBlocking(db.Org, db.Bucket)
	for _, r := range rs {
		require.NoError(t, w.WriteRecord(context.Background(), strings.TrimSuffix(string(ingest.AppendLine(nil, r)), "\n")))
	}
	// What the engine decides on the same readings, live.
	cfg, err := config.Load(config.Options{File: cfgPath})
	require.NoError(t, err)
	e, err := detectors.NewEngine(cfg.Profiles)
	require.NoError(t, err)
	var want []string
	for _, r := range rs {
		for _, f := range e.Observe(r) {
			want = append(want, fmt.Sprintf("%s %s %s %s", f.At.UTC().Format(time.RFC3339), f.Device, f.Fault, f.State))
		}
	}
	require.Len(t, want, 3) // hp-1 raised and cleared, hp-2 raised

	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"replay", "--config", cfgPath, "--from", start.Format(time.RFC3339),
		"--to", start.Add(24 * time.Hour).Format(time.RFC3339), "--out", out}, &stdout, &stderr), stderr.String())
	require.Contains(t, stderr.String(), "replayed 72 readings of 2 devices")
	b, err := os.ReadFile(filepath.Join(out, "findings.jsonl"))
	require.NoError(t, err)
	var got []string
	for line := range strings.Lines(string(b)) {
		var f struct {
			DeviceID string    `json:"device_id"`
			Fault    string    `json:"fault"`
			State    string    `json:"state"`
			At       time.Time `json:"at"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &f))
		got = append(got, fmt.Sprintf("%s %s %s %s", f.At.UTC().Format(time.RFC3339), f.DeviceID, f.Fault, f.State))
	}
	require.Equal(t, want, got)
	rows, err := os.ReadFile(filepath.Join(out, "hp-1.csv"))
	require.NoError(t, err)
	require.Len(t, strings.Split(strings.TrimSpace(string(rows)), "\n"), 37)

	// --device limits the replay to one device.
	stderr.Reset()
	require.NoError(t, run(t.Context(), []string{"replay", "--config", cfgPath, "--from", start.Format(time.RFC3339),
		"--device", "hp-2", "--out", filepath.Join(dir, "out2")}, &stdout, &stderr), stderr.String())
	require.Contains(t, stderr.String(), "replayed 36 readings of 1 devices")
}

// TestServeReloadOnSIGHUPIntegration: a SIGHUP re-reads the configuration
// file and applies its profiles to the running engine.
func TestServeReloadOnSIGHUPIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	// Not parallel: the signal goes to the whole test process.
	in := startServeWith(t, "  tick_interval: 1h", `  hp-hup:
    rules:
      - metric: t
        detector: threshold
        above: 90
        fault: too_hot
        severity: major`)
	path := in.configPath
	pub := dialPublisher(t, in)
	publish(t, pub, in.prefix+"/hup-1/telemetry", `{"model": "hp-hup", "metrics": {"t": 80}}`)

	// Lower the limit in the file, then SIGHUP: only the new limit (70) can
	// raise on 80.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	cfg := strings.Replace(string(b), "above: 90", "above: 70", 1)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(in.stderr.String(), "detector profiles reloaded") },
		10*time.Second, 50*time.Millisecond)

	publish(t, pub, in.prefix+"/hup-1/telemetry", `{"model": "hp-hup", "metrics": {"t": 80}}`)
	require.Eventually(t, func() bool { return ticketOf(in.openTickets(t), "hup-1", "too_hot") != nil },
		10*time.Second, 100*time.Millisecond, "the reloaded limit did not apply")

	// A bad file is refused and the running rules stay.
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(cfg, "detector: threshold", "detector: thresold", 1)), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(in.stderr.String(), "configuration reload failed, keeping the running rules")
	}, 10*time.Second, 50*time.Millisecond)
}
