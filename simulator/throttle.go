package simulator

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A Throttle holds a run back until the consumer has caught up. Run calls
// Wait with the number of readings published so far before publishing the
// next one; Wait returns at once while the consumer is close enough.
//
// Without one, "--speed max" can outrun Forewarn: the broker queues only so
// many messages per subscriber (Mosquitto's max_queued_messages, 1000 by
// default) and drops the rest, QoS 1 or not.
type Throttle interface {
	Wait(ctx context.Context, readings int) error
}

// MetricsThrottle keeps at most Window readings between the simulator and
// Forewarn's ingest, reading the counter Metric (default
// forewarn_ingest_messages_total{kind="telemetry"}; a bare metric name sums
// all its series) from Forewarn's Prometheus endpoint URL
// (http://host:port/metrics). The counter's value at the first call is the
// baseline; other traffic only makes the throttle looser.
type MetricsThrottle struct {
	Client *http.Client
	URL    string
	Token  string // bearer token: Forewarn's /metrics needs one like every route but /healthz and /readyz
	Metric string
	Window int           // default 500
	Stall  time.Duration // give up when the counter does not move for this long; default 60s

	base, seen float64
	started    bool
}

// Wait blocks until readings - consumed <= Window.
func (m *MetricsThrottle) Wait(ctx context.Context, readings int) error {
	if m.Window <= 0 {
		m.Window = 500
	}
	if m.Metric == "" {
		m.Metric = `forewarn_ingest_messages_total{kind="telemetry"}`
	}
	if m.Stall <= 0 {
		m.Stall = time.Minute
	}
	if !m.started {
		v, err := m.read(ctx)
		if err != nil {
			return err
		}
		m.base, m.seen, m.started = v, v, true
	}
	lastMove := time.Now()
	for readings-int(m.seen-m.base) > m.Window {
		v, err := m.read(ctx)
		if err != nil {
			return err
		}
		if v != m.seen {
			m.seen, lastMove = v, time.Now()
			continue
		}
		if time.Since(lastMove) > m.Stall {
			return fmt.Errorf("forewarn consumed nothing for %s (%s stays at %v; %d readings published)", m.Stall, m.Metric, v, readings)
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func (m *MetricsThrottle) read(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", m.URL, err)
	}
	if m.Token != "" {
		req.Header.Set("Authorization", "Bearer "+m.Token)
	}
	client := m.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", m.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read %s: status %s", m.URL, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	// A Metric with labels names one series exactly; a bare name sums every
	// series of that metric, whatever its labels.
	exact := strings.Contains(m.Metric, "{")
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		series, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(series, "{")
		if (exact && series != m.Metric) || (!exact && name != m.Metric) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("read %s: %s: %w", m.URL, series, err)
		}
		if exact {
			return f, nil
		}
		sum += f
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", m.URL, err)
	}
	return sum, nil // 0 while not exported yet: nothing consumed
}
