package main

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/simulator"
	"github.com/forewarn/forewarn/ticketing"
)

// TestServeRegistryEventsLastWillIntegration proves the wiring between
// ingest, the registry and the detector engine on real Mosquitto and
// InfluxDB: with registry.unknown_devices: reject, telemetry from a device
// the registry does not know is rejected (unknown_device) and never stored;
// a fault code on {prefix}/{id}/events opens an event ticket; and a device
// whose connection dies has its Last Will (status offline) published by
// the broker, which opens an offline ticket and marks the device offline
// in the registry.
func TestServeRegistryEventsLastWillIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	in := startServe(t, "  flush_interval: 100ms", `      - detector: event
        codes: [E42]
        clear_codes: [E00]
        fault: compressor_overcurrent
        severity: critical
        remedy: Switch the unit off for 10 minutes.
      - detector: offline
        for: 24h
        fault: device_offline
        severity: minor
        remedy: Ask the owner to check the router.
registry: {unknown_devices: reject}`)

	for _, id := range []string{"hp-known", "hp-lw"} {
		body := []byte(`{"model": "heatpump-a2", "site": "s1", "firmware": "1.4.2"}`)
		req, err := http.NewRequest(http.MethodPut, in.http+"/api/v1/devices/"+id, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Contains(t, []int{http.StatusOK, http.StatusCreated}, resp.StatusCode, "register %s", id)
	}

	pub := dialPublisher(t, in)
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Second).UTC()
	reading := func(i int) string {
		return fmt.Sprintf(`{"ts":%q,"model":"heatpump-a2","metrics":{"supply_temp_c":45}}`, at.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	publish(t, pub, in.prefix+"/hp-known/telemetry", reading(0))
	publish(t, pub, in.prefix+"/hp-stranger/telemetry", reading(0))
	publish(t, pub, in.prefix+"/hp-stranger/events", fmt.Sprintf(`{"ts":%q,"code":"E42"}`, at.Add(time.Second).Format(time.RFC3339)))
	require.Eventually(t, func() bool {
		return in.metric(t, `forewarn_ingest_rejected_total{reason="unknown_device"}`) == 2
	}, 10*time.Second, 50*time.Millisecond, "telemetry and events of an unknown device are rejected")
	require.Eventually(t, func() bool {
		pts := in.influxPoints(t)
		return len(pts) == 1 && pts[0].Device == "hp-known"
	}, 10*time.Second, 100*time.Millisecond, "only the registered device's reading is stored")

	// A fault code opens a ticket; the recovery code clears it.
	publish(t, pub, in.prefix+"/hp-known/events", fmt.Sprintf(`{"ts":%q,"code":"E42","message":"compressor overcurrent"}`, at.Add(2*time.Second).Format(time.RFC3339)))
	require.Eventually(t, func() bool { return hasTicket(in.openTickets(t), "hp-known", "compressor_overcurrent") },
		10*time.Second, 50*time.Millisecond, "an E42 event opens a ticket")

	// A real Last Will: the device's connection dies, the broker publishes offline.
	dev, err := simulator.NewDevicePublisher(in.broker.URL, "", "", "lw-", in.prefix, 1)
	require.NoError(t, err)
	t.Cleanup(dev.Close)
	require.NoError(t, dev.Publish(t.Context(), in.prefix+"/hp-lw/telemetry", []byte(reading(3))))
	require.NoError(t, dev.Flush(t.Context()))
	require.Eventually(t, func() bool { return in.metric(t, "forewarn_ingest_readings_total") == 2 }, 10*time.Second, 50*time.Millisecond)
	require.False(t, hasTicket(in.openTickets(t), "hp-lw", "device_offline"), "online: no ticket yet")
	require.NoError(t, dev.Drop("hp-lw"))
	require.Eventually(t, func() bool { return hasTicket(in.openTickets(t), "hp-lw", "device_offline") },
		15*time.Second, 50*time.Millisecond, "the Last Will opens an offline ticket")
	require.False(t, hasTicket(in.openTickets(t), "hp-known", "device_offline"), "the other device is online")

	// The registry saw the known devices' telemetry, and the Last Will.
	var d ticketing.Device
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/devices/hp-known", &d))
	require.NotNil(t, d.LastSeen)
	var lw ticketing.Device
	require.Equal(t, http.StatusOK, in.get(t, "/api/v1/devices/hp-lw", &lw))
	require.NotNil(t, lw.Online)
	require.False(t, *lw.Online, "the Last Will marked hp-lw offline in the registry")
	require.NotNil(t, lw.LastSeen, "offline keeps the last sighting")
}

func hasTicket(ts []ticketing.Ticket, device, fault string) bool {
	return slices.ContainsFunc(ts, func(tk ticketing.Ticket) bool { return tk.DeviceID == device && tk.Fault == fault })
}
