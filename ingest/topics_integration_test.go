package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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

// eventRecorder records what the event and status sinks are given.
type eventRecorder struct {
	mu     sync.Mutex
	events []telemetry.DeviceEvent
	status []telemetry.StatusChange
}

func (r *eventRecorder) WriteEvents(_ context.Context, es []telemetry.DeviceEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, es...)
	return nil
}

func (r *eventRecorder) WriteStatus(_ context.Context, ss []telemetry.StatusChange) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = append(r.status, ss...)
	return nil
}

func (r *eventRecorder) snapshot() ([]telemetry.DeviceEvent, []telemetry.StatusChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]telemetry.DeviceEvent(nil), r.events...), append([]telemetry.StatusChange(nil), r.status...)
}

// connectWithWill opens a raw MQTT 3.1.1 connection as clientID with a
// retained QoS 1 Last Will "offline" on willTopic, and returns the socket:
// closing it without DISCONNECT makes the broker publish the will.
func connectWithWill(t *testing.T, addr, clientID, willTopic string) net.Conn {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 4)                   // protocol level 3.1.1
	body = append(body, 0x02|0x04|0x08|0x20) // clean session, will, will QoS 1, will retain [MQTT-3.1.2]
	body = append(body, 0, 60)               // keep alive
	body = append(body, str(clientID)...)
	body = append(body, str(willTopic)...)
	body = append(body, str("offline")...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	_, err = c.Write(pkt)
	require.NoError(t, err)
	var connack [4]byte
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(connack[:])
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, connack[:])
	return c
}

// TestStatusEventsAndDeadLetterIntegration: a retained "online" status
// published before ingest starts, a device event, the device's Last Will
// "offline" when its connection dies, telemetry in all three formats, and bad
// input republished to the dead-letter topic with its reason.
func TestStatusEventsAndDeadLetterIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	b, db := testenv.Mosquitto(t), testenv.InfluxDB(t)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("topics-pub"))
	require.True(t, pub.Connect().WaitTimeout(10*time.Second))
	defer pub.Disconnect(100)
	send := func(topic string, retained bool, payload string) {
		tok := pub.Publish(topic, 1, retained, payload)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	send("tp/dev-1/status", true, "online") // retained before ingest subscribes

	// A watcher on the dead-letter topic.
	var dlMu sync.Mutex
	var dead []deadLetter
	watch := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("topics-dl"))
	require.True(t, watch.Connect().WaitTimeout(10*time.Second))
	defer watch.Disconnect(100)
	require.True(t, watch.Subscribe("forewarn/dead-letter", 1, func(_ mqtt.Client, m mqtt.Message) {
		var dl deadLetter
		if json.Unmarshal(m.Payload(), &dl) == nil {
			dlMu.Lock()
			dead = append(dead, dl)
			dlMu.Unlock()
		}
	}).WaitTimeout(10*time.Second))

	rec := &eventRecorder{}
	mc := DefaultMQTTConfig()
	mc.URL, mc.ClientID, mc.TopicPrefix = b.URL, "topics-ingest", "tp"
	ic := DefaultInfluxConfig()
	ic.URL, ic.Org, ic.Bucket, ic.FlushInterval = db.URL, db.Org, db.Bucket, 20*time.Millisecond
	lim := DefaultLimits()
	lim.DeadLetterTopic = "forewarn/dead-letter"
	sp, err := OpenSpool(t.TempDir(), 1<<20, testLogger(t))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	w := NewWriter(sp, ic, testLogger(t), reg)
	sub := NewSubscriber(SubscriberOptions{MQTT: mc, Limits: lim, Spool: sp, MaxBytes: 64 << 20,
		Events: rec, Status: rec, Logger: testLogger(t), Registerer: reg})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-subDone)
		<-done
		require.NoError(t, sp.Close())
	}()
	require.Eventually(t, func() bool { _, ss := rec.snapshot(); return len(ss) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the retained status arrives on subscribe")

	dev := connectWithWill(t, b.Addr(), "dev-2", "tp/dev-2/status")
	send("tp/dev-2/status", true, "online")
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	send("tp/dev-2/events", false, fmt.Sprintf(`{"ts":%q,"code":"E42","message":"compressor overcurrent"}`, base.Format(time.RFC3339)))
	send("tp/dev-2/telemetry", false, fmt.Sprintf(`{"ts":%d,"metrics":{"v":1}}`, base.Unix()))
	send("tp/dev-2/telemetry/lp", false, fmt.Sprintf("hp v=2 %d\nhp v=3 %d", base.Add(time.Second).UnixNano(), base.Add(2*time.Second).UnixNano()))
	send("tp/dev-2/telemetry/senml", false, fmt.Sprintf(`[{"bt":%d,"n":"v","v":4}]`, base.Add(3*time.Second).Unix()))
	send("tp/dev-2/telemetry", false, `{"metrics":{"v":"hot"}}`)
	send("tp/dev-2/telemetry/lp", false, `hp v="hot"`)
	send("tp/dev-2/telemetry/xml", false, `<v>1</v>`)
	send("tp/dev-2/events", false, `{"message":"no code"}`)
	require.NoError(t, dev.Close()) // dies without DISCONNECT: the broker publishes its will

	require.Eventually(t, func() bool { _, ss := rec.snapshot(); return len(ss) == 3 }, 10*time.Second, 20*time.Millisecond)
	events, status := rec.snapshot()
	require.Equal(t, []telemetry.DeviceEvent{{Device: "dev-2", At: base, Code: "E42", Message: "compressor overcurrent"}}, events)
	require.Equal(t, telemetry.DeviceID("dev-1"), status[0].Device)
	require.True(t, status[0].Online)
	require.Equal(t, telemetry.DeviceID("dev-2"), status[1].Device)
	require.True(t, status[1].Online)
	require.Equal(t, telemetry.DeviceID("dev-2"), status[2].Device)
	require.False(t, status[2].Online, "the Last Will says offline")

	require.Eventually(t, func() bool { return countPoints(t, db)["dev-2"] == 4 }, 10*time.Second, 50*time.Millisecond,
		"JSON, line protocol (two lines) and SenML readings are stored")
	require.Eventually(t, func() bool {
		dlMu.Lock()
		defer dlMu.Unlock()
		return len(dead) == 4
	}, 10*time.Second, 20*time.Millisecond)
	dlMu.Lock()
	reasons := map[string]Reason{}
	for _, dl := range dead {
		reasons[dl.Topic] = dl.Reason
	}
	dlMu.Unlock()
	require.Equal(t, map[string]Reason{
		"tp/dev-2/telemetry":     ReasonBadType,
		"tp/dev-2/telemetry/lp":  ReasonBadType,
		"tp/dev-2/telemetry/xml": ReasonBadTopic,
		"tp/dev-2/events":        ReasonBadAttribute,
	}, reasons)
	require.Equal(t, 2.0, testutil.ToFloat64(sub.metrics.rejected.WithLabelValues(string(ReasonBadType))))
	require.Equal(t, 4.0, testutil.ToFloat64(sub.metrics.deadLtr))

	// The event is in InfluxDB too.
	c := influxdb2.NewClient(db.URL, db.Token)
	defer c.Close()
	require.Eventually(t, func() bool {
		res, err := c.QueryAPI(db.Org).Query(t.Context(), fmt.Sprintf(
			`from(bucket: %q) |> range(start: -30d) |> filter(fn: (r) => r._measurement == "device_events")`, db.Bucket))
		if err != nil || !res.Next() {
			return false
		}
		return res.Record().ValueByKey("code") == "E42" && res.Record().Value() == "compressor overcurrent"
	}, 10*time.Second, 50*time.Millisecond)
}

// TestSharedSubscriptionIntegration runs two ingest instances in one shared
// group on one Mosquitto: they split the load, and every reading is stored.
func TestSharedSubscriptionIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	b, db := testenv.Mosquitto(t), testenv.InfluxDB(t)
	shared := func(id string) func(*MQTTConfig) {
		return func(c *MQTTConfig) { c.SharedGroup, c.ClientID = "forewarn", id }
	}
	p1 := startPipeline(t, b, db, "shared", 64<<20, shared("shared-1"))
	p2 := startPipeline(t, b, db, "shared", 64<<20, shared("shared-2"))
	lp := newLoadPublisher(t, b, "shared")
	const n = 4000
	require.NoError(t, lp.run(t.Context(), n, 4))
	require.Eventually(t, func() bool { return total(countPoints(t, db)) >= n }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, int64(n), total(countPoints(t, db)))
	got1, got2 := testutil.ToFloat64(p1.sub.metrics.spooled), testutil.ToFloat64(p2.sub.metrics.spooled)
	t.Logf("instance 1 took %.0f, instance 2 took %.0f", got1, got2)
	require.Equal(t, float64(n), got1+got2, "each message went to exactly one instance")
	require.Greater(t, got1, n/4.0, "the load is split")
	require.Greater(t, got2, n/4.0, "the load is split")
}
