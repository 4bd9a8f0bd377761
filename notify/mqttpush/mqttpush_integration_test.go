package mqttpush_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/mqttpush"
	"github.com/forewarn/forewarn/ticketing"
)

// TestPushIntegration publishes through a real Mosquitto to the customer's
// topic at QoS 1; a companion app subscribed there receives the body.
func TestPushIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto")
	}
	b := testenv.Mosquitto(t)
	got := make(chan mqtt.Message, 4)
	app := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("app-c1"))
	tok := app.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer app.Disconnect(100)
	tok = app.Subscribe("customers/c-1/notifications", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	ch := mqttpush.New(mqttpush.Options{URL: b.URL, ClientID: "forewarn-push-test", Topic: "customers/{customer_id}/notifications"})
	defer ch.Close()
	body := []byte(`{"event":"ticket.opened","idempotency_key":"forewarn-3"}`)
	require.NoError(t, ch.Send(t.Context(), ticketing.Channel{Type: "mqtt"}, notify.Message{Key: "forewarn-3", CustomerID: "c-1", Body: body}))
	select {
	case m := <-got:
		require.Equal(t, "customers/c-1/notifications", m.Topic())
		require.Equal(t, byte(1), m.Qos())
		require.False(t, m.Retained())
		var v map[string]any
		require.NoError(t, json.Unmarshal(m.Payload(), &v))
		require.Equal(t, "forewarn-3", v["idempotency_key"])
	case <-time.After(10 * time.Second):
		t.Fatal("the app got nothing")
	}

	// The broker goes away: the send fails as retryable and does not hang.
	b.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	de, ok := ch.Send(ctx, ticketing.Channel{Type: "mqtt"}, notify.Message{Key: "forewarn-4", CustomerID: "c-1", Body: body}).(*notify.DeliveryError)
	require.True(t, ok)
	require.True(t, de.Retryable)
}
