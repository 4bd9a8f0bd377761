package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/simulator"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

const testToken = "e2e-admin-token-0123456789"

// instance is one `forewarn serve` run in-process against testenv services.
type instance struct {
	broker *testenv.Broker
	influx *testenv.Influx
	prefix string
	http   string // base URL
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuffer

	configPath string // set by startServeWith
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeConfig writes a serve configuration for in's services and returns its path.
// influxExtra is appended to the influx section, tail to the file (after
// the heatpump-a2 rules: more rules indented by 6, or top-level sections).
func writeConfig(t *testing.T, in *instance, influxExtra string, tail ...string) string {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in.http = "http://" + addr
	cfg := fmt.Sprintf(`
log: {level: debug}
mqtt:
  url: %s
  client_id: forewarn-e2e-%d
  topic_prefix: %s
influx:
  url: %s
  org: %s
  bucket: %s
%s
store: {dsn: "sqlite:%s"}
spool: {dir: "%s"}
http: {addr: "%s", admin_token: %s}
shutdown_timeout: 20s
profiles:
  heatpump-a2:
    rules:
      - metric: supply_temp_c
        detector: threshold
        above: 60
        clear_below: 55
        for: 1m
        fault: overheating
        severity: major
        customer_visible: true
        remedy: Check the circulation pump.
%s
`, in.broker.URL, time.Now().UnixNano(), in.prefix, in.influx.URL, in.influx.Org, in.influx.Bucket, influxExtra,
		filepath.Join(dir, "forewarn.db"), filepath.Join(dir, "spool"), addr, testToken, strings.Join(tail, "\n"))
	path := filepath.Join(dir, "forewarn.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

func newInstance(t *testing.T) *instance {
	return &instance{broker: testenv.Mosquitto(t), influx: testenv.InfluxDB(t), prefix: "e2e", done: make(chan error, 1), stderr: &syncBuffer{}}
}

// startServe runs serve in-process with a config for fresh services and
// waits until it is ready.
func startServe(t *testing.T, influxExtra string, tail ...string) *instance {
	t.Helper()
	in := newInstance(t)
	path := writeConfig(t, in, influxExtra, tail...)
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

func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case err := <-in.done:
			in.done <- err
			t.Fatalf("serve stopped early: %v\n%s", err, in.stderr.String())
		default:
		}
		resp, err := http.Get(in.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "serve never became ready")
}

// stop cancels serve (as SIGTERM does) and returns its error; idempotent.
func (in *instance) stop(t *testing.T) error {
	in.cancel()
	select {
	case err := <-in.done:
		in.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60s")
		return nil
	}
}

func (in *instance) get(t *testing.T, path string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, in.http+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	return resp.StatusCode
}

func (in *instance) openTickets(t *testing.T) []ticketing.Ticket {
	var page struct {
		Items []ticketing.Ticket `json:"items"`
		Next  string             `json:"next"`
	}
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/tickets?status=open&limit=500", &page))
	require.Empty(t, page.Next)
	return page.Items
}

// metric returns the value of one sample line of /metrics, 0 when absent.
func (in *instance) metric(t *testing.T, series string) float64 {
	req, err := http.NewRequest(http.MethodGet, in.http+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken) // every route but /healthz and /readyz needs a token
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

type point struct {
	Device string
	At     time.Time
	Value  float64
}

// influxPoints reads every supply_temp_c point back with Flux through the client library.
func (in *instance) influxPoints(t *testing.T) []point {
	t.Helper()
	c := influxdb2.NewClient(in.influx.URL, in.influx.Token)
	defer c.Close()
	q := fmt.Sprintf(`from(bucket: %q) |> range(start: -30d, stop: 1d)
	  |> filter(fn: (r) => r._measurement == "telemetry" and r._field == "supply_temp_c")`, in.influx.Bucket)
	res, err := c.QueryAPI(in.influx.Org).Query(context.Background(), q)
	require.NoError(t, err)
	var pts []point
	for res.Next() {
		rec := res.Record()
		v, ok := rec.Value().(float64)
		require.True(t, ok, "value %v", rec.Value())
		pts = append(pts, point{Device: rec.ValueByKey("device_id").(string), At: rec.Time().UTC(), Value: v})
	}
	require.NoError(t, res.Err())
	sortPoints(pts)
	return pts
}

func sortPoints(pts []point) {
	slices.SortFunc(pts, func(a, b point) int {
		if c := strings.Compare(a.Device, b.Device); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
}

// recording wraps a Publisher and keeps every payload, to know exactly what was sent.
type recording struct {
	simulator.Publisher
	mu   sync.Mutex
	sent []point
	t    *testing.T
}

func (r *recording) Publish(ctx context.Context, topic string, payload []byte) error {
	dev, err := ingest.DeviceFromTopic("e2e", topic)
	require.NoError(r.t, err)
	rd, err := ingest.DecodeJSON(dev, payload, time.Now(), ingest.DefaultLimits())
	require.NoError(r.t, err)
	f, _ := rd.Field("supply_temp_c")
	r.mu.Lock()
	r.sent = append(r.sent, point{Device: string(dev), At: rd.At, Value: f.Value})
	r.mu.Unlock()
	return r.Publisher.Publish(ctx, topic, payload)
}

func dialPublisher(t *testing.T, in *instance) *simulator.MQTTPublisher {
	pub, err := simulator.DialMQTT(t.Context(), in.broker.URL, fmt.Sprintf("e2e-sim-%d", time.Now().UnixNano()), "", "")
	require.NoError(t, err)
	t.Cleanup(pub.Close)
	return pub
}

// publish sends one raw payload at QoS 1 and waits for the broker's ack.
func publish(t *testing.T, pub *simulator.MQTTPublisher, topic, payload string) {
	t.Helper()
	require.NoError(t, pub.Publish(t.Context(), topic, []byte(payload)))
	require.NoError(t, pub.Flush(t.Context()))
}

func TestServeEndToEndIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	in := startServe(t, "  flush_interval: 100ms")

	// 5 healthy and 2 faulty heat pumps, 40 readings each, 10 s of event time apart.
	opts := simulator.DefaultOptions()
	opts.Devices, opts.FaultyFraction = 7, 2.0/7
	opts.Interval, opts.Step = 2*time.Millisecond, 10*time.Second
	opts.Start = time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	opts.Count = 7 * 40
	opts.Prefix = in.prefix
	rec := &recording{Publisher: dialPublisher(t, in), t: t}
	rep, err := simulator.Run(t.Context(), opts, rec, nil)
	require.NoError(t, err)
	require.Equal(t, 280, rep.Sent)
	require.Len(t, rep.Faulty, 2)

	// (1) InfluxDB holds exactly the points that were sent.
	want := slices.Clone(rec.sent)
	sortPoints(want)
	require.Eventually(t, func() bool { return len(in.influxPoints(t)) >= len(want) }, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, want, in.influxPoints(t))

	// (2) exactly one open ticket per faulty device, none for the healthy ones.
	faulty := make([]string, 0, len(rep.Faulty))
	for _, id := range rep.Faulty {
		faulty = append(faulty, string(id))
	}
	ticketDevices := func() []string {
		var ds []string
		for _, tk := range in.openTickets(t) {
			ds = append(ds, tk.DeviceID)
		}
		slices.Sort(ds)
		return ds
	}
	require.Eventually(t, func() bool { return slices.Equal(ticketDevices(), faulty) }, 10*time.Second, 50*time.Millisecond,
		"want open tickets for %v, have %v", faulty, ticketDevices())
	tickets := in.openTickets(t)
	for _, tk := range tickets {
		require.Equal(t, "overheating", tk.Fault)
		require.Equal(t, telemetry.SeverityMajor, tk.Severity)
		require.Equal(t, 1, tk.RaiseCount)
		require.Greater(t, tk.Evidence.Value, 60.0)
		require.Equal(t, "Check the circulation pump.", tk.Remedy)
		var one ticketing.Ticket
		require.Equal(t, http.StatusOK, in.get(t, fmt.Sprintf("/api/v1/tickets/%d", tk.ID), &one))
		require.Equal(t, tk.ID, one.ID)
		require.NotEmpty(t, one.Timeline)
		var ctxDoc struct {
			Telemetry      TelemetrySummary `json:"telemetry"`
			TelemetryError string           `json:"telemetry_error"`
			Remedy         string           `json:"remedy"`
		}
		require.Equal(t, http.StatusOK, in.get(t, fmt.Sprintf("/api/v1/tickets/%d/context", tk.ID), &ctxDoc))
		require.Empty(t, ctxDoc.TelemetryError)
		require.Equal(t, "Check the circulation pump.", ctxDoc.Remedy)
		temp := ctxDoc.Telemetry.Metrics["supply_temp_c"]
		require.Positive(t, temp.Count, "the context summarises the device's telemetry from InfluxDB")
		require.Greater(t, temp.Max, 60.0, "the overheating readings are in the window")
	}

	// (3) the same fault again (it clears, then overheats again) does not open a second ticket.
	pub := dialPublisher(t, in)
	at := rep.LastAt
	for _, id := range rep.Faulty {
		topic := in.prefix + "/" + string(id) + "/telemetry"
		for i, v := range []float64{50, 50, 50, 50, 50, 50, 50, 50, 80, 80, 80, 80, 80, 80, 80, 80} {
			ts := at.Add(time.Duration(i+1) * 10 * time.Second).UTC().Format(time.RFC3339Nano)
			publish(t, pub, topic, fmt.Sprintf(`{"ts":%q,"model":"heatpump-a2","metrics":{"supply_temp_c":%v}}`, ts, v))
		}
	}
	require.Eventually(t, func() bool {
		ts := in.openTickets(t)
		if len(ts) != 2 {
			return false
		}
		for _, tk := range ts {
			if tk.RaiseCount != 2 {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "re-raised faults must land on the same tickets")
	after := in.openTickets(t)
	for i := range after {
		require.Contains(t, []int64{tickets[0].ID, tickets[1].ID}, after[i].ID)
		var full ticketing.Ticket
		require.Equal(t, http.StatusOK, in.get(t, fmt.Sprintf("/api/v1/tickets/%d", after[i].ID), &full))
		var kinds []string
		for _, e := range full.Timeline {
			kinds = append(kinds, e.Kind)
		}
		require.Equal(t, []string{"raised", "cleared", "raised"}, kinds)
	}
	var all struct {
		Items []ticketing.Ticket `json:"items"`
	}
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/tickets", &all))
	require.Len(t, all.Items, 2, "no ticket in any state beyond the two")

	// The API refuses requests without the token.
	resp, err := http.Get(in.http + "/api/v1/tickets")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))

	require.NoError(t, in.stop(t))
}

// TestServeBadInputIntegration publishes bad messages between good ones:
// each bad one is rejected with its reason and counted, the process keeps
// serving, and every good one is stored, flushed at shutdown at the latest.
func TestServeBadInputIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	// A flush interval longer than the test: nothing reaches InfluxDB before shutdown.
	in := startServe(t, "  flush_interval: 1h")
	pub := dialPublisher(t, in)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	good := func(i int) string {
		return fmt.Sprintf(`{"ts":%q,"model":"heatpump-a2","metrics":{"supply_temp_c":%d}}`, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 40+i)
	}
	topic := in.prefix + "/hp-1/telemetry"
	bad := []struct {
		topic, payload string
		reason         ingest.Reason
	}{
		{topic, `this is not json`, ingest.ReasonMalformed},
		{topic, `{"metrics":{"supply_temp_c":"hot"}}`, ingest.ReasonBadType},
		{topic, `{"metrics":{"supply_temp_c":NaN}}`, ingest.ReasonMalformed},
		{topic, `{"metrics":{}}`, ingest.ReasonNoMetrics},
		{in.prefix + "/" + strings.Repeat("x", 129) + "/telemetry", good(99), ingest.ReasonBadDeviceID},
		{in.prefix + "/bad id!/telemetry", good(98), ingest.ReasonBadDeviceID},
	}
	var want []point
	for i, b := range bad {
		publish(t, pub, topic, good(i))
		want = append(want, point{Device: "hp-1", At: base.Add(time.Duration(i) * time.Second), Value: float64(40 + i)})
		publish(t, pub, b.topic, b.payload)
	}
	publish(t, pub, topic, good(len(bad)))
	want = append(want, point{Device: "hp-1", At: base.Add(time.Duration(len(bad)) * time.Second), Value: float64(40 + len(bad))})

	wantReasons := map[ingest.Reason]float64{}
	for _, b := range bad {
		wantReasons[b.reason]++
	}
	require.Eventually(t, func() bool {
		return in.metric(t, "forewarn_ingest_readings_total") == float64(len(want)) &&
			in.metric(t, `forewarn_ingest_messages_total{kind="telemetry"}`) == float64(len(want)+len(bad))
	}, 10*time.Second, 50*time.Millisecond)
	for reason, n := range wantReasons {
		require.Equal(t, n, in.metric(t, fmt.Sprintf(`forewarn_ingest_rejected_total{reason=%q}`, reason)), "reason %s", reason)
	}
	// Still serving, and still ready.
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(in.http + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	require.Empty(t, in.influxPoints(t), "flush_interval is 1h: nothing written yet")

	// Shutdown (what SIGTERM does) flushes every accepted reading.
	require.NoError(t, in.stop(t))
	require.Equal(t, want, in.influxPoints(t))
	require.Contains(t, in.stderr.String(), "reason=bad_type")
}
