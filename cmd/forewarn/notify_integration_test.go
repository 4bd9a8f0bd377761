package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/notify/notifytest"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

const hookSecret = "e2e-hook-secret-0123456789"

// put sends a JSON PUT as the admin and requires 200 or 201.
func (in *instance) put(t *testing.T, path, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, in.http+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, []int{200, 201}, resp.StatusCode, "PUT %s", path)
}

func (in *instance) notifications(t *testing.T, query string) []ticketing.Notification {
	t.Helper()
	var page struct {
		Items []ticketing.Notification `json:"items"`
	}
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/notifications"+query, &page))
	return page.Items
}

// TestNotifyEndToEndIntegration: a fault on three customers' devices, from
// MQTT readings through the detectors and a ticket to the customers: a
// signed webhook, an e-mail (in German, over STARTTLS) and an MQTT push to
// the companion app, and the staff chat for the critical one. Delivery
// status and attempts are visible over the API.
func TestNotifyEndToEndIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto, influxd and an SMTP server")
	}
	t.Parallel()
	hook := notifytest.NewReceiver(t, hookSecret)
	staff := notifytest.NewReceiver(t, "")
	smtp := testenv.SMTP(t, testenv.SMTPOptions{})
	in := startServe(t, "  flush_interval: 100ms", fmt.Sprintf(`notify:
  poll_interval: 50ms
  group_wait: 0s
  backoff_initial: 100ms
  backoff_max: 1s
  timeout: 5s
  lease: 10s
  staff_webhook_url: %s
  smtp: {host: %s, port: %d, tls: starttls, ca_file: %q, from: "Forewarn <noreply@forewarn.test>"}`,
		staff.URL, smtp.Host, smtp.Port, smtp.CAFile))

	// The companion app of c-app listens on its topic.
	pushed := make(chan []byte, 4)
	app := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(in.broker.URL).SetClientID("e2e-app"))
	tok := app.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { app.Disconnect(100) })
	tok = app.Subscribe("customers/c-app/notifications", 1, func(_ mqtt.Client, m mqtt.Message) { pushed <- m.Payload() })
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	in.put(t, "/api/v1/customers/c-hook", fmt.Sprintf(`{"name": "Ana", "channels": [{"type": "webhook", "url": %q, "secret": %q}]}`, hook.URL, hookSecret))
	in.put(t, "/api/v1/customers/c-mail", `{"name": "Bernd", "language": "de", "timezone": "Europe/Berlin", "channels": [{"type": "email", "address": "bernd@example.com"}]}`)
	in.put(t, "/api/v1/customers/c-app", `{"name": "Cy", "channels": [{"type": "mqtt"}]}`)
	for dev, c := range map[string]string{"hp-hook": "c-hook", "hp-mail": "c-mail", "hp-app": "c-app"} {
		in.put(t, "/api/v1/devices/"+dev, fmt.Sprintf(`{"model": "heatpump-a2", "customer_id": %q}`, c))
	}

	// The fault: supply temperature above 60 for more than a minute.
	pub := dialPublisher(t, in)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for _, dev := range []string{"hp-hook", "hp-mail", "hp-app"} {
		for i, v := range []float64{45, 46, 80, 81, 82, 83, 84, 85, 86, 87, 88} {
			ts := start.Add(time.Duration(i) * 10 * time.Second).UTC().Format(time.RFC3339)
			publish(t, pub, in.prefix+"/"+dev+"/telemetry", fmt.Sprintf(`{"ts":%q,"model":"heatpump-a2","metrics":{"supply_temp_c":%v}}`, ts, v))
		}
	}

	require.Eventually(t, func() bool {
		return len(hook.Deliveries()) >= 1 && len(smtp.Messages()) >= 1 && len(pushed) >= 1
	}, 30*time.Second, 50*time.Millisecond, "webhook %d, mail %d, push %d", len(hook.Deliveries()), len(smtp.Messages()), len(pushed))

	// The webhook: signed (the receiver verified it), the contract's body.
	d := hook.Deliveries()[0]
	_, bad := hook.Requests()
	require.Zero(t, bad)
	require.Equal(t, "ticket.opened", d.Event)
	require.Equal(t, "ticket.opened", d.Body["event"])
	require.Equal(t, "hp-hook", d.Body["device_id"])
	require.Equal(t, "c-hook", d.Body["customer_id"])
	require.Contains(t, d.Body["message"], "Hello Ana")
	require.Contains(t, d.Body["message"], "overheating")
	tk := d.Body["ticket"].(map[string]any)
	require.Equal(t, "overheating", tk["fault"])
	require.Equal(t, "open", tk["status"])

	// The e-mail: German, over STARTTLS, plain text and HTML.
	m := smtp.Messages()[0]
	require.True(t, m.TLS)
	require.Equal(t, []string{"bernd@example.com"}, m.To)
	require.Contains(t, m.Header.Get("Subject"), "Problem")
	require.Contains(t, string(m.Raw), "text/html")
	require.NotEmpty(t, m.Header.Get("X-Forewarn-Delivery"))

	// The push.
	var body map[string]any
	require.NoError(t, json.Unmarshal(<-pushed, &body))
	require.Equal(t, "c-app", body["customer_id"])
	require.Equal(t, "hp-app", body["device_id"])

	// Over the API: delivered, with the attempt and its channel.
	ticketID := int64(tk["id"].(float64))
	require.Eventually(t, func() bool {
		ns := in.notifications(t, fmt.Sprintf("?ticket=%d", ticketID))
		return len(ns) == 1 && ns[0].Status == ticketing.NotifyDelivered
	}, 10*time.Second, 50*time.Millisecond)
	n := in.notifications(t, fmt.Sprintf("?ticket=%d", ticketID))[0]
	require.Equal(t, "webhook", n.Channel)
	require.Len(t, n.Attempts, 1)
	require.Equal(t, ticketing.AttemptDelivered, n.Attempts[0].Outcome)
	require.Equal(t, d.Key, n.IdempotencyKey)
	require.Empty(t, staff.Deliveries(), "major tickets do not reach the staff chat")
	require.Positive(t, in.metric(t, `forewarn_notify_delivered_total{channel="webhook"}`))
	require.Positive(t, in.metric(t, `forewarn_notify_delivered_total{channel="email"}`))
	require.Positive(t, in.metric(t, `forewarn_notify_delivered_total{channel="mqtt"}`))
	require.NoError(t, in.stop(t))
}

// TestNotifyCrashRestartIntegration kills the built binary with SIGKILL
// while it delivers 40 notifications to a slow receiver, and starts it
// again: after the lease every notification is delivered, each outbox row
// is recorded delivered exactly once, and the receiver, deduplicating by
// X-Forewarn-Delivery, has every key. Rows in flight at the kill may reach
// the receiver twice, with the same key.
func TestNotifyCrashRestartIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd")
	}
	t.Parallel()
	const rows = 40
	hook := notifytest.NewReceiver(t, hookSecret)
	hook.SetDelay(150 * time.Millisecond)
	bin := buildBinary(t)
	in := newInstance(t)
	config := writeConfig(t, in, "  flush_interval: 100ms", `notify:
  poll_interval: 50ms
  group_wait: 0s
  timeout: 1s
  lease: 2s
  workers: 4
  batch_size: 8
  tier_rules: {standard: {daily_cap: 0}}`)

	// The outbox, written before the process starts, as ticketing does.
	ctx := context.Background()
	store, err := ticketing.Open(ctx, ticketing.Config{DSN: "sqlite:" + filepath.Join(filepath.Dir(config), "forewarn.db")})
	require.NoError(t, err)
	tc := ticketing.DefaultTicketsConfig()
	tc.Incidents.MinDevices = 0
	svc := ticketing.NewService(store, ticketing.Options{Tickets: tc})
	_, _, err = svc.PutCustomer(ctx, ticketing.Customer{ID: "c-crash", Channels: []ticketing.Channel{{Type: "webhook", URL: hook.URL, Secret: hookSecret}}}, "test")
	require.NoError(t, err)
	for i := range rows {
		dev := fmt.Sprintf("crash-%03d", i)
		_, _, err := svc.PutDevice(ctx, ticketing.Device{ID: dev, Model: "heatpump-a2", CustomerID: "c-crash"}, "test")
		require.NoError(t, err)
		require.NoError(t, svc.Handle(ctx, telemetry.Finding{Device: telemetry.DeviceID(dev), Model: "heatpump-a2", Fault: "overheating", Rule: "r",
			State: telemetry.Raised, Severity: telemetry.SeverityMajor, CustomerVisible: true, At: time.Now(),
			Evidence: telemetry.Evidence{Detector: "threshold", Value: 70, Limit: 60}}))
	}
	require.NoError(t, store.Close())

	p := startBinary(t, in, bin, config)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", in.stderr.String())
		}
	})
	require.Eventually(t, func() bool { n, _ := hook.Requests(); return n >= 12 }, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	werr := <-p.done
	p.done <- werr
	before, _ := hook.Requests()
	require.Less(t, len(hook.Keys()), rows, "killed mid-delivery")
	t.Logf("killed after %d requests, %d keys", before, len(hook.Keys()))

	p = startBinary(t, in, bin, config)
	require.Eventually(t, func() bool {
		return len(in.notifications(t, "?status=delivered&limit=500")) == rows
	}, 60*time.Second, 100*time.Millisecond, "every notification delivered after the restart")
	keys := hook.Keys()
	require.Len(t, keys, rows, "the receiver has every key")
	dups := 0
	for _, n := range keys {
		dups += n - 1
	}
	for _, n := range in.notifications(t, "?limit=500") {
		delivered := 0
		for _, a := range n.Attempts {
			if a.Outcome == ticketing.AttemptDelivered {
				delivered++
			}
		}
		require.Equal(t, 1, delivered, "notification %d recorded delivered once", n.ID)
		require.Contains(t, keys, n.IdempotencyKey)
	}
	t.Logf("%d duplicate deliveries (same key) of rows in flight at the kill", dups)
	require.LessOrEqual(t, dups, 8, "at most the rows one process held")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
}
