package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forewarn/forewarn/telemetry"
)

// QoS is the MQTT quality of service Forewarn subscribes with: at least once.
const QoS = 1

const (
	// queueLen is the hand-off queue between the MQTT handler and the
	// committer. It must exceed the broker's in-flight window for us
	// (Mosquitto max_inflight_messages) so QoS 1 deliveries never block the
	// handler; QoS 0 messages that find it full are dropped and counted.
	queueLen = 1 << 15
	// maxCommitItems and maxCommitBytes bound one group commit (and a
	// quarter of spool.max_bytes, so a group always fits an empty spool).
	maxCommitItems = 8192
	maxCommitBytes = 4 << 20
	// A group of fewer than minCommitItems waits up to commitLinger for
	// more when the previous commit was less than 4 lingers ago.
	minCommitItems = 256
	commitLinger   = time.Millisecond
)

type subscriberMetrics struct {
	messages  *prometheus.CounterVec
	accepted  prometheus.Counter
	rejected  *prometheus.CounterVec
	dropped   prometheus.Counter
	spooled   prometheus.Counter
	commits   prometheus.Counter
	sinkErrs  prometheus.Counter
	deadLtr   prometheus.Counter
	connected prometheus.Gauge
	reconnect prometheus.Counter
	queued    prometheus.GaugeFunc
	ackLag    prometheus.Histogram
	lag       prometheus.Histogram
	stalled   prometheus.Gauge
	byKind    [TopicStatus + 1]prometheus.Counter // messages, by kind, resolved once
	seqGaps   prometheus.Counter
	seqDups   prometheus.Counter
	seqResets prometheus.Counter
}

func newSubscriberMetrics(reg prometheus.Registerer, s *Subscriber) *subscriberMetrics {
	m := &subscriberMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_ingest_messages_total", Help: "Messages received from the broker, by topic kind (telemetry, events, status).",
		}, []string{"kind"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_ingest_readings_total", Help: "Readings decoded, validated, spooled and handed to the sinks.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_ingest_rejected_total", Help: "Messages rejected, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_ingest_qos0_dropped_total", Help: "QoS 0 messages dropped because the hand-off queue was full (QoS 1 messages wait instead).",
		}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_ingest_spooled_total", Help: "Points (readings and events) appended to the spool and synced.",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_spool_commits_total", Help: "Group commits (one fsync each).",
		}),
		sinkErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_ingest_sink_errors_total", Help: "Sink writes (detectors, events, status) that failed.",
		}),
		deadLtr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_ingest_dead_letters_total", Help: "Rejected messages republished to the dead-letter topic.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "forewarn_mqtt_connected", Help: "1 while the MQTT connection is up.",
		}),
		reconnect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forewarn_mqtt_connects_total", Help: "Successful MQTT connections (the first one and every reconnect).",
		}),
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "forewarn_ingest_queued_messages", Help: "Messages received and not yet committed and acknowledged.",
		}, func() float64 { return float64(len(s.queue)) }),
		ackLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "forewarn_ingest_ack_lag_seconds", Help: "Time from receiving a message to acknowledging it (the oldest message of each group commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "forewarn_ingest_lag_seconds", Help: "Receive time minus the reading's timestamp, for readings that carry one.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "forewarn_spool_full", Help: "1 while the spool is at spool.max_bytes and acknowledgements wait.",
		}),
	}
	m.seqGaps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "forewarn_ingest_sequence_gaps_total", Help: "Readings missing by their devices' seq numbers (seq jumped ahead): lost before or in the broker, not a quiet device.",
	})
	m.seqDups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "forewarn_ingest_sequence_duplicates_total", Help: "Readings whose seq was not above the device's last one (redeliveries, late arrivals).",
	})
	m.seqResets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "forewarn_ingest_sequence_resets_total", Help: "Devices that started their seq again at 1 (restarts).",
	})
	reg.MustRegister(m.seqGaps, m.seqDups, m.seqResets)
	// Pre-create every label so dashboards see zeros, not gaps.
	for _, r := range allReasons {
		m.rejected.WithLabelValues(string(r))
	}
	for _, k := range []TopicKind{TopicTelemetry, TopicEvents, TopicStatus} {
		m.byKind[k] = m.messages.WithLabelValues(k.String())
	}
	reg.MustRegister(m.messages, m.accepted, m.rejected, m.dropped, m.spooled, m.commits, m.sinkErrs, m.deadLtr,
		m.connected, m.reconnect, m.queued, m.ackLag, m.lag, m.stalled)
	return m
}

// SubscriberOptions are what a Subscriber needs. Spool is required; the
// sinks are optional.
type SubscriberOptions struct {
	MQTT     MQTTConfig
	Limits   Limits
	Spool    *Spool
	MaxBytes int64      // spool.max_bytes
	Readings Sink       // detectors; nil = none
	Events   EventSink  // nil = none
	Status   StatusSink // nil = none
	// Admit, when set, is asked about the devices of the telemetry and
	// events messages of each group commit before it is spooled, once per
	// group (on the committer goroutine, never the MQTT handler), so a
	// registry can answer a whole group in one transaction. It returns one
	// error per sighting (nil: admitted); a shorter slice admits the rest.
	// nil admits everything. An error wrapping ErrNotAdmitted rejects the
	// message with reason unknown_device; any other error is logged and the
	// message admitted: data is not lost because the registry cannot be
	// reached.
	Admit      func(ctx context.Context, ss []telemetry.Sighting) []error
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// ErrNotAdmitted is what SubscriberOptions.Admit wraps to reject a device.
var ErrNotAdmitted = errors.New("device not admitted")

// admit applies SubscriberOptions.Admit to the accepted telemetry and
// events messages of batch, in one call.
func (s *Subscriber) admit(ctx context.Context, batch []item) {
	if s.opt.Admit == nil {
		return
	}
	s.sightings, s.sighted = s.sightings[:0], s.sighted[:0]
	for i := range batch {
		it := &batch[i]
		if it.err != nil {
			continue
		}
		switch it.kind {
		case TopicTelemetry:
			s.sightings = append(s.sightings, telemetry.Sighting{Device: it.reading.Device, Model: it.reading.Model, Firmware: it.reading.Firmware})
		case TopicEvents:
			s.sightings = append(s.sightings, telemetry.Sighting{Device: it.event.Device})
		default:
			continue
		}
		s.sighted = append(s.sighted, i)
	}
	if len(s.sightings) == 0 {
		return
	}
	for k, err := range s.opt.Admit(ctx, s.sightings) {
		if k >= len(s.sighted) {
			break
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrNotAdmitted):
			batch[s.sighted[k]].err = &DecodeError{Reason: ReasonUnknownDevice, Err: err}
		default:
			if n, ok := s.sampler.allow("admit"); ok {
				s.log.Warn("device admission check failed; admitting the message", "device_id", s.sightings[k].Device, "suppressed", n, "err", err)
			}
		}
	}
}

// item is one received message on its way from the handler to the committer.
type item struct {
	msg      mqtt.Message
	conn     *bufConn // the connection msg arrived on: its PUBACK goes there
	kind     TopicKind
	received time.Time
	reading  telemetry.Reading
	more     []telemetry.Reading // the readings after reading, for formats that carry several
	event    telemetry.DeviceEvent
	status   telemetry.StatusChange
	err      error // rejected when set
}

// Subscriber consumes the device topics (Filters) with QoS 1 on a
// persistent session. Its MQTT handler only decodes and queues; a single
// committer goroutine takes what is queued, appends the accepted readings
// and events to the spool as one record, fsyncs it (group commit), and only
// then acknowledges the messages, in the order they arrived; then it hands
// readings, events and status changes to the sinks. Rejected messages are
// counted per reason, logged (sampled), optionally republished to the
// dead-letter topic, and acknowledged in their turn. When the spool is at
// max_bytes the committer waits, acknowledgements stop, and the broker
// holds the rest.
type Subscriber struct {
	opt     SubscriberOptions
	log     *slog.Logger
	metrics *subscriberMetrics
	sampler *logSampler
	now     func() time.Time

	dec        *Decoder             // used only by the MQTT handler goroutine
	seqs       seqTracker           // used only by the committer
	sightings  []telemetry.Sighting // admit's, used only by the committer
	sighted    []int                // batch index of each of sightings
	queue      chan item
	subscribed atomic.Bool // the filters are subscribed on the current connection
	stopping   atomic.Bool
	stopCh     chan struct{}
	fatal      chan struct{} // closed by the committer when the spool fails

	mu     sync.RWMutex // handlers hold it for reading while they queue
	client mqtt.Client
	conn   atomic.Pointer[bufConn] // the broker connection paho opened last
	acks   []byte                  // PUBACKs of a group, used only by the committer
}

// NewSubscriber returns a Subscriber; Run starts it.
func NewSubscriber(opt SubscriberOptions) *Subscriber {
	s := &Subscriber{
		opt:     opt,
		log:     opt.Logger.With("component", "ingest"),
		sampler: newLogSampler(time.Second),
		now:     time.Now,
		dec:     NewDecoder(opt.Limits),
		queue:   make(chan item, queueLen),
		stopCh:  make(chan struct{}),
		fatal:   make(chan struct{}),
	}
	s.metrics = newSubscriberMetrics(opt.Registerer, s)
	return s
}

// Run connects, subscribes, and consumes until ctx is done; the connection
// is retried with backoff until it succeeds and re-established whenever it
// drops (the broker keeps the session's subscriptions and queued messages).
// On ctx done it stops taking messages (those still arriving stay
// unacknowledged, so the broker redelivers them to the session), commits
// and acknowledges everything taken, disconnects and returns. Nothing
// reaches a sink after Run returns. A spool write or sync error stops Run
// with that error: what was not acknowledged is redelivered after a restart.
func (s *Subscriber) Run(ctx context.Context) error {
	cfg := s.opt.MQTT
	filters := map[string]byte{}
	for _, f := range Filters(cfg) {
		filters[f] = QoS
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false). // persistent session: the broker queues QoS 1 messages while we are away
		// One handler goroutine: arrival order is kept, the handler never
		// blocks on I/O, and paho finishes it before it opens the next
		// connection, so s.conn in the handler is the connection the
		// message arrived on (Subscriber.ack relies on that).
		SetOrderMatters(true).
		SetAutoAckDisabled(true). // ack only once the reading is durable [MQTT-4.3.2-4]
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetCustomOpenConnectionFn(func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
			c, err := openBuffered(uri, o)
			if err != nil {
				return nil, err
			}
			s.conn.Store(c)
			return c, nil
		}).
		SetStore(noStore{}).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetDefaultPublishHandler(s.handle). // messages of the resumed session arrive before re-subscribing
		SetOnConnectHandler(func(c mqtt.Client) {
			s.metrics.connected.Set(1)
			s.metrics.reconnect.Inc()
			// No per-filter callback: paho then matches no routes (splitting
			// topic strings for each one, per message) and hands every
			// message to the default publish handler.
			tok := c.SubscribeMultiple(filters, nil)
			if !tok.WaitTimeout(cfg.ConnectTimeout) {
				s.log.Error("subscribe timed out", "topic", Filters(cfg))
				return
			}
			if err := tok.Error(); err != nil {
				s.log.Error("subscribe failed", "topic", Filters(cfg), "err", err)
				return
			}
			s.subscribed.Store(true)
			s.log.Info("subscribed", "topic", Filters(cfg), "broker", cfg.URL)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.subscribed.Store(false)
			s.metrics.connected.Set(0)
			s.log.Warn("mqtt connection lost, reconnecting", "broker", cfg.URL, "err", err)
		})
	client := mqtt.NewClient(opts)
	s.mu.Lock()
	s.client = client
	s.mu.Unlock()

	commitErr := make(chan error, 1)
	go func() { commitErr <- s.commitLoop(ctx) }()

	var err error
	tok := client.Connect() // with ConnectRetry it completes once connected or abandoned
	select {
	case <-tok.Done():
		if e := tok.Error(); e != nil {
			err = fmt.Errorf("connect to broker %s: %w", cfg.URL, e)
		}
	case <-ctx.Done():
	case <-s.fatal:
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case <-s.fatal: // the committer's error is returned below
		}
	}

	// Stop taking messages, then let the committer finish what was taken.
	s.stopping.Store(true)
	close(s.stopCh)
	s.mu.Lock() // waits for handlers that are queueing
	close(s.queue)
	s.mu.Unlock()
	err = errors.Join(err, <-commitErr)
	client.Disconnect(500) // ms for the last acknowledgements to go out
	s.subscribed.Store(false)
	s.metrics.connected.Set(0)
	s.log.Info("mqtt disconnected", "broker", cfg.URL)
	return err
}

// Connected reports whether the broker connection is up and the device
// topics are subscribed on it (for /readyz).
func (s *Subscriber) Connected() bool {
	s.mu.RLock()
	c := s.client
	s.mu.RUnlock()
	return c != nil && c.IsConnectionOpen() && s.subscribed.Load()
}

// Ready returns nil when the broker connection is up and subscribed.
func (s *Subscriber) Ready(context.Context) error {
	if !s.Connected() {
		return errors.New("not connected to the MQTT broker, or not subscribed yet")
	}
	return nil
}

// handle runs on paho's single delivery goroutine: decode, queue, return.
func (s *Subscriber) handle(_ mqtt.Client, m mqtt.Message) {
	if s.stopping.Load() {
		return // unacknowledged: the broker redelivers it to the session
	}
	it := s.decode(m)
	s.metrics.byKind[it.kind].Inc()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopping.Load() {
		return
	}
	select {
	case s.queue <- it:
		return
	default:
	}
	if m.Qos() == 0 {
		s.metrics.dropped.Inc()
		return
	}
	select { // only when more than queueLen QoS 1 messages are in flight
	case s.queue <- it:
	case <-s.stopCh:
	}
}

func (s *Subscriber) decode(m mqtt.Message) item {
	it := item{msg: m, conn: s.conn.Load(), received: s.now(), kind: TopicTelemetry}
	dev, kind, format, err := ParseTopic(s.opt.MQTT.TopicPrefix, m.Topic(), s.opt.Limits.Format)
	if err != nil {
		it.err = err
		return it
	}
	it.kind = kind
	switch kind {
	case TopicTelemetry:
		if format == FormatJSON {
			it.reading, it.err = s.dec.DecodeJSON(dev, m.Payload(), it.received)
			break
		}
		var rs []telemetry.Reading
		if rs, it.err = s.dec.Decode(format, dev, m.Payload(), it.received); it.err == nil {
			it.reading, it.more = rs[0], rs[1:]
		}
	case TopicEvents:
		it.event, it.err = DecodeEvent(dev, m.Payload(), it.received, s.opt.Limits)
	case TopicStatus:
		it.status, it.err = DecodeStatus(dev, m.Payload(), it.received)
	}
	return it
}

// commitLoop takes queued items in groups until the queue is closed.
func (s *Subscriber) commitLoop(ctx context.Context) error {
	commitBytes := min(maxCommitBytes, s.opt.MaxBytes/4)
	var (
		linger     = time.NewTimer(time.Hour)
		lastCommit time.Time
		batch      []item
		body       []byte
		frame      []byte
		rs         []telemetry.Reading
		es         []telemetry.DeviceEvent
		ss         []telemetry.StatusChange
		failed     error
	)
	for first := range s.queue {
		if failed != nil {
			continue // drain without acknowledging; Run is returning failed
		}
		batch = append(batch[:0], first)
		size := 0 // payload bytes: about the size of the encoded group
		lingered := false
	fill:
		for {
			size += len(batch[len(batch)-1].msg.Payload())
			if len(batch) >= maxCommitItems || int64(size) >= commitBytes {
				break
			}
			select {
			case it, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, it)
				continue
			default:
			}
			// The queue is empty. A small group under load is worth
			// lingering for: an fsync costs the same for 10 messages as
			// for 1,000. Linger once, briefly, and only when the last
			// commit was recent (under load), so an idle device's message
			// is not held back.
			if lingered || len(batch) >= minCommitItems || time.Since(lastCommit) > commitLinger*4 {
				break
			}
			lingered = true
			linger.Reset(commitLinger)
			select {
			case it, ok := <-s.queue:
				linger.Stop()
				if !ok {
					break fill
				}
				batch = append(batch, it)
			case <-linger.C:
			}
		}
		s.admit(ctx, batch)
		body = body[:0]
		lines := 0
		for i := range batch {
			body = s.encode(body, batch[i])
			if batch[i].err == nil && batch[i].kind != TopicStatus {
				lines += 1 + len(batch[i].more)
			}
		}
		if lines > 0 {
			if !s.waitForSpace(int64(len(body) + recordHeader)) {
				continue // shutting down with a full spool: left unacknowledged
			}
			var err error
			if frame, err = s.opt.Spool.AppendRecord(frame, body, lines); err == nil {
				err = s.opt.Spool.Sync()
			}
			if err != nil {
				failed = fmt.Errorf("commit %d points to the spool: %w", lines, err)
				s.log.Error("spool commit failed; stopping ingest, unacknowledged messages will be redelivered", "err", err)
				close(s.fatal)
				continue
			}
			s.metrics.commits.Inc()
			s.metrics.spooled.Add(float64(lines))
			lastCommit = time.Now()
		}
		s.ack(batch)
		now := s.now()
		s.metrics.ackLag.Observe(now.Sub(batch[0].received).Seconds())

		rs, es, ss = rs[:0], es[:0], ss[:0]
		for i := range batch {
			it := &batch[i]
			if it.err != nil {
				s.rejected(it)
				continue
			}
			switch it.kind {
			case TopicTelemetry:
				rs = append(rs, it.reading)
				rs = append(rs, it.more...)
				if it.reading.Seq != 0 && s.opt.MQTT.SharedGroup == "" {
					g, d, r := s.seqs.observe(it.reading.Device, it.reading.Seq)
					s.metrics.seqGaps.Add(float64(g))
					s.metrics.seqDups.Add(float64(d))
					s.metrics.seqResets.Add(float64(r))
				}
				if lag := it.received.Sub(it.reading.At); lag >= 0 {
					s.metrics.lag.Observe(lag.Seconds())
				}
			case TopicEvents:
				es = append(es, it.event)
			case TopicStatus:
				ss = append(ss, it.status)
			}
			batch[i] = item{} // let go of the payload
		}
		s.metrics.accepted.Add(float64(len(rs)))
		s.deliver(ctx, rs, es, ss)
	}
	return failed
}

// ack acknowledges the QoS 1 messages of batch, in arrival order
// [MQTT-4.6.0-2], each on the connection it arrived on, with one write per
// connection rather than paho's Message.Ack (a goroutine hand-off and a
// write per PUBACK). A message whose connection has gone since is not
// acknowledged: the broker redelivers it on the session's new connection,
// and that copy is acknowledged there. Acknowledging it on the new
// connection instead could acknowledge a different message: once the
// redelivered copy is acknowledged, the broker may reuse its packet id.
func (s *Subscriber) ack(batch []item) {
	for i := 0; i < len(batch); {
		conn := batch[i].conn
		s.acks = s.acks[:0]
		for ; i < len(batch) && batch[i].conn == conn; i++ {
			if m := batch[i].msg; m.Qos() == 1 {
				id := m.MessageID()
				s.acks = append(s.acks, 0x40, 2, byte(id>>8), byte(id)) // PUBACK
			}
		}
		if len(s.acks) > 0 && conn != nil {
			_, _ = conn.Write(s.acks) // fails only on a connection that is gone: redelivered
		}
	}
}

// encode appends the line of it, if it has one, to body.
func (s *Subscriber) encode(body []byte, it item) []byte {
	if it.err != nil {
		return body
	}
	switch it.kind {
	case TopicTelemetry:
		body = AppendLine(body, it.reading)
		for _, r := range it.more {
			body = AppendLine(body, r)
		}
		return body
	case TopicEvents:
		return AppendEventLine(body, it.event)
	}
	return body
}

// waitForSpace waits until the spool has room for n more bytes; false when
// Run is stopping first.
func (s *Subscriber) waitForSpace(n int64) bool {
	fits := func() bool {
		size := s.opt.Spool.Size()
		return size+n <= s.opt.MaxBytes || size == 0 // an empty spool takes any group
	}
	for {
		if fits() {
			s.metrics.stalled.Set(0)
			return true
		}
		s.metrics.stalled.Set(1)
		_, _, changed := s.opt.Spool.Bounds()
		if fits() {
			continue
		}
		if k, ok := s.sampler.allow("spool-full"); ok {
			s.log.Warn("spool full; acknowledgements wait for InfluxDB to catch up", "max_bytes", s.opt.MaxBytes, "suppressed", k)
		}
		select {
		case <-changed:
		case <-s.stopCh:
			// Stopping: still take the room if it comes soon, else give up.
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
				return fits()
			}
		}
	}
}

func (s *Subscriber) rejected(it *item) {
	reason := ReasonOf(it.err)
	s.metrics.rejected.WithLabelValues(string(reason)).Inc()
	if n, ok := s.sampler.allow(string(reason)); ok {
		s.log.Warn("message rejected", "topic", it.msg.Topic(), "reason", reason, "suppressed", n, "err", it.err)
	}
	if t := s.opt.Limits.DeadLetterTopic; t != "" {
		s.deadLetter(t, it)
	}
}

func (s *Subscriber) deliver(ctx context.Context, rs []telemetry.Reading, es []telemetry.DeviceEvent, ss []telemetry.StatusChange) {
	var errs []error
	if len(rs) > 0 && s.opt.Readings != nil {
		errs = append(errs, s.opt.Readings.Write(ctx, rs))
	}
	if len(es) > 0 && s.opt.Events != nil {
		errs = append(errs, s.opt.Events.WriteEvents(ctx, es))
	}
	if len(ss) > 0 && s.opt.Status != nil {
		errs = append(errs, s.opt.Status.WriteStatus(ctx, ss))
	}
	if err := errors.Join(errs...); err != nil {
		s.metrics.sinkErrs.Inc()
		if n, ok := s.sampler.allow("sink"); ok {
			s.log.Warn("a sink failed to take what was committed", "suppressed", n, "err", err)
		}
	}
}

// logSampler lets one log line per key through per period and counts the
// ones it suppressed, so a flood of bad input cannot flood the log.
type logSampler struct {
	period time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
	held   map[string]int
}

func newLogSampler(period time.Duration) *logSampler {
	return &logSampler{period: period, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether to log for key now and how many were suppressed since the last one.
func (l *logSampler) allow(key string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last[key]) < l.period {
		l.held[key]++
		return 0, false
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return n, true
}

// SequenceGaps returns, per device, how many readings its seq numbers say
// are missing since start-up. With a shared group each instance sees only
// part of a device's messages, so gaps are not counted then.
func (s *Subscriber) SequenceGaps() map[telemetry.DeviceID]uint64 { return s.seqs.Gaps() }

// seqTracker follows each device's last seq. observe is called by one
// goroutine; Gaps may be called from any.
type seqTracker struct {
	mu   sync.Mutex
	last map[telemetry.DeviceID]uint64
	gaps map[telemetry.DeviceID]uint64
}

// observe records seq for dev and returns the readings it shows missing,
// whether it is a duplicate (or late), and whether the device restarted its
// numbering (seq 1 after a higher one).
func (t *seqTracker) observe(dev telemetry.DeviceID, seq uint64) (gaps, dups, resets uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last, t.gaps = map[telemetry.DeviceID]uint64{}, map[telemetry.DeviceID]uint64{}
	}
	last, seen := t.last[dev]
	switch {
	case !seen:
	case seq == 1 && last > 1:
		resets = 1
	case seq <= last:
		return 0, 1, 0
	case seq > last+1:
		gaps = seq - last - 1
		t.gaps[dev] += gaps
	}
	t.last[dev] = seq
	return gaps, 0, resets
}

// Gaps returns a copy of the per-device gap counts.
func (t *seqTracker) Gaps() map[telemetry.DeviceID]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[telemetry.DeviceID]uint64, len(t.gaps))
	for d, n := range t.gaps {
		if n > 0 {
			out[d] = n
		}
	}
	return out
}
