package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSIGTERMFlushesIntegration runs the built binary, as an operator does:
// readings accepted before SIGTERM are all in InfluxDB after it exits 0,
// although the flush interval (1h) never came round.
func TestSIGTERMFlushesIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "forewarn")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	in := newInstance(t)
	path := writeConfig(t, in, "  flush_interval: 1h")
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Stderr = in.stderr
	require.NoError(t, cmd.Start())
	go func() { in.done <- cmd.Wait() }()
	in.cancel = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once it exited
		<-in.done
		if t.Failed() {
			t.Logf("serve log:\n%s", in.stderr.String())
		}
	})
	in.waitReady(t)

	pub := dialPublisher(t, in)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	const n = 500
	var want []point
	for i := range n {
		at := base.Add(time.Duration(i) * time.Second)
		dev := fmt.Sprintf("hp-%d", i%5)
		require.NoError(t, pub.Publish(t.Context(), in.prefix+"/"+dev+"/telemetry",
			fmt.Appendf(nil, `{"ts":%q,"metrics":{"supply_temp_c":%d}}`, at.Format(time.RFC3339), i)))
		want = append(want, point{Device: dev, At: at, Value: float64(i)})
	}
	require.NoError(t, pub.Flush(t.Context()))
	require.Eventually(t, func() bool { return in.metric(t, "forewarn_ingest_readings_total") == n }, 10*time.Second, 50*time.Millisecond)
	require.Empty(t, in.influxPoints(t), "nothing flushed before the signal")

	require.NoError(t, in.stop(t), "serve must exit 0 on SIGTERM")
	sortPoints(want)
	require.Equal(t, want, in.influxPoints(t))
	require.Regexp(t, `msg="shutting down" backlog_bytes=[1-9][0-9]*`, in.stderr.String(), "the readings were in the spool, not yet in InfluxDB")
}
