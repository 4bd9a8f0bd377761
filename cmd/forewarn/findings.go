package main

import (
	"context"
	"log/slog"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/telemetry"
)

// FindingsMeasurement is the InfluxDB measurement findings are written to,
// so they can be graphed beside the telemetry. Tags: device_id, model,
// fault, state, severity (all bounded); fields: rule, detector, value,
// limit, note, customer_visible, and expected, score, confidence, cross_at
// (RFC 3339), code where the detector sets them.
const FindingsMeasurement = "findings"

// findingPoint returns the InfluxDB point of f.
func findingPoint(f telemetry.Finding) *write.Point {
	ev := f.Evidence
	p := write.NewPointWithMeasurement(FindingsMeasurement).
		AddTag("device_id", string(f.Device)).
		AddTag("fault", f.Fault).
		AddTag("state", f.State.String()).
		AddTag("severity", f.Severity.String()).
		AddField("rule", f.Rule).
		AddField("detector", ev.Detector).
		AddField("value", ev.Value).
		AddField("limit", ev.Limit).
		AddField("customer_visible", f.CustomerVisible).
		SetTime(f.At)
	if f.Model != "" {
		p.AddTag("model", f.Model)
	}
	if ev.Note != "" {
		p.AddField("note", ev.Note)
	}
	if ev.Expected != 0 {
		p.AddField("expected", ev.Expected)
	}
	if ev.Score != 0 {
		p.AddField("score", ev.Score)
	}
	if !ev.CrossAt.IsZero() {
		p.AddField("cross_at", ev.CrossAt.UTC().Format(time.RFC3339))
		p.AddField("confidence", ev.Confidence)
	}
	if ev.Code != "" {
		p.AddField("code", ev.Code)
	}
	return p
}

// findingsQueue bounds the findings waiting for InfluxDB.
const findingsQueue = 10000

// findingsWriter writes findings to InfluxDB from its own goroutine, so a
// slow or absent InfluxDB never stalls detection or ticketing: Add never
// blocks, and drops (counted) when the queue is full. Findings are a copy
// for graphs; the tickets are the record.
type findingsWriter struct {
	api     api.WriteAPIBlocking
	queue   chan telemetry.Finding
	log     *slog.Logger
	written prometheus.Counter
	dropped *prometheus.CounterVec
}

func newFindingsWriter(client influxdb2.Client, cfg ingest.InfluxConfig, log *slog.Logger, reg prometheus.Registerer) *findingsWriter {
	w := &findingsWriter{
		api:   client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		queue: make(chan telemetry.Finding, findingsQueue),
		log:   log.With("component", "findings-writer"),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_influx_findings_written_total", Help: "Findings written to InfluxDB measurement findings.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_influx_findings_dropped_total", Help: "Findings not written to InfluxDB, by reason (queue_full, write_failed).",
		}, []string{"reason"}),
	}
	reg.MustRegister(w.written, w.dropped)
	return w
}

// Add queues fs for writing.
func (w *findingsWriter) Add(fs []telemetry.Finding) {
	for _, f := range fs {
		select {
		case w.queue <- f:
		default:
			w.dropped.WithLabelValues("queue_full").Inc()
		}
	}
}

// Run writes queued findings in batches until ctx is done, then writes
// what is queued within drain.
func (w *findingsWriter) Run(ctx context.Context, drain time.Duration) {
	for {
		select {
		case f := <-w.queue:
			w.flush(ctx, f)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
			defer cancel()
			for {
				select {
				case f := <-w.queue:
					w.flush(dctx, f)
				default:
					return
				}
			}
		}
	}
}

// flush writes first and whatever else is queued, retrying a failed write
// once after a second.
func (w *findingsWriter) flush(ctx context.Context, first telemetry.Finding) {
	pts := []*write.Point{findingPoint(first)}
	for len(pts) < 1000 {
		select {
		case f := <-w.queue:
			pts = append(pts, findingPoint(f))
			continue
		default:
		}
		break
	}
	wctx := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(wctx, dl)
		defer cancel()
	}
	err := w.api.WritePoint(wctx, pts...)
	if err != nil {
		w.log.Warn("influx write of findings failed, will retry", "points", len(pts), "err", err)
		select {
		case <-time.After(time.Second):
		case <-wctx.Done():
		}
		err = w.api.WritePoint(wctx, pts...)
	}
	if err != nil {
		w.dropped.WithLabelValues("write_failed").Add(float64(len(pts)))
		w.log.Error("findings not written to influx", "points", len(pts), "err", err)
		return
	}
	w.written.Add(float64(len(pts)))
}
