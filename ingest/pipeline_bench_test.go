package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/telemetry"
)

// BenchmarkIngestMQTT measures the subscriber's path in this process: a
// real Mosquitto (examples/mosquitto.conf) delivers b.N ~200-byte JSON
// readings of 10,000 devices; each is decoded, group-committed to the spool
// (fsync) and acknowledged, and the Writer ships the spool to a real
// InfluxDB. The publisher runs in the same process, so its CPU is in the
// profile too (go test -cpuprofile). End-to-end figures with the built
// binary are `make bench-ingest`'s (docs/performance.md).
func BenchmarkIngestMQTT(b *testing.B) {
	conf, err := os.ReadFile(filepath.Join(testenv.RepoRoot(b), "examples", "mosquitto.conf"))
	if err != nil {
		b.Fatal(err)
	}
	broker, db := testenv.MosquittoWithConf(b, string(conf)), testenv.InfluxDB(b)
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos=%d", qos), func(b *testing.B) {
			prefix := fmt.Sprintf("bench%d-%d", qos, b.N)
			p := startPipeline(b, broker, db, prefix, 1<<30, nil)
			pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("pub-" + prefix))
			if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatal("connect publisher")
			}
			defer pub.Disconnect(100)
			base := time.Now().Add(-time.Hour).UnixNano()
			payloads := make([][]byte, 1000)
			for i := range payloads {
				payloads[i] = fmt.Appendf(nil, `{"ts":%%d,"model":"heatpump-a2","fw":"1.4.2","metrics":{"supply_temp_c":4%d.%d,"return_temp_c":31.%d,"compressor_amps":7.%d,"flow_l_min":12.%d,"defrost":false}}`, i%10, i%7, i%5, i%3, i%9)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var pending []mqtt.Token
			for i := range b.N {
				payload := fmt.Sprintf(string(payloads[i%len(payloads)]), base+int64(i))
				pending = append(pending, pub.Publish(fmt.Sprintf("%s/hp-%05d/telemetry", prefix, i%10000), qos, false, payload))
				if len(pending) == 500 {
					for _, t := range pending {
						t.Wait()
					}
					pending = pending[:0]
				}
			}
			for _, t := range pending {
				t.Wait()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for testutil.ToFloat64(p.sub.metrics.spooled) < float64(b.N) && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			got := testutil.ToFloat64(p.sub.metrics.spooled)
			b.ReportMetric(got/b.Elapsed().Seconds(), "spooled/s")
			b.ReportMetric(float64(b.N)-got, "lost")
		})
	}
}

// BenchmarkWriterReplay measures how fast the Writer drains a spool into a
// real InfluxDB: b.N readings of 1,000 devices spooled beforehand (untimed),
// then Run until the backlog is empty. This is the rate at which a backlog
// left by an outage or a crash reaches InfluxDB.
func BenchmarkWriterReplay(b *testing.B) {
	db := testenv.InfluxDB(b)
	dir := b.TempDir()
	sp, err := OpenSpool(dir, 16<<20, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).UnixNano()
	var body []byte
	lines := 0
	for i := range b.N {
		body = AppendLine(body, telemetry.Reading{Device: telemetry.DeviceID(fmt.Sprintf("dev-%03d", i%1000)), Model: "heatpump-a2",
			At: time.Unix(0, base+int64(i)), Fields: []telemetry.Field{{Name: "supply_temp_c", Value: float64(i % 97)}, {Name: "flow_l_min", Value: 12.5}}})
		lines++
		if lines == 1000 || i == b.N-1 {
			if _, err := sp.AppendRecord(nil, body, lines); err != nil {
				b.Fatal(err)
			}
			body, lines = body[:0], 0
		}
	}
	if err := sp.Sync(); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultInfluxConfig()
	cfg.URL, cfg.Org, cfg.Bucket = db.URL, db.Org, db.Bucket
	w := NewWriter(sp, cfg, testLogger(b), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	b.ResetTimer()
	go func() { defer close(done); _ = w.Run(ctx) }()
	for w.Backlog() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
	cancel()
	<-done
	_ = sp.Close()
}
