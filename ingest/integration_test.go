package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/telemetry"
)

func testLogger(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func reading(dev string, at time.Time, v float64) telemetry.Reading {
	return telemetry.Reading{Device: telemetry.DeviceID(dev), Model: "m", At: at, Fields: []telemetry.Field{{Name: "v", Value: v}}}
}

// countPoints counts the points of field v per device with Flux.
func countPoints(t *testing.T, db *testenv.Influx) map[string]int64 {
	t.Helper()
	c := influxdb2.NewClient(db.URL, db.Token)
	defer c.Close()
	res, err := c.QueryAPI(db.Org).Query(context.Background(), fmt.Sprintf(
		`from(bucket: %q) |> range(start: -30d) |> filter(fn: (r) => r._measurement == "telemetry" and r._field == "v") |> count()`, db.Bucket))
	if err != nil {
		return nil // InfluxDB may be down in the middle of a test
	}
	out := map[string]int64{}
	for res.Next() {
		out[res.Record().ValueByKey("device_id").(string)] = res.Record().Value().(int64)
	}
	return out
}

// shipper is a spool and a Writer running on it against db.
type shipper struct {
	spool  *Spool
	w      *Writer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

func startShipper(t *testing.T, db *testenv.Influx, dir string, batch int) *shipper {
	cfg := DefaultInfluxConfig()
	cfg.URL, cfg.Org, cfg.Bucket = db.URL, db.Org, db.Bucket
	cfg.BatchSize, cfg.FlushInterval, cfg.Timeout = batch, 20*time.Millisecond, 2*time.Second
	sp, err := OpenSpool(dir, 64<<10, testLogger(t))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	sh := &shipper{spool: sp, w: NewWriter(sp, cfg, testLogger(t), reg), reg: reg, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	sh.cancel = cancel
	go func() { defer close(sh.done); _ = sh.w.Run(ctx) }()
	t.Cleanup(sh.stop)
	return sh
}

func (sh *shipper) stop() {
	sh.cancel()
	<-sh.done
	_ = sh.spool.Close()
}

// commit spools the readings as one record, as the subscriber does.
func (sh *shipper) commit(t *testing.T, rs ...telemetry.Reading) {
	var body []byte
	for _, r := range rs {
		body = AppendLine(body, r)
	}
	_, err := sh.spool.AppendRecord(nil, body, len(rs))
	require.NoError(t, err)
	require.NoError(t, sh.spool.Sync())
}

func TestWriterSurvivesInfluxOutageIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs influxd (run make test)")
	}
	t.Parallel()
	db := testenv.InfluxDB(t)
	sh := startShipper(t, db, t.TempDir(), 100)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(from, to int) {
		for i := from; i < to; i += 10 {
			var rs []telemetry.Reading
			for j := i; j < min(i+10, to); j++ {
				rs = append(rs, reading("d1", base.Add(time.Duration(j)*time.Millisecond), float64(j)))
			}
			sh.commit(t, rs...)
		}
	}
	write(0, 300)
	require.Eventually(t, func() bool { return countPoints(t, db)["d1"] == 300 }, 10*time.Second, 50*time.Millisecond)

	db.Stop(t)
	write(300, 5300) // spooled while InfluxDB is down: more than the live lane's lag limit
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(sh.w.metrics.failures.WithLabelValues("retryable")) > 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Positive(t, sh.w.Backlog())
	db.Start(t)
	write(5300, 5400) // live data while the backlog drains
	require.Eventually(t, func() bool { return countPoints(t, db)["d1"] == 5400 }, 60*time.Second, 100*time.Millisecond,
		"every spooled point arrives once InfluxDB is back")
	require.Eventually(t, func() bool { return sh.w.Backlog() == 0 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 5400.0, testutil.ToFloat64(sh.w.metrics.written), "each point written once")
	require.Less(t, sh.spool.Size(), int64(128<<10), "written segments are deleted")
}

func TestWriterIsolatesRejectedPointIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs influxd (run make test)")
	}
	t.Parallel()
	db := testenv.InfluxDB(t)
	sh := startShipper(t, db, t.TempDir(), 1000)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	sh.commit(t, reading("d1", base, 1)) // v is a float field from now on
	require.Eventually(t, func() bool { return countPoints(t, db)["d1"] == 1 }, 10*time.Second, 50*time.Millisecond)

	// One batch of 200 points, one of which InfluxDB refuses (field type
	// conflict: v as a boolean). The rest must be stored, that one dropped.
	var rs []telemetry.Reading
	for i := 1; i <= 200; i++ {
		r := reading("d1", base.Add(time.Duration(i)*time.Millisecond), float64(i))
		if i == 77 {
			r.Fields[0].IsBool = true
		}
		rs = append(rs, r)
	}
	sh.commit(t, rs...)
	require.Eventually(t, func() bool { return countPoints(t, db)["d1"] == 200 }, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return sh.w.Backlog() == 0 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(sh.w.metrics.dropped.WithLabelValues("rejected")))
	require.Positive(t, testutil.ToFloat64(sh.w.metrics.failures.WithLabelValues("permanent")))
}

func TestWriterReplaysSpoolAtStartIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs influxd (run make test)")
	}
	t.Parallel()
	db := testenv.InfluxDB(t)
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	// A previous run spooled 1000 readings and stopped before shipping them.
	sp, err := OpenSpool(dir, 64<<10, testLogger(t))
	require.NoError(t, err)
	for i := 0; i < 1000; i += 50 {
		var body []byte
		for j := i; j < i+50; j++ {
			body = AppendLine(body, reading("d1", base.Add(time.Duration(j)*time.Millisecond), float64(j)))
		}
		_, err := sp.AppendRecord(nil, body, 50)
		require.NoError(t, err)
	}
	require.NoError(t, sp.Sync())
	require.NoError(t, sp.Close())

	sh := startShipper(t, db, dir, 100)
	require.Eventually(t, func() bool { return countPoints(t, db)["d1"] == 1000 }, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return sh.w.Backlog() == 0 }, 10*time.Second, 20*time.Millisecond)
}

// recorder is a Sink that keeps what it was given.
type recorder struct {
	mu sync.Mutex
	rs []telemetry.Reading
}

func (r *recorder) Write(_ context.Context, rs []telemetry.Reading) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rs = append(r.rs, rs...)
	return nil
}

// values returns the readings' values, without the probe value 0 that
// waits for the subscription to be in place.
func (r *recorder) values() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var vs []float64
	for _, x := range r.rs {
		if v := x.Fields[0].Value; v != 0 {
			vs = append(vs, v)
		}
	}
	return vs
}

func (r *recorder) probed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rs) > 0
}

func TestSubscriberSessionAndReconnectIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto (run make test)")
	}
	t.Parallel()
	b := testenv.Mosquitto(t)
	cfg := DefaultMQTTConfig()
	cfg.URL, cfg.ClientID, cfg.TopicPrefix = b.URL, "ingest-it", "it"
	sink := &recorder{}
	dir := t.TempDir()
	start := func() (*Subscriber, context.CancelFunc, chan error) {
		sp, err := OpenSpool(dir, 1<<20, testLogger(t))
		require.NoError(t, err)
		s := NewSubscriber(SubscriberOptions{MQTT: cfg, Limits: DefaultLimits(), Spool: sp, MaxBytes: 64 << 20,
			Readings: sink, Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			err := s.Run(ctx)
			done <- errors.Join(err, sp.Close())
		}()
		require.Eventually(t, s.Connected, 10*time.Second, 20*time.Millisecond)
		return s, cancel, done
	}
	pubOpts := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("it-pub").SetAutoReconnect(true).SetConnectRetry(true)
	pub := mqtt.NewClient(pubOpts)
	require.True(t, pub.Connect().WaitTimeout(10*time.Second))
	defer pub.Disconnect(100)
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	send := func(i int) {
		tok := pub.Publish("it/dev-1/telemetry", 1, false, fmt.Sprintf(`{"ts":%d,"metrics":{"v":%d}}`, base.Add(time.Duration(i)*time.Second).Unix(), i))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	seq := func(from, to int) []float64 {
		var vs []float64
		for i := from; i < to; i++ {
			vs = append(vs, float64(i))
		}
		return vs
	}

	s, cancel, done := start()
	require.Eventually(t, func() bool { send(0); return sink.probed() }, 10*time.Second, 200*time.Millisecond)
	for i := 1; i <= 10; i++ {
		send(i)
	}
	require.Eventually(t, func() bool { return slices.Equal(sink.values(), seq(1, 11)) }, 10*time.Second, 20*time.Millisecond)

	// Forewarn away: the broker queues for the persistent session.
	cancel()
	require.NoError(t, <-done)
	require.False(t, s.Connected())
	for i := 11; i <= 20; i++ {
		send(i)
	}
	_, cancel, done = start()
	require.Eventually(t, func() bool { return slices.Equal(sink.values(), seq(1, 21)) }, 10*time.Second, 20*time.Millisecond,
		"messages published while away arrive, in order, once the session resumes")

	// Broker restart: the subscriber reconnects and resubscribes by itself.
	b.Stop(t)
	b.Start(t)
	require.True(t, pub.Connect().WaitTimeout(10*time.Second))
	require.Eventually(t, func() bool {
		send(21)
		vs := sink.values()
		return len(vs) > 20 && vs[len(vs)-1] == 21
	}, 30*time.Second, 500*time.Millisecond, "readings flow again after a broker restart")
	cancel()
	require.NoError(t, <-done)
}

// TestWriterCloseKeepsSpoolWhileInfluxDownIntegration: at shutdown with
// InfluxDB unreachable, Close gives up at its deadline and reports what is
// left; the spool keeps it, and the next start writes it.
func TestWriterCloseKeepsSpoolWhileInfluxDownIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs influxd (run make test)")
	}
	t.Parallel()
	db := testenv.InfluxDB(t)
	dir := t.TempDir()
	db.Stop(t)
	cfg := DefaultInfluxConfig()
	cfg.URL, cfg.Org, cfg.Bucket, cfg.Timeout = db.URL, db.Org, db.Bucket, time.Second
	sp, err := OpenSpool(dir, 64<<10, testLogger(t))
	require.NoError(t, err)
	w := NewWriter(sp, cfg, testLogger(t), prometheus.NewRegistry())
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var body []byte
	for i := range 100 {
		body = AppendLine(body, reading("d1", base.Add(time.Duration(i)*time.Millisecond), float64(i)))
	}
	_, err = sp.AppendRecord(nil, body, 100)
	require.NoError(t, err)
	require.NoError(t, sp.Sync())
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	left := w.Close(ctx)
	require.Equal(t, int64(len(body)+recordHeader), left, "nothing confirmed, all kept")
	require.NoError(t, sp.Close())

	db.Start(t)
	startShipper(t, db, dir, 1000)
	require.Eventually(t, func() bool { return countPoints(t, db)["d1"] == 100 }, 20*time.Second, 50*time.Millisecond)
}
