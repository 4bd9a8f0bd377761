package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/config"
	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/replay"
	"github.com/forewarn/forewarn/telemetry"
)

// replayInflux reads the telemetry of a time range back from InfluxDB
// (measurement telemetry, the config's influx section) and runs the
// config's profiles over it in event-time order, as the live engine would
// have: it writes DIR/<device_id>.csv (timestamp, anomaly_score, finding
// per reading) and DIR/findings.jsonl.
func replayInflux(ctx context.Context, o replayOptions, stderr io.Writer) error {
	cfg, err := config.Load(config.Options{File: o.config})
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	from, err := time.Parse(time.RFC3339Nano, o.from)
	if err != nil {
		return usageError{fmt.Sprintf("--from %q: want an RFC 3339 time", o.from)}
	}
	to := time.Now().UTC()
	if o.to != "" {
		if to, err = time.Parse(time.RFC3339Nano, o.to); err != nil {
			return usageError{fmt.Sprintf("--to %q: want an RFC 3339 time", o.to)}
		}
	}
	if o.device != "" {
		if _, err := telemetry.ParseDeviceID(o.device); err != nil {
			return usageError{fmt.Sprintf("--device: %v", err)}
		}
	}
	rs, err := readInfluxReadings(ctx, cfg.Influx, from, to, o.device)
	if err != nil {
		return err
	}
	engine, err := detectors.NewEngine(cfg.Profiles)
	if err != nil {
		return fmt.Errorf("load detector profiles: %w", err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	type deviceOut struct {
		b strings.Builder
	}
	outs := map[telemetry.DeviceID]*deviceOut{}
	var all []telemetry.Finding
	for _, r := range rs {
		fs := engine.Observe(r)
		all = append(all, fs...)
		d := outs[r.Device]
		if d == nil {
			d = &deviceOut{}
			d.b.WriteString("timestamp,anomaly_score,finding\n")
			outs[r.Device] = d
		}
		var raised []string
		for _, f := range fs {
			if f.State == telemetry.Raised {
				raised = append(raised, f.Fault)
			}
		}
		score := 0.0
		if len(raised) > 0 {
			score = 0.5
			if s, ok := engine.Score(r.Device); ok {
				score = max(s, 0.5)
			}
		}
		fmt.Fprintf(&d.b, "%s,%s,%s\n", r.At.UTC().Format(time.RFC3339Nano), strconv.FormatFloat(score, 'g', 8, 64), strings.Join(raised, "|"))
	}
	for id, d := range outs {
		if err := os.WriteFile(filepath.Join(o.out, string(id)+".csv"), []byte(d.b.String()), 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	jf, err := os.Create(filepath.Join(o.out, "findings.jsonl"))
	if err != nil {
		return fmt.Errorf("create findings file: %w", err)
	}
	defer jf.Close()
	if err := replay.WriteFindings(jf, "influx:"+cfg.Influx.Bucket, all); err != nil {
		return err
	}
	if err := jf.Close(); err != nil {
		return fmt.Errorf("write findings file: %w", err)
	}
	fmt.Fprintf(stderr, "replayed %d readings of %d devices from %s, %d findings, results in %s\n", len(rs), len(outs), cfg.Influx.Bucket, len(all), o.out)
	return nil
}

// readInfluxReadings reads measurement telemetry in [from, to) back as
// readings (one per device and time, fields pivoted), sorted by time,
// then device.
func readInfluxReadings(ctx context.Context, cfg ingest.InfluxConfig, from, to time.Time, device string) ([]telemetry.Reading, error) {
	client := ingest.NewInfluxClient(cfg)
	defer client.Close()
	filter := fmt.Sprintf(`r._measurement == %q`, ingest.Measurement)
	if device != "" {
		filter += fmt.Sprintf(` and r.device_id == %q`, device)
	}
	q := fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		cfg.Bucket, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), filter)
	res, err := client.QueryAPI(cfg.Org).Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", cfg.Bucket, err)
	}
	defer res.Close()
	var rs []telemetry.Reading
	for res.Next() {
		rec := res.Record()
		raw, _ := rec.ValueByKey("device_id").(string)
		id, err := telemetry.ParseDeviceID(raw)
		if err != nil {
			continue // not written by Forewarn's ingest; its id could not name a file
		}
		model, _ := rec.ValueByKey("model").(string)
		r := telemetry.Reading{Device: id, Model: model, At: rec.Time()}
		for k, v := range rec.Values() {
			if strings.HasPrefix(k, "_") || k == "result" || k == "table" || k == "device_id" || k == "model" {
				continue
			}
			switch x := v.(type) {
			case float64:
				r.Fields = append(r.Fields, telemetry.Field{Name: k, Value: x})
			case int64:
				r.Fields = append(r.Fields, telemetry.Field{Name: k, Value: float64(x)})
			case bool:
				f := telemetry.Field{Name: k, IsBool: true}
				if x {
					f.Value = 1
				}
				r.Fields = append(r.Fields, f)
			}
		}
		slices.SortFunc(r.Fields, func(a, b telemetry.Field) int { return strings.Compare(a.Name, b.Name) })
		if len(r.Fields) > 0 {
			rs = append(rs, r)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("query %s: %w", cfg.Bucket, err)
	}
	slices.SortStableFunc(rs, func(a, b telemetry.Reading) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(string(a.Device), string(b.Device))
	})
	return rs, nil
}
