package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forewarn/forewarn/telemetry"
)

// Measurement is the InfluxDB measurement telemetry is written to. Tags are
// device_id and model (bounded cardinality); each metric is one field.
const Measurement = "telemetry"

// EventMeasurement is the measurement device events are written to: tags
// device_id and code, field message.
const EventMeasurement = "device_events"

// NewInfluxClient returns an InfluxDB v2 API client for cfg, for queries and
// health checks. It does not connect. Writes go through Writer.
func NewInfluxClient(cfg InfluxConfig) influxdb2.Client {
	opts := influxdb2.DefaultOptions().
		SetHTTPRequestTimeout(uint(cfg.Timeout.Seconds())).
		SetPrecision(time.Nanosecond)
	return influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
}

// AppendLine appends r as one line of InfluxDB line protocol, ending in
// '\n', with nanosecond precision. Device ids, models and metric names are
// restricted to [A-Za-z0-9._:-] by the decoders, so nothing needs escaping.
func AppendLine(b []byte, r telemetry.Reading) []byte {
	b = append(b, Measurement+",device_id="...)
	b = append(b, r.Device...)
	if r.Model != "" {
		b = append(b, ",model="...)
		b = append(b, r.Model...)
	}
	for i, f := range r.Fields {
		if i == 0 {
			b = append(b, ' ')
		} else {
			b = append(b, ',')
		}
		b = append(b, f.Name...)
		b = append(b, '=')
		switch {
		case f.IsBool && f.Value != 0:
			b = append(b, "true"...)
		case f.IsBool:
			b = append(b, "false"...)
		case f.Value == math.Trunc(f.Value) && math.Abs(f.Value) < 1e15:
			b = strconv.AppendInt(b, int64(f.Value), 10)
			b = append(b, ".0"...) // a float field, never an integer one
		default:
			b = strconv.AppendFloat(b, f.Value, 'g', -1, 64)
		}
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.At.UnixNano(), 10)
	return append(b, '\n')
}

// AppendEventLine appends e as one line of line protocol in EventMeasurement.
func AppendEventLine(b []byte, e telemetry.DeviceEvent) []byte {
	b = append(b, EventMeasurement+",device_id="...)
	b = append(b, e.Device...)
	b = append(b, ",code="...)
	b = append(b, e.Code...)
	b = append(b, ` message="`...)
	for i := 0; i < len(e.Message); i++ {
		switch c := e.Message[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...) // a raw newline would end the line
		default:
			b = append(b, c)
		}
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, e.At.UnixNano(), 10)
	return append(b, '\n')
}

// A WriteError is a write request InfluxDB (or the way to it) refused.
// Retryable errors are retried with backoff; the others mean InfluxDB
// refused the data itself, and retrying it unchanged cannot help.
type WriteError struct {
	StatusCode int           // 0 for a network error
	Retryable  bool          // network errors, 429, 5xx, and 401/403/404 (an operator can fix them)
	RetryAfter time.Duration // from a Retry-After header, if any
	Err        error
}

func (e *WriteError) Error() string {
	if e.StatusCode == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("influxdb answered %d: %v", e.StatusCode, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

type writerMetrics struct {
	written  prometheus.Counter
	dropped  *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  prometheus.Histogram
	spoolB   prometheus.GaugeFunc
	backlog  prometheus.GaugeFunc
}

func newWriterMetrics(reg prometheus.Registerer, w *Writer) *writerMetrics {
	m := &writerMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_influx_points_written_total", Help: "Points InfluxDB accepted.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_influx_points_dropped_total", Help: "Points given up on, by reason (rejected: InfluxDB refused the point itself, isolated by splitting its batch; corrupt: a spool record failed its checksum, counted in records).",
		}, []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_influx_write_failures_total", Help: "Failed write requests, by kind (retryable, permanent).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "forewarn_influx_write_seconds", Help: "Duration of write requests, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		spoolB: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "forewarn_spool_bytes", Help: "Spooled bytes not yet released (spool.max_bytes bounds it; files may hold up to one segment more).",
		}, func() float64 { return float64(w.spool.Size()) }),
		backlog: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "forewarn_spool_backlog_bytes", Help: "Spooled bytes not yet confirmed written to InfluxDB.",
		}, func() float64 { return float64(w.Backlog()) }),
	}
	for _, r := range []string{"rejected", "corrupt"} {
		m.dropped.WithLabelValues(r)
	}
	for _, k := range []string{"retryable", "permanent"} {
		m.failures.WithLabelValues(k)
	}
	reg.MustRegister(m.written, m.dropped, m.failures, m.latency, m.spoolB, m.backlog)
	return m
}

// lagBytes is how far the live lane may fall behind the spool's head before
// it hands the stretch to the backlog lane and jumps to the head, so a
// backlog drains beside fresh data instead of in front of it.
const lagBytes = 1 << 20

// Writer ships the spool to InfluxDB. Two lanes read it: the live lane
// follows the head in batches of batch_size points (or what arrived within
// flush_interval), and the backlog lane drains older stretches at full speed:
// what a previous run left, or what piled up while InfluxDB was away. Each
// lane retries retryable failures with backoff (100 ms doubling to 5 s,
// honouring Retry-After). A batch InfluxDB refuses as bad data (400, 422,
// 413) is split in halves until the bad points are alone; those are dropped
// and counted, the rest written. Spool segments are deleted once every
// record in them is written.
type Writer struct {
	spool   *Spool
	cfg     InfluxConfig
	client  *http.Client
	url     string
	log     *slog.Logger
	metrics *writerMetrics
	sampler *logSampler

	track       tracker
	backlogBusy atomic.Bool
}

// NewWriter returns a Writer from sp to cfg's bucket.
func NewWriter(sp *Spool, cfg InfluxConfig, logger *slog.Logger, reg prometheus.Registerer) *Writer {
	q := url.Values{"org": {cfg.Org}, "bucket": {cfg.Bucket}, "precision": {"ns"}}
	start, _, _ := sp.Bounds()
	w := &Writer{
		spool:   sp,
		cfg:     cfg,
		client:  &http.Client{Timeout: cfg.Timeout},
		url:     strings.TrimSuffix(cfg.URL, "/") + "/api/v2/write?" + q.Encode(),
		log:     logger.With("component", "influx-writer", "bucket", cfg.Bucket),
		sampler: newLogSampler(time.Second),
		track:   tracker{base: start},
	}
	w.metrics = newWriterMetrics(reg, w)
	return w
}

// Backlog returns the spooled bytes not yet confirmed written.
func (w *Writer) Backlog() int64 {
	_, head, _ := w.spool.Bounds()
	return w.track.unconfirmed(head)
}

type span struct{ from, to int64 }

// Run ships until ctx is done and returns nil then. What it had not
// confirmed stays in the spool: Close ships it, or the next start does.
func (w *Writer) Run(ctx context.Context) error {
	start, head, _ := w.spool.Bounds()
	spans := make(chan span, 1)
	if head > start {
		w.log.Info("replaying spool", "bytes", head-start)
		w.backlogBusy.Store(true)
		spans <- span{start, head}
	}
	var wg sync.WaitGroup
	wg.Go(func() { w.backlogLane(ctx, spans) })
	w.liveLane(ctx, head, spans)
	wg.Wait()
	return nil
}

func (w *Writer) liveLane(ctx context.Context, from int64, spans chan<- span) {
	var (
		recs    []SpoolRecord
		lines   int
		readTo  = from // records in recs cover [from, readTo)
		waiting time.Time
		timer   = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for {
		_, head, changed := w.spool.Bounds()
		if len(recs) == 0 && head-from > lagBytes && !w.backlogBusy.Load() {
			w.backlogBusy.Store(true)
			spans <- span{from, head}
			w.log.Info("live lane behind, handing the stretch to the backlog lane", "bytes", head-from)
			from, readTo = head, head
			continue
		}
		if head > readTo && lines < w.cfg.BatchSize {
			var err error
			recs, readTo, err = w.spool.Read(recs, readTo, 0, w.cfg.BatchSize-lines)
			if err != nil {
				if errors.Is(err, ErrSpoolClosed) {
					return
				}
				w.corrupt(err)
			}
			lines = 0
			for _, r := range recs {
				lines += r.Lines
			}
			if waiting.IsZero() && len(recs) > 0 {
				waiting = time.Now()
			}
		}
		due := !waiting.IsZero() && time.Since(waiting) >= w.cfg.FlushInterval
		if len(recs) > 0 && (lines >= w.cfg.BatchSize || due) {
			if !w.ship(ctx, recs) {
				return
			}
			w.confirm(from, readTo)
			from, recs, lines, waiting = readTo, recs[:0], 0, time.Time{}
			continue
		}
		wait := time.Hour
		if !waiting.IsZero() {
			wait = w.cfg.FlushInterval - time.Since(waiting)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
	}
}

func (w *Writer) backlogLane(ctx context.Context, spans <-chan span) {
	var recs []SpoolRecord
	for {
		var sp span
		select {
		case <-ctx.Done():
			return
		case sp = <-spans:
		}
		if !w.shipSpan(ctx, sp, &recs) {
			return
		}
		w.backlogBusy.Store(false)
	}
}

// shipSpan ships the records of sp in batches; false when ctx ended first.
func (w *Writer) shipSpan(ctx context.Context, sp span, recs *[]SpoolRecord) bool {
	for off := sp.from; off < sp.to; {
		var next int64
		var err error
		*recs, next, err = w.spool.Read((*recs)[:0], off, sp.to, w.cfg.BatchSize)
		if err != nil {
			if errors.Is(err, ErrSpoolClosed) {
				return false
			}
			w.corrupt(err)
		}
		if next <= off { // released meanwhile, or nothing there
			break
		}
		if len(*recs) > 0 && !w.ship(ctx, *recs) {
			return false
		}
		w.confirm(off, next)
		off = next
	}
	return true
}

func (w *Writer) corrupt(err error) {
	w.metrics.dropped.WithLabelValues("corrupt").Inc()
	w.log.Error("spool record lost to disk corruption; skipping to the next segment", "err", err)
}

// confirm records [from, to) as written and releases the spool up to the
// contiguous confirmed prefix.
func (w *Writer) confirm(from, to int64) {
	if base, moved := w.track.confirm(from, to); moved {
		if err := w.spool.Release(base); err != nil {
			w.log.Warn("spool release failed, will retry at the next release", "err", err)
		}
	}
}

// ship writes the records' lines; false when ctx ended before they were.
func (w *Writer) ship(ctx context.Context, recs []SpoolRecord) bool {
	n := 0
	size := 0
	for _, r := range recs {
		n += r.Lines
		size += len(r.Body)
	}
	body := recs[0].Body
	if len(recs) > 1 {
		body = make([]byte, 0, size)
		for _, r := range recs {
			body = append(body, r.Body...)
		}
	}
	return w.shipLines(ctx, body, n)
}

// shipLines writes body (n lines), retrying retryable failures and
// splitting on permanent ones; false when ctx ended before it was done.
func (w *Writer) shipLines(ctx context.Context, body []byte, n int) bool {
	backoff := time.Duration(0)
	for attempt := 1; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			w.metrics.written.Add(float64(n))
			if attempt > 1 {
				w.log.Info("influx write succeeded after retries", "attempt", attempt, "points", n)
			}
			return true
		}
		var we *WriteError
		if errors.As(err, &we) && !we.Retryable {
			w.metrics.failures.WithLabelValues("permanent").Inc()
			if n <= 1 {
				w.metrics.dropped.WithLabelValues("rejected").Add(float64(max(n, 1)))
				if k, ok := w.sampler.allow("rejected"); ok {
					w.log.Error("influx rejected a point as bad data, dropping it", "line", truncate(body, 200), "suppressed", k, "err", err)
				}
				return true
			}
			// Split at a line boundary near the middle and ship each half.
			mid := splitLines(body, n/2)
			return w.shipLines(ctx, body[:mid], n/2) && w.shipLines(ctx, body[mid:], n-n/2)
		}
		w.metrics.failures.WithLabelValues("retryable").Inc()
		backoff = nextBackoff(backoff, we)
		if k, ok := w.sampler.allow("retry"); ok {
			w.log.Warn("influx write failed, will retry", "attempt", attempt, "points", n, "retry_in", backoff, "suppressed", k, "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// splitLines returns the offset just after the k-th '\n' of body.
func splitLines(body []byte, k int) int {
	off := 0
	for range k {
		i := bytes.IndexByte(body[off:], '\n')
		if i < 0 {
			return len(body)
		}
		off += i + 1
	}
	return off
}

func truncate(b []byte, n int) string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// post sends one write request.
func (w *Writer) post(ctx context.Context, body []byte) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return &WriteError{Err: err}
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if w.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+w.cfg.Token)
	}
	start := time.Now()
	resp, err := w.client.Do(req)
	w.metrics.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		return &WriteError{Retryable: true, Err: fmt.Errorf("write to %s: %w", w.cfg.Bucket, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	we := &WriteError{StatusCode: resp.StatusCode, Err: errors.New(strings.TrimSpace(string(msg)))}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		// Bad line protocol, a field type conflict, outside retention (InfluxDB
		// 1.8 answers a partial write with 400 too), or too large: splitting
		// isolates what InfluxDB will not take.
	default:
		we.Retryable = true
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			we.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return we
}

// maxBackoff bounds the wait between retries of a failing write. A retry
// of an InfluxDB that is down costs it nothing (the connection is refused),
// and the wait is how long the backlog may sit after InfluxDB is back: it
// was 30 s, now at most 5 s pass before the drain starts.
const maxBackoff = 5 * time.Second

// nextBackoff doubles from 100 ms up to maxBackoff, or follows the
// server's Retry-After (at most 5 minutes).
func nextBackoff(prev time.Duration, we *WriteError) time.Duration {
	if we != nil && we.RetryAfter > 0 {
		return min(we.RetryAfter, 5*time.Minute)
	}
	if prev <= 0 {
		return 100 * time.Millisecond
	}
	return min(2*prev, maxBackoff)
}

// Close ships what Run left unconfirmed up to the spool's head, until done
// or ctx is done. Whatever is left stays in the spool for the next start;
// Close returns the number of bytes left.
func (w *Writer) Close(ctx context.Context) (left int64) {
	_, head, _ := w.spool.Bounds()
	var recs []SpoolRecord
	for _, g := range w.track.gaps(head) {
		if !w.shipSpan(ctx, g, &recs) {
			break
		}
	}
	return w.track.unconfirmed(head)
}

// tracker keeps which spool offsets are confirmed written: everything below
// base, and the spans in done (sorted, disjoint, all above base).
type tracker struct {
	mu   sync.Mutex
	base int64
	done []span
}

func (t *tracker) confirm(from, to int64) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if to <= t.base {
		return t.base, false
	}
	from = max(from, t.base)
	// Insert, then merge touching or overlapping spans.
	i := 0
	for i < len(t.done) && t.done[i].from < from {
		i++
	}
	t.done = append(t.done, span{})
	copy(t.done[i+1:], t.done[i:])
	t.done[i] = span{from, to}
	merged := t.done[:0]
	for _, s := range t.done {
		if n := len(merged); n > 0 && s.from <= merged[n-1].to {
			merged[n-1].to = max(merged[n-1].to, s.to)
			continue
		}
		merged = append(merged, s)
	}
	t.done = merged
	moved := false
	if len(t.done) > 0 && t.done[0].from <= t.base {
		t.base = t.done[0].to
		t.done = t.done[1:]
		moved = true
	}
	return t.base, moved
}

// gaps returns the unconfirmed spans below head.
func (t *tracker) gaps(head int64) []span {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []span
	at := t.base
	for _, s := range t.done {
		if s.from > at {
			out = append(out, span{at, min(s.from, head)})
		}
		at = max(at, s.to)
	}
	if at < head {
		out = append(out, span{at, head})
	}
	return out
}

func (t *tracker) unconfirmed(head int64) int64 {
	var n int64
	for _, g := range t.gaps(head) {
		n += g.to - g.from
	}
	return n
}
