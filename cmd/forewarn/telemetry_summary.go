package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/forewarn/forewarn/httpapi"
	"github.com/forewarn/forewarn/ingest"
)

// influxSummarizer gives a ticket's context the device's telemetry around
// the fault: per metric, the count, min, max, mean and last value of the
// readings from since to 48 h after it (24 h before the latest raise to 24 h
// after, as the console asks) or now, whichever is first. It reads at most
// summaryTail readings per metric, the latest ones.
type influxSummarizer struct {
	client influxdb2.Client
	org    string
	bucket string
	now    func() time.Time
}

const summaryTail = 5000

var _ httpapi.TelemetrySummarizer = (*influxSummarizer)(nil)

// MetricSummary is one metric's figures over the window.
type MetricSummary struct {
	Count  int       `json:"count"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Mean   float64   `json:"mean"`
	Last   float64   `json:"last"`
	LastAt time.Time `json:"last_at"`
}

// TelemetrySummary is what Summarize returns.
type TelemetrySummary struct {
	From    time.Time                `json:"from"`
	To      time.Time                `json:"to"`
	Metrics map[string]MetricSummary `json:"metrics"`
}

func (s *influxSummarizer) Summarize(ctx context.Context, deviceID string, since time.Time) (any, error) {
	to := since.Add(48 * time.Hour)
	if now := s.now(); to.After(now) {
		to = now
	}
	if !to.After(since) {
		return TelemetrySummary{From: since, To: to, Metrics: map[string]MetricSummary{}}, nil
	}
	// deviceID comes from a stored ticket and is [A-Za-z0-9._:-] (the
	// device contract), so %q quoting is exact Flux string syntax.
	q := fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.device_id == %q)
  |> keep(columns: ["_time", "_field", "_value"])
  |> group(columns: ["_field"])
  |> sort(columns: ["_time"])
  |> tail(n: %d)`, s.bucket, since.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano),
		ingest.Measurement, deviceID, summaryTail)
	res, err := s.client.QueryAPI(s.org).Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query telemetry of %s: %w", deviceID, err)
	}
	defer res.Close()
	sums := map[string]*MetricSummary{}
	for res.Next() {
		rec := res.Record()
		v, ok := fluxNumber(rec.Value())
		if !ok {
			continue // strings are not telemetry
		}
		m := sums[rec.Field()]
		if m == nil {
			m = &MetricSummary{Min: math.Inf(1), Max: math.Inf(-1)}
			sums[rec.Field()] = m
		}
		m.Count++
		m.Min, m.Max = min(m.Min, v), max(m.Max, v)
		m.Mean += (v - m.Mean) / float64(m.Count) // running mean
		if !rec.Time().Before(m.LastAt) {
			m.Last, m.LastAt = v, rec.Time().UTC()
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read telemetry of %s: %w", deviceID, err)
	}
	out := TelemetrySummary{From: since.UTC(), To: to.UTC(), Metrics: make(map[string]MetricSummary, len(sums))}
	for name, m := range sums {
		out.Metrics[name] = *m
	}
	return out, nil
}

var _ httpapi.TelemetrySeries = (*influxSummarizer)(nil)

// seriesTail bounds the readings Series reads from InfluxDB; it keeps the
// latest ones.
const seriesTail = 20000

// Series reads metric of deviceID between from and to in time order for
// the console's ticket chart. More than maxPoints readings are thinned to
// the first, the lowest and the highest of each of maxPoints/3 equal time
// buckets, so a spike or a dip stays visible.
func (s *influxSummarizer) Series(ctx context.Context, deviceID, metric string, from, to time.Time, maxPoints int) ([]httpapi.SeriesPoint, error) {
	// deviceID and metric come from a stored ticket: a device id is
	// [A-Za-z0-9._:-] (the device contract) and a metric is a configured
	// rule's, so %q quoting is exact Flux string syntax.
	q := fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.device_id == %q and r._field == %q)
  |> keep(columns: ["_time", "_value"])
  |> group()
  |> sort(columns: ["_time"])
  |> tail(n: %d)`, s.bucket, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano),
		ingest.Measurement, deviceID, metric, seriesTail)
	res, err := s.client.QueryAPI(s.org).Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query %s of %s: %w", metric, deviceID, err)
	}
	defer res.Close()
	var pts []httpapi.SeriesPoint
	for res.Next() {
		rec := res.Record()
		v, ok := fluxNumber(rec.Value())
		if !ok {
			continue
		}
		pts = append(pts, httpapi.SeriesPoint{At: rec.Time().UTC(), Value: v})
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", metric, deviceID, err)
	}
	return thin(pts, maxPoints), nil
}

// thin keeps at most about maxPoints of pts (in time order): per time
// bucket its first, lowest and highest reading, in time order.
func thin(pts []httpapi.SeriesPoint, maxPoints int) []httpapi.SeriesPoint {
	if maxPoints < 3 || len(pts) <= maxPoints {
		return pts
	}
	buckets := maxPoints / 3
	t0, span := pts[0].At, pts[len(pts)-1].At.Sub(pts[0].At)
	if span <= 0 {
		return pts[:maxPoints]
	}
	bucket := func(p httpapi.SeriesPoint) int {
		return min(buckets-1, int(float64(p.At.Sub(t0))/float64(span)*float64(buckets)))
	}
	out := make([]httpapi.SeriesPoint, 0, maxPoints)
	for i := 0; i < len(pts); {
		b, j, lo, hi := bucket(pts[i]), i, i, i
		for ; j < len(pts) && bucket(pts[j]) == b; j++ {
			if pts[j].Value < pts[lo].Value {
				lo = j
			}
			if pts[j].Value > pts[hi].Value {
				hi = j
			}
		}
		keep := []int{i, lo, hi}
		slices.Sort(keep)
		for _, k := range slices.Compact(keep) {
			out = append(out, pts[k])
		}
		i = j
	}
	return out
}

// fluxNumber is a Flux record value as a number: floats and integers as
// they are, booleans as 0 or 1; ok is false for anything else (strings).
func fluxNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
