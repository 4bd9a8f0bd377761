package main

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
)

func TestAppendRemLen(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{ // MQTT 3.1.1 section 2.2.3, table 2.4
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xff, 0xff, 0x7f}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xff, 0xff, 0xff, 0x7f}},
	} {
		require.Equal(t, tc.want, appendRemLen(nil, tc.n), "remaining length %d", tc.n)
	}
}

// TestRawPubIntegration publishes through rawPub to a real Mosquitto at
// both QoS levels and checks a paho subscriber receives every message,
// topic and payload intact, in order per connection.
func TestRawPubIntegration(t *testing.T) {
	b := testenv.Mosquitto(t)
	const n = 3000
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			var mu sync.Mutex
			var got [][]byte
			sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(fmt.Sprintf("sub-%d", qos)).SetOrderMatters(true))
			tok := sub.Connect()
			require.True(t, tok.WaitTimeout(10*time.Second))
			require.NoError(t, tok.Error())
			defer sub.Disconnect(100)
			topic := fmt.Sprintf("rawpub/q%d/dev-1/telemetry", qos)
			tok = sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
				mu.Lock()
				got = append(got, bytes.Clone(m.Payload()))
				mu.Unlock()
			})
			require.True(t, tok.WaitTimeout(10*time.Second))
			require.NoError(t, tok.Error())

			// A window of 10 makes the QoS 1 publisher wait for PUBACKs.
			pub, err := dialRaw(b.Addr(), fmt.Sprintf("rawpub-%d", qos), qos, 10)
			require.NoError(t, err)
			big := bytes.Repeat([]byte("x"), 300) // remaining length over 127: two bytes
			for i := range n {
				payload := fmt.Appendf(nil, `{"i":%d}`, i)
				if i%100 == 0 {
					payload = append(payload, big...)
				}
				require.NoError(t, pub.publish(topic, payload))
			}
			sent, err := pub.close(10 * time.Second)
			require.NoError(t, err)
			require.EqualValues(t, n, sent)

			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) == n
			}, 10*time.Second, 10*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			for i, p := range got {
				want := fmt.Appendf(nil, `{"i":%d}`, i)
				if i%100 == 0 {
					want = append(want, big...)
				}
				require.Equal(t, string(want), string(p), "message %d", i)
			}
		})
	}
}
