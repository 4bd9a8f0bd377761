package simulator

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
)

// TestDevicePublisherLastWillIntegration runs a fleet with one connection
// per device against a real Mosquitto: every device announces itself
// online, the device with a connectivity fault drops its connection and
// the broker (not the simulator) publishes its Last Will "offline", and it
// comes back online when the outage ends.
func TestDevicePublisherLastWillIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto")
	}
	broker := testenv.Mosquitto(t)
	var mu sync.Mutex
	seen := map[string][]string{}
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(fmt.Sprintf("watch-%d", time.Now().UnixNano())))
	require.NoError(t, waitToken(t.Context(), sub.Connect()))
	defer sub.Disconnect(100)
	require.NoError(t, waitToken(t.Context(), sub.Subscribe("lw/+/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		seen[m.Topic()] = append(seen[m.Topic()], string(m.Payload()))
	})))

	o := DefaultOptions()
	o.Devices, o.Kinds, o.Scenarios = 3, []Kind{WaterPump}, []string{"connectivity_loss"}
	o.FaultyFraction, o.FaultAfter = 1.0/3, 2
	o.Interval, o.Step, o.SimDuration = 0, time.Hour, 72*time.Hour
	o.Start = start
	o.Prefix = "lw"
	pub, err := NewDevicePublisher(broker.URL, "", "", "sim-lw-", o.Prefix, 1)
	require.NoError(t, err)
	defer pub.Close()
	rep, err := Run(t.Context(), o, pub, nil)
	require.NoError(t, err)
	require.Len(t, rep.Truth, 1)
	tr := rep.Truth[0]
	require.Equal(t, "connectivity_loss", tr.Scenario)
	require.Equal(t, 3, pub.Connections(), "the dropped device reconnected")
	require.Equal(t, int64(rep.Sent), pub.Acked())

	want := map[string][]string{}
	for i := range 3 {
		id := fmt.Sprintf("lw/sim-%05d/status", i)
		want[id] = []string{"online"}
		if "lw/"+string(tr.Device)+"/status" == id {
			want[id] = []string{"online", "offline", "online"}
		}
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for topic, w := range want {
			if !slices.Equal(w, seen[topic]) {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "status messages: want %v, have %v", want, seen)
}
