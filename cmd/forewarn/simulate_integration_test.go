package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/simulator"
	"github.com/forewarn/forewarn/ticketing"
)

// shippedProfiles returns the profiles section of examples/forewarn.yaml.
func shippedProfiles(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "forewarn.yaml"))
	require.NoError(t, err)
	i := strings.Index(string(b), "\nprofiles:\n")
	require.Positive(t, i)
	return string(b[i+1:])
}

// TestSimulateEvaluateIntegration is a small accelerated run of `forewarn
// simulate --evaluate` against `forewarn serve` (in-process) with a real
// Mosquitto and InfluxDB and the shipped profiles: three days of 24
// devices of the four kinds, half of them with a fault. Bounds for the
// default profiles: no reading rejected (event time starts in the past),
// every sudden fault and every fault the customer noticed detected (the
// fault-code scenarios too: serve feeds events to the engine), recall at
// least 0.75, the 10th percentile lead not negative, and no false ticket in
// 72 device-days.
// simReport is the JSON report of simulate --report.
type simReport struct {
	Recall       float64  `json:"recall"`
	LeadMedian   *float64 `json:"lead_time_median_s"`
	LeadP10      *float64 `json:"lead_time_p10_s"`
	FalsePer1000 float64  `json:"false_tickets_per_1000_device_days"`
	FalseTickets int      `json:"false_tickets"`
	Duplicates   int      `json:"duplicate_tickets"`
	Faults       int      `json:"faults"`
	DeviceDays   float64  `json:"device_days"`
	Scenarios    []simulator.ScenarioEval
	Run          struct{ Messages, Readings int }
}

// simulateAgainstServe starts Mosquitto, InfluxDB and serve (in-process,
// with the shipped profiles), runs simulate with args plus --config,
// --truth and --report, and returns the report, the truth file and the
// serve instance.
//
// The run is accelerated (its event time lags the wall clock by up to the
// simulated span and catches up at the end), while serve ticks offline rules
// on its wall clock and stamps a status message with its receive time:
// either would take every device for offline, or a Last Will for one
// received long after its event time. So serve's wall-clock tick is set
// beyond the run (tick_interval) and simulate sends no status messages
// (--status=false): offline rules then fire on event time, when a
// device's next reading ends its silence, as in the in-process evaluation.
func simulateAgainstServe(t *testing.T, timeout time.Duration, args ...string) (simReport, string, *instance) {
	in, path, dir := startSimServe(t, "")
	report, truthFile := filepath.Join(dir, "report.json"), filepath.Join(dir, "truth.jsonl")
	var out syncBuffer
	simCtx, simCancel := context.WithTimeout(t.Context(), timeout)
	defer simCancel()
	err := run(simCtx, append([]string{"simulate", "--config", path, "--truth", truthFile, "--report", report, "--status=false"}, args...), &out, io.Discard)
	require.NoError(t, err, out.String())
	t.Logf("simulate:\n%s", out.String())
	var rep simReport
	b, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep))
	return rep, truthFile, in
}

// startSimServe starts Mosquitto, InfluxDB and serve (in-process, with the
// shipped profiles and extra appended to the config) for simulate, and
// returns serve, its config file and a temporary directory.
func startSimServe(t *testing.T, extra string) (*instance, string, string) {
	in := &instance{broker: testenv.Mosquitto(t), influx: testenv.InfluxDB(t), prefix: "sim", done: make(chan error, 1), stderr: &syncBuffer{}}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in.http = "http://" + addr
	cfg := fmt.Sprintf(`
mqtt: {url: %s, client_id: forewarn-simint-%d, topic_prefix: %s}
influx: {url: %s, org: %s, bucket: %s, flush_interval: 200ms}
store: {dsn: "sqlite:%s"}
spool: {dir: "%s"}
http: {addr: "%s", admin_token: %s}
shutdown_timeout: 20s
detectors: {tick_interval: 10000h}
%s
%s`, in.broker.URL, time.Now().UnixNano(), in.prefix, in.influx.URL, in.influx.Org, in.influx.Bucket,
		filepath.Join(dir, "forewarn.db"), filepath.Join(dir, "spool"), addr, testToken, extra, shippedProfiles(t))
	path := filepath.Join(dir, "forewarn.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
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
	return in, path, dir
}

func TestSimulateEvaluateIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	rep, truthFile, in := simulateAgainstServe(t, 3*time.Minute, "--devices", "24", "--sim-duration", "72h", "--step", "5m",
		"--speed", "max", "--seed", "3", "--faulty", "0.5", "--settle", "90s")

	// Every reading was accepted: none rejected as too far in the future.
	require.Equal(t, float64(rep.Run.Readings), in.metric(t, "forewarn_ingest_readings_total"))
	require.Zero(t, in.metric(t, `forewarn_ingest_rejected_total{reason="future_ts"}`))

	// The truth file holds one line per injected fault.
	f, err := os.Open(truthFile)
	require.NoError(t, err)
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var tr simulator.Truth
		require.NoError(t, json.Unmarshal(sc.Bytes(), &tr))
		require.NotEmpty(t, tr.Device)
	}
	require.Equal(t, rep.Faults, lines)
	require.Positive(t, rep.Faults)

	require.InDelta(t, 72, rep.DeviceDays, 0.01)
	require.Zero(t, rep.FalseTickets, "false tickets")
	require.Zero(t, rep.FalsePer1000)
	require.GreaterOrEqual(t, rep.Recall, 0.75)
	require.NotNil(t, rep.LeadMedian)
	require.NotNil(t, rep.LeadP10)
	require.GreaterOrEqual(t, *rep.LeadP10, 0.0, "p10 lead: Forewarn not later than the customer")
	// serve hands the events topic to the engine, so every scenario, the
	// fault codes included, is caught whenever the customer noticed it,
	// and a sudden fault always.
	for _, se := range rep.Scenarios {
		require.GreaterOrEqual(t, se.Detected, se.Noticed, "scenario %s: a fault the customer noticed went undetected", se.Scenario)
		if se.Class == "sudden" {
			require.InDelta(t, 1, se.Recall, 1e-9, "scenario %s", se.Scenario)
		}
	}
	require.LessOrEqual(t, rep.Duplicates, 2)
}

// TestSimulateStandardScenario is the standard scenario of docs/detection.md
// ("Simulated fleet evaluation"): a month of 200 devices, 40% with a fault. It takes minutes,
// so it runs only with FOREWARN_SIM_STANDARD=1.
func TestSimulateStandardScenario(t *testing.T) {
	if os.Getenv("FOREWARN_SIM_STANDARD") == "" {
		t.Skip("set FOREWARN_SIM_STANDARD=1 to run the standard scenario (minutes)")
	}
	rep, _, inst := simulateAgainstServe(t, 60*time.Minute, "--devices", "200", "--sim-duration", "720h", "--step", "5m",
		"--speed", "max", "--seed", "7", "--faulty", "0.4", "--start", "2026-10-01T00:00:00Z", "--settle", "10m")
	require.Positive(t, rep.Faults)
	in := inst
	for _, m := range []string{"forewarn_ingest_messages_total", "forewarn_ingest_readings_total", "forewarn_ingest_sink_errors_total",
		`forewarn_findings_total{state="raised"}`, `forewarn_findings_total{state="cleared"}`, "forewarn_tickets_opened_total",
		"forewarn_ticket_handle_errors_total", "forewarn_ticket_unmatched_clears_total"} {
		t.Logf("%s %v", m, in.metric(t, m))
	}
	t.Logf("serve log (warnings and errors):\n%s", grepLevels(in.stderr.String()))
	// --keep-up held the run back: the broker dropped nothing.
	require.Equal(t, float64(rep.Run.Readings), in.metric(t, "forewarn_ingest_readings_total"))
}

func grepLevels(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

// TestSimulateRegisterIntegration runs simulate against serve with
// registry.unknown_devices: reject (real Mosquitto, InfluxDB, in-process
// serve). Without --register every message of the fleet is refused as
// unknown_device and nothing is stored; with --register the owners and
// devices are put over the REST API first and every reading is accepted;
// a second --register creates nothing.
func TestSimulateRegisterIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	in, path, _ := startSimServe(t, "registry: {unknown_devices: reject}")
	simulate := func(extra ...string) (string, sentCounts) {
		t.Helper()
		var out syncBuffer
		args := append([]string{"simulate", "--config", path, "--devices", "24", "--sim-duration", "72h", "--step", "5m", "--keep-up",
			"--speed", "max", "--seed", "3", "--start", "2026-10-01T00:00:00Z", "--faulty", "0.5", "--status=false"}, extra...)
		require.NoError(t, run(t.Context(), args, &out, io.Discard), out.String())
		t.Logf("simulate %v:\n%s", extra, out.String())
		return out.String(), parseSent(t, out.String())
	}
	const unknown = `forewarn_ingest_rejected_total{reason="unknown_device"}`

	// Unregistered: every reading and event is refused.
	_, first := simulate()
	require.Positive(t, first.readings)
	require.Positive(t, first.events, "faults with codes and the firmware rollout send events")
	require.Eventually(t, func() bool { return in.metric(t, unknown) == float64(first.readings+first.events) },
		time.Minute, 100*time.Millisecond, "every message of the unregistered fleet refused as unknown_device")
	require.Zero(t, in.metric(t, "forewarn_ingest_readings_total"))

	// Registered: every reading accepted, none refused.
	out, second := simulate("--register")
	require.Contains(t, out, "registered 12 customers (12 new) and 24 devices (24 new)")
	require.Eventually(t, func() bool { return in.metric(t, "forewarn_ingest_readings_total") == float64(second.readings) },
		time.Minute, 100*time.Millisecond, "every reading of the registered fleet accepted")
	require.Equal(t, float64(first.readings+first.events), in.metric(t, unknown), "nothing more refused")

	var dev ticketing.Device
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/devices/sim-00002", &dev))
	require.Equal(t, "evcharger-e1", dev.Model)
	require.Equal(t, "cust-00001", dev.CustomerID)
	require.Equal(t, "site-00001", dev.Site)
	require.Equal(t, ticketing.SourceAPI, dev.Source)
	require.NotEmpty(t, dev.Firmware)
	var customers struct {
		Items []ticketing.Customer `json:"items"`
	}
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/customers?limit=100", &customers))
	require.Len(t, customers.Items, 12)
	tiers := map[ticketing.Tier]int{}
	for _, c := range customers.Items {
		tiers[c.Tier]++
		require.NotEmpty(t, c.Timezone)
	}
	require.Positive(t, tiers[ticketing.TierPremium], "some owners are premium")
	require.Positive(t, tiers[ticketing.TierStandard])

	// Again: PUT replaces, nothing new.
	out, _ = simulate("--register", "--count", "24")
	require.Contains(t, out, "registered 12 customers (0 new) and 24 devices (0 new)")
}

type sentCounts struct{ messages, readings, events, status int }

// parseSent reads the counts of simulate's summary line.
func parseSent(t *testing.T, out string) sentCounts {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		var c sentCounts
		if n, _ := fmt.Sscanf(l, "sent %d messages (%d readings, %d events, %d status)", &c.messages, &c.readings, &c.events, &c.status); n == 4 {
			return c
		}
	}
	t.Fatalf("no summary line in\n%s", out)
	return sentCounts{}
}
