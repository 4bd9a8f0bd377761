package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildBinary builds forewarn into a temp dir, as an operator would run it.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "forewarn")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// proc is one run of the built binary.
type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func startBinary(t *testing.T, in *instance, bin, config string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, "serve", "--config", config), done: make(chan error, 1)}
	p.cmd.Stderr = in.stderr
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // no-op once it exited
		<-p.done
		p.done <- nil
	})
	require.Eventually(t, func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("serve exited early: %v\n%s", err, in.stderr.String())
		default:
		}
		resp, err := http.Get(in.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "serve never became ready")
	return p
}

// TestCrashKill9Integration publishes 20,000 QoS 1 readings while the built
// binary is killed with SIGKILL twice mid-stream and restarted each time:
// every reading the broker delivered was either acknowledged after it was
// synced to the spool (and is replayed from there) or not acknowledged (and
// is redelivered by the broker), so InfluxDB ends up holding all 20,000,
// each with its own value, none missing.
func TestCrashKill9Integration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto and influxd (run make test)")
	}
	t.Parallel()
	bin := buildBinary(t)
	in := newInstance(t)
	config := writeConfig(t, in, "  flush_interval: 50ms\n  batch_size: 1000")
	p := startBinary(t, in, bin, config)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", in.stderr.String())
		}
	})

	const n, devices = 20000, 100
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	pub := dialPublisher(t, in)
	var sent atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		// At most 4 messages a millisecond, so the broker's queue for the
		// session (10,000) never overflows while forewarn restarts.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			if i%4 == 0 {
				<-tick.C
			}
			dev := fmt.Sprintf("crash-%03d", i%devices)
			payload := fmt.Appendf(nil, `{"ts":%d,"metrics":{"supply_temp_c":%d}}`, base.Add(time.Duration(i)*time.Millisecond).UnixMilli(), i)
			if err := pub.Publish(t.Context(), in.prefix+"/"+dev+"/telemetry", payload); err != nil {
				pubDone <- err
				return
			}
			sent.Add(1)
		}
		pubDone <- pub.Flush(t.Context())
	}()

	for _, at := range []int64{4000, 12000} {
		require.Eventually(t, func() bool { return sent.Load() >= at }, 60*time.Second, time.Millisecond)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		err := <-p.done
		p.done <- err
		require.ErrorContains(t, err, "signal: killed")
		t.Logf("killed forewarn after %d published", sent.Load())
		p = startBinary(t, in, bin, config)
	}
	require.NoError(t, <-pubDone)

	var pts []point
	require.Eventually(t, func() bool { pts = in.influxPoints(t); return len(pts) >= n }, 60*time.Second, 250*time.Millisecond,
		"InfluxDB holds every reading")
	require.Len(t, pts, n)
	seen := make([]bool, n)
	for _, pt := range pts {
		i := int(pt.Value)
		require.False(t, seen[i], "value %d twice", i)
		seen[i] = true
		require.Equal(t, base.Add(time.Duration(i)*time.Millisecond), pt.At, "value %d", i)
		require.Equal(t, fmt.Sprintf("crash-%03d", i%devices), pt.Device)
	}
	require.Contains(t, in.stderr.String(), "replaying spool", "a restart found readings in the spool and replayed them")
}
