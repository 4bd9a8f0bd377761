package main

import (
	"context"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/telemetry"
)

func TestInfluxSummarizerIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs influxd (run make test)")
	}
	t.Parallel()
	db := testenv.InfluxDB(t)
	c := influxdb2.NewClient(db.URL, db.Token)
	defer c.Close()
	w := c.WriteAPIBlocking(db.Org, db.Bucket)
	since := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var lines []string
	add := func(dev string, at time.Time, temp float64, on bool) {
		r := telemetry.Reading{Device: telemetry.DeviceID(dev), Model: "m", At: at, Fields: []telemetry.Field{
			{Name: "on", Value: map[bool]float64{false: 0, true: 1}[on], IsBool: true}, {Name: "temp", Value: temp}}}
		lines = append(lines, strings.TrimSuffix(string(ingest.AppendLine(nil, r)), "\n"))
	}
	for i, v := range []float64{10, 20, 30, 40} {
		add("hp-1", since.Add(time.Duration(i+1)*time.Hour), v, i%2 == 0)
	}
	add("hp-1", since.Add(-time.Hour), 999, true)   // before the window
	add("hp-1", since.Add(49*time.Hour), 999, true) // after it
	add("hp-2", since.Add(time.Hour), 555, true)    // another device
	require.NoError(t, w.WriteRecord(context.Background(), lines...))

	s := &influxSummarizer{client: c, org: db.Org, bucket: db.Bucket, now: func() time.Time { return since.Add(100 * time.Hour) }}
	got, err := s.Summarize(t.Context(), "hp-1", since)
	require.NoError(t, err)
	sum := got.(TelemetrySummary)
	require.Equal(t, since.Add(48*time.Hour), sum.To)
	require.Equal(t, MetricSummary{Count: 4, Min: 10, Max: 40, Mean: 25, Last: 40, LastAt: since.Add(4 * time.Hour)}, sum.Metrics["temp"])
	require.Equal(t, MetricSummary{Count: 4, Min: 0, Max: 1, Mean: 0.5, Last: 0, LastAt: since.Add(4 * time.Hour)}, sum.Metrics["on"])

	// The window ends now when now is nearer.
	s.now = func() time.Time { return since.Add(150 * time.Minute) }
	got, err = s.Summarize(t.Context(), "hp-1", since)
	require.NoError(t, err)
	require.Equal(t, 2, got.(TelemetrySummary).Metrics["temp"].Count)

	// An unknown device has no metrics, not an error.
	got, err = s.Summarize(t.Context(), "nobody", since)
	require.NoError(t, err)
	require.Empty(t, got.(TelemetrySummary).Metrics)
}

func TestFluxNumber(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want float64
		ok   bool
	}{
		{21.5, 21.5, true}, {int64(-3), -3, true}, {uint64(7), 7, true},
		{true, 1, true}, {false, 0, true}, {"on", 0, false}, {nil, 0, false},
	} {
		got, ok := fluxNumber(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("fluxNumber(%#v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
