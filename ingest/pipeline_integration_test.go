package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
)

// pipeline is what `forewarn serve` runs for ingest: a Subscriber and a
// Writer sharing a spool, against a real broker and a real InfluxDB.
type pipeline struct {
	sub    *Subscriber
	w      *Writer
	spool  *Spool
	cancel context.CancelFunc
	done   chan error
}

func startPipeline(t testing.TB, b *testenv.Broker, db *testenv.Influx, prefix string, maxBytes int64, mod func(*MQTTConfig)) *pipeline {
	t.Helper()
	mc := DefaultMQTTConfig()
	mc.URL, mc.ClientID, mc.TopicPrefix = b.URL, "pipe-"+prefix, prefix
	if mod != nil {
		mod(&mc)
	}
	ic := DefaultInfluxConfig()
	ic.URL, ic.Org, ic.Bucket = db.URL, db.Org, db.Bucket
	ic.BatchSize, ic.FlushInterval, ic.Timeout = 1000, 50*time.Millisecond, 2*time.Second
	sc := SpoolConfig{Dir: t.TempDir(), MaxBytes: maxBytes}
	sp, err := OpenSpool(sc.Dir, sc.SegmentBytes(), testLogger(t))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	p := &pipeline{spool: sp, done: make(chan error, 1)}
	p.w = NewWriter(sp, ic, testLogger(t), reg)
	p.sub = NewSubscriber(SubscriberOptions{MQTT: mc, Limits: DefaultLimits(), Spool: sp, MaxBytes: sc.MaxBytes,
		Logger: testLogger(t), Registerer: reg})
	ctx, cancel := context.WithCancel(t.Context())
	p.cancel = cancel
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { defer close(wdone); _ = p.w.Run(wctx) }()
	go func() {
		err := p.sub.Run(ctx)
		wcancel()
		<-wdone
		p.done <- errors.Join(err, sp.Close())
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-p.done)
	})
	require.Eventually(t, p.sub.Connected, 10*time.Second, 10*time.Millisecond)
	return p
}

// loadPublisher publishes QoS 1 readings v=i with ts base+i ms for device
// dev-(i%devices), retrying each until the broker acknowledges it, so a
// broker restart loses nothing on the publishing side.
type loadPublisher struct {
	c      mqtt.Client
	prefix string
	base   time.Time
	sent   atomic.Int64
}

func newLoadPublisher(t *testing.T, b *testenv.Broker, prefix string) *loadPublisher {
	// No message store: paho's resume of stored publishes after a reconnect
	// races with its own writer (the race detector catches it in paho
	// 1.5.1); run retries unacknowledged publishes itself instead.
	opts := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("load-" + prefix).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetStore(noStore{})
	c := mqtt.NewClient(opts)
	require.True(t, c.Connect().WaitTimeout(10*time.Second))
	t.Cleanup(func() { c.Disconnect(100) })
	return &loadPublisher{c: c, prefix: prefix, base: time.Now().Add(-time.Hour).Truncate(time.Second)}
}

// run publishes n readings at most perMs a millisecond; bounded by ctx.
func (lp *loadPublisher) run(ctx context.Context, n, perMs int) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var window []mqtt.Token
	var idx []int
	flush := func() error {
		for len(window) > 0 {
			// Wait up to 2 s for the window; what is not acknowledged by
			// then (lost with a broker restart) is published again, all at once.
			deadline := time.Now().Add(2 * time.Second)
			var retry []int
			for k, tok := range window {
				if !tok.WaitTimeout(time.Until(deadline)) || tok.Error() != nil {
					retry = append(retry, idx[k])
				}
			}
			lp.sent.Add(int64(len(window) - len(retry)))
			window, idx = window[:0], idx[:0]
			if len(retry) == 0 {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
			for _, i := range retry {
				window = append(window, lp.publish(i))
				idx = append(idx, i)
			}
		}
		return nil
	}
	for i := range n {
		if i%perMs == 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		window = append(window, lp.publish(i))
		idx = append(idx, i)
		if len(window) >= 200 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (lp *loadPublisher) publish(i int) mqtt.Token {
	payload := fmt.Sprintf(`{"ts":%d,"metrics":{"v":%d}}`, lp.base.Add(time.Duration(i)*time.Millisecond).UnixMilli(), i)
	return lp.c.Publish(fmt.Sprintf("%s/dev-%d/telemetry", lp.prefix, i%10), 1, false, payload)
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestOutageUnderLoadIntegration stops InfluxDB for 60 s while 75,000
// readings arrive at up to 1,000/s: the spool takes everything, the backlog
// drains beside live data once InfluxDB is back. Ingest never stops
// acknowledging while the spool has room, and every reading is stored
// exactly once.
func TestOutageUnderLoadIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	b, db := testenv.Mosquitto(t), testenv.InfluxDB(t)
	p := startPipeline(t, b, db, "outage", 64<<20, nil)
	lp := newLoadPublisher(t, b, "outage")
	const n, outage = 75000, 60 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	pubDone := make(chan error, 1)
	go func() { pubDone <- lp.run(ctx, n, 1) }()

	require.Eventually(t, func() bool { return lp.sent.Load() >= 4000 }, 30*time.Second, 10*time.Millisecond)
	db.Stop(t)
	spooledAtStop, sentAtStop := testutil.ToFloat64(p.sub.metrics.spooled), lp.sent.Load()
	time.Sleep(outage) // the load goes on meanwhile
	spooledDuring := testutil.ToFloat64(p.sub.metrics.spooled) - spooledAtStop
	sentDuring := float64(lp.sent.Load() - sentAtStop)
	t.Logf("during the outage: %.0f published, %.0f spooled", sentDuring, spooledDuring)
	require.Greater(t, sentDuring, 20000.0, "the load went on")
	require.Greater(t, spooledDuring, 0.95*sentDuring, "ingest kept accepting while InfluxDB was down")
	require.Zero(t, testutil.ToFloat64(p.sub.metrics.stalled))
	require.Positive(t, p.w.Backlog())
	db.Start(t)
	require.NoError(t, <-pubDone)

	require.Eventually(t, func() bool { return total(countPoints(t, db)) >= n }, 90*time.Second, 200*time.Millisecond)
	require.Equal(t, int64(n), total(countPoints(t, db)))
	require.Eventually(t, func() bool { return p.w.Backlog() == 0 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, float64(n), testutil.ToFloat64(p.w.metrics.written), "every point written once")
}

// TestSpoolFullStopsAckingIntegration: with InfluxDB down and a 256 KiB
// spool, ingest fills the spool, then stops acknowledging (the broker holds
// the rest) instead of dropping; once InfluxDB is back everything arrives.
func TestSpoolFullStopsAckingIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	b, db := testenv.Mosquitto(t), testenv.InfluxDB(t)
	db.Stop(t)
	p := startPipeline(t, b, db, "full", 256<<10, nil)
	lp := newLoadPublisher(t, b, "full")
	const n = 9000 // about 50 bytes a line: more than 256 KiB, less than the broker's queue
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, lp.run(ctx, n, 10))

	require.Eventually(t, func() bool { return testutil.ToFloat64(p.sub.metrics.stalled) == 1 }, 20*time.Second, 20*time.Millisecond)
	spooled := testutil.ToFloat64(p.sub.metrics.spooled)
	require.Less(t, spooled, float64(n), "not everything fits")
	require.LessOrEqual(t, p.spool.Size(), int64(256<<10))
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, spooled, testutil.ToFloat64(p.sub.metrics.spooled), "nothing more is taken while full")

	db.Start(t)
	require.Eventually(t, func() bool { return total(countPoints(t, db)) >= n }, 60*time.Second, 200*time.Millisecond)
	require.Equal(t, int64(n), total(countPoints(t, db)))
	require.Zero(t, testutil.ToFloat64(p.sub.metrics.stalled))
}

// TestBrokerRestartUnderLoadIntegration restarts Mosquitto twice while
// 20,000 readings are being published: ingest reconnects and resumes its
// persistent session by itself, and every reading is stored.
func TestBrokerRestartUnderLoadIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	b, db := testenv.Mosquitto(t), testenv.InfluxDB(t)
	p := startPipeline(t, b, db, "restart", 64<<20, func(c *MQTTConfig) { c.KeepAlive = 2 * time.Second })
	lp := newLoadPublisher(t, b, "restart")
	const n = 20000
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pubDone := make(chan error, 1)
	go func() { pubDone <- lp.run(ctx, n, 3) }()
	for _, at := range []int64{5000, 12000} {
		require.Eventually(t, func() bool { return lp.sent.Load() >= at }, 30*time.Second, 10*time.Millisecond)
		before := testutil.ToFloat64(p.sub.metrics.reconnect)
		b.Stop(t)
		b.Start(t)
		// Noticed from the broken connection itself, not from the
		// keep-alive (2 s + paho's 10 s ping timeout), during which the
		// broker would queue and, past max_queued_messages, drop.
		require.Eventually(t, func() bool { return testutil.ToFloat64(p.sub.metrics.reconnect) > before },
			8*time.Second, 10*time.Millisecond, "reconnected after the restart at %d", at)
	}
	require.NoError(t, <-pubDone)
	require.Eventually(t, func() bool { return total(countPoints(t, db)) >= n }, 60*time.Second, 200*time.Millisecond)
	require.Equal(t, int64(n), total(countPoints(t, db)))
	require.GreaterOrEqual(t, testutil.ToFloat64(p.sub.metrics.reconnect), 3.0, "connected once and reconnected after each restart")
}

// TestExampleMosquittoConfIntegration runs ingest against Mosquitto started
// with the shipped examples/mosquitto.conf (port and paths rewritten), so the
// documented broker settings are valid and work: 5,000 QoS 1 readings, a
// broker restart (persistence keeps the session), all stored.
func TestExampleMosquittoConfIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	conf, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "examples", "mosquitto.conf"))
	require.NoError(t, err)
	b, db := testenv.MosquittoWithConf(t, string(conf)), testenv.InfluxDB(t)
	p := startPipeline(t, b, db, "example", 64<<20, nil)
	lp := newLoadPublisher(t, b, "example")
	const n = 5000
	require.NoError(t, lp.run(t.Context(), n/2, 5))
	b.Stop(t)
	b.Start(t)
	require.NoError(t, lp.run(t.Context(), n, 5)) // the first half again (same points) and the rest
	require.Eventually(t, func() bool { return total(countPoints(t, db)) >= n }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, int64(n), total(countPoints(t, db)))
	require.GreaterOrEqual(t, testutil.ToFloat64(p.sub.metrics.reconnect), 2.0)
}
