package ingest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
)

// TestDeviceIdentityACLIntegration runs the shipped device-identity ACL
// (examples/mosquitto-devices.acl) on a real Mosquitto with password sign-in:
// a device signed in as hp-1 that publishes under hp-2's id is dropped by
// the broker, while each device's own readings reach Forewarn.
func TestDeviceIdentityACLIntegration(t *testing.T) {
	root := testenv.RepoRoot(t)
	passwd, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd not found (it comes with the mosquitto package: make deps): %v", err)
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	for i, user := range []string{"forewarn", "hp-1", "hp-2"} {
		args := []string{"-b", pwFile, user, "secret-" + user}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		out, err := exec.Command(passwd, args...).CombinedOutput()
		require.NoError(t, err, "mosquitto_passwd: %s", out)
	}
	require.NoError(t, os.Chmod(pwFile, 0o600))
	conf, err := os.ReadFile(filepath.Join(root, "examples", "mosquitto.conf"))
	require.NoError(t, err)
	conf = fmt.Appendf(conf, "\nallow_anonymous false\npassword_file %s\nacl_file %s\n",
		pwFile, filepath.Join(root, "examples", "mosquitto-devices.acl"))
	broker, db := testenv.MosquittoWithConf(t, string(conf)), testenv.InfluxDB(t)

	p := startPipeline(t, broker, db, "devices", 1<<30, func(c *MQTTConfig) {
		c.Username, c.Password = "forewarn", "secret-forewarn"
	})
	device := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(id).
			SetUsername(id).SetPassword("secret-" + id))
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error(), "device %s signs in", id)
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	hp1, hp2 := device("hp-1"), device("hp-2")
	ts := time.Now().Add(-time.Minute).UnixNano()
	publish := func(c mqtt.Client, topicDevice string, v int) {
		tok := c.Publish("devices/"+topicDevice+"/telemetry", 1, false,
			fmt.Sprintf(`{"ts":%d,"metrics":{"v":%d}}`, ts+int64(v), v))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error()) // MQTT 3.1.1: a denied publish is still acknowledged, then dropped
	}
	publish(hp2, "hp-2", 1)
	publish(hp1, "hp-2", 666) // hp-1 claims to be hp-2
	publish(hp1, "hp-1", 2)   // after the claim on the same connection: once it is in, the claim would be too

	accepted := func() float64 { return testutil.ToFloat64(p.sub.metrics.accepted) }
	require.Eventually(t, func() bool { return accepted() >= 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 2.0, accepted(), "only the devices' own readings reach ingest")
	want := map[string]int64{"hp-1": 1, "hp-2": 1} // hp-2 would hold 2 had the claim got through
	require.Eventually(t, func() bool { return fmt.Sprint(countPoints(t, db)) == fmt.Sprint(want) },
		10*time.Second, 50*time.Millisecond, "points per device, want %v", want)
}
