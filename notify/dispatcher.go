package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// Outbox is the store the Dispatcher works on. *ticketing.SQLStore
// satisfies it; its methods are safe for concurrent use, and several
// Dispatchers (in one process or several, on one PostgreSQL) may share one
// outbox: a claimed row is leased to one of them.
type Outbox interface {
	ClaimNotifications(ctx context.Context, now, createdBefore time.Time, lease time.Duration, limit int) ([]ticketing.Notification, error)
	CompleteNotification(ctx context.Context, c ticketing.Completion) error
	MergeNotification(ctx context.Context, id int64, claim, group string, now time.Time) (int64, error)
	DigestNotification(ctx context.Context, id int64, claim, day string, at, now time.Time) (int64, error)
	DigestMembers(ctx context.Context, id int64) ([]ticketing.Notification, error)
	DailySent(ctx context.Context, customer, day string) (int, error)
	CreateCallbackTask(ctx context.Context, ticketID int64, customer string, now time.Time) (bool, error)
	OutboxDepth(ctx context.Context) (int, time.Time, error)
	GetTicket(ctx context.Context, id int64) (ticketing.Ticket, error)
	GetCustomer(ctx context.Context, id string) (ticketing.Customer, error)
}

// A Message is one rendered notification, ready for a channel.
type Message struct {
	Key        string // idempotency key: X-Forewarn-Delivery, Message-ID
	Event      string
	CustomerID string
	DeviceID   string
	Severity   telemetry.Severity
	Subject    string
	Text       string // plain text
	HTML       string // "" when the template has no HTML part
	// Body is the JSON document of webhooks and MQTT push: event, ticket
	// (as in the REST API), device_id, customer_id, subject, message,
	// severity, idempotency_key, sent_at.
	Body []byte
}

// A Sender delivers messages on one kind of channel ("webhook", "email",
// "mqtt", and "staff" for the staff chat). Send must honour ctx, be safe
// for concurrent use, and mark its errors with Retryable or Permanent (an
// unmarked error is retried).
type Sender interface {
	Send(ctx context.Context, to ticketing.Channel, m Message) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, to ticketing.Channel, m Message) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, to ticketing.Channel, m Message) error {
	return f(ctx, to, m)
}

// ChannelStaff is the Sender key of the staff chat.
const ChannelStaff = "staff"

// Options configure a Dispatcher.
type Options struct {
	Config    Config
	Outbox    Outbox
	Senders   map[string]Sender // by channel type; a customer channel with no Sender is skipped
	Templates *Templates        // nil: LoadTemplates(Config.TemplatesDir)
	Logger    *slog.Logger
	// Registerer gets the metrics; nil: not registered.
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now
	Rand       func() float64   // backoff jitter; nil: math/rand/v2
}

// Dispatcher delivers the outbox.
type Dispatcher struct {
	cfg     Config
	out     Outbox
	senders map[string]Sender
	tpl     *Templates
	log     *slog.Logger
	now     func() time.Time
	rnd     func() float64
	m       *metrics
}

// New returns a Dispatcher; it fails when the templates do not check.
func New(opts Options) (*Dispatcher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Templates == nil {
		t, err := LoadTemplates(opts.Config.TemplatesDir)
		if err != nil {
			return nil, err
		}
		opts.Templates = t
	}
	if opts.Senders == nil {
		opts.Senders = map[string]Sender{}
	}
	return &Dispatcher{cfg: opts.Config, out: opts.Outbox, senders: opts.Senders, tpl: opts.Templates,
		log: opts.Logger.With("component", "notify"), now: opts.Now, rnd: opts.Rand, m: newMetrics(opts.Registerer)}, nil
}

// Run delivers due outbox rows until ctx is done: it claims a batch,
// delivers it with Workers in parallel, and when nothing is due waits
// PollInterval. Deliveries under way when ctx ends finish (each bounded by
// Timeout) and are recorded; Run then returns nil, and starts nothing
// after it returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("notification dispatcher started", "workers", d.cfg.Workers, "channels", len(d.senders))
	defer d.log.Info("notification dispatcher stopped")
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		n, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("notification dispatch failed, will retry", "err", err)
		}
		d.gauges(ctx)
		if n > 0 && err == nil {
			timer.Reset(0) // more may be due
		} else {
			timer.Reset(d.cfg.PollInterval)
		}
	}
}

// RunOnce claims one batch of due rows and handles each, Workers at a
// time; it returns how many it claimed.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	now := d.now()
	rows, err := d.out.ClaimNotifications(ctx, now, now.Add(-d.cfg.GroupWait), d.cfg.Lease, d.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	work := make(chan ticketing.Notification)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(d.cfg.Workers, len(rows)) {
		wg.Go(func() {
			for n := range work {
				if err := d.handle(context.WithoutCancel(ctx), n); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("notification %d: %w", n.ID, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, n := range rows {
		work <- n
	}
	close(work)
	wg.Wait()
	return len(rows), errors.Join(errs...)
}

func (d *Dispatcher) gauges(ctx context.Context) {
	n, oldest, err := d.out.OutboxDepth(ctx)
	if err != nil {
		return
	}
	d.m.depth.Set(float64(n))
	if oldest.IsZero() {
		d.m.age.Set(0)
	} else {
		d.m.age.Set(d.now().Sub(oldest).Seconds())
	}
}

// handle decides what to do with one claimed row and does it.
func (d *Dispatcher) handle(ctx context.Context, n ticketing.Notification) error {
	now := d.now()
	if n.Audience == ticketing.AudienceStaff {
		return d.handleStaff(ctx, n, now)
	}
	c, err := d.out.GetCustomer(ctx, n.CustomerID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifySuppressed, Note: "the customer no longer exists"}, "no_customer")
	}
	if err != nil {
		return err
	}
	critical := n.Severity == telemetry.SeverityCritical
	if until, quiet := QuietUntil(now, c.Timezone, c.QuietHours); quiet && !critical {
		d.m.deferred.Inc()
		d.log.Debug("notification waits for the end of quiet hours", "notification_id", n.ID, "until", until)
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifyPending, NotBefore: until,
			Note: "quiet hours until " + until.In(location(c.Timezone)).Format("2006-01-02 15:04 MST")}, "")
	}
	data := Data{Event: n.Event, Customer: c}
	var tk ticketing.Ticket
	if n.Event == ticketing.EventDigest {
		if data.Items, err = d.digestItems(ctx, c, n); err != nil {
			return err
		}
		data.Day = n.DigestDay
	} else {
		if tk, err = d.out.GetTicket(ctx, n.TicketID); err != nil {
			return err
		}
		if tk.IncidentID != 0 {
			into, err := d.out.MergeNotification(ctx, n.ID, n.Claim, fmt.Sprintf("incident:%d:%s", tk.IncidentID, n.Event), now)
			if err != nil {
				return d.lost(err)
			}
			if into != 0 {
				d.m.suppressed.WithLabelValues("merged").Inc()
				d.log.Debug("notification merged into its incident's", "notification_id", n.ID, "into", into)
				return nil
			}
		}
		rule := d.cfg.TierRules.Rule(string(c.Tier))
		if rule.DailyCap > 0 && !critical {
			day := LocalDay(now, c.Timezone)
			sent, err := d.out.DailySent(ctx, c.ID, day)
			if err != nil {
				return err
			}
			if sent >= rule.DailyCap {
				digest, err := d.out.DigestNotification(ctx, n.ID, n.Claim, day, NextLocalDay(now, c.Timezone), now)
				if err != nil {
					return d.lost(err)
				}
				d.m.digested.Inc()
				d.log.Debug("daily cap reached, notification goes to the digest", "notification_id", n.ID, "digest_id", digest)
				return nil
			}
		}
		if rule.Callback && n.Event == ticketing.EventTicketOpened {
			if _, err := d.out.CreateCallbackTask(ctx, tk.ID, c.ID, now); err != nil {
				return err
			}
			data.Callback = true
		}
		data = ticketData(data, tk, now)
	}
	lang := c.Language
	name := tk.Fault
	if n.Event == ticketing.EventDigest {
		name = "digest"
	}
	msg, err := d.message(n, lang, name, data, tk)
	if err != nil {
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifyDead, Note: "render: " + err.Error()}, "")
	}
	var targets []ticketing.Channel
	for _, ch := range c.Channels {
		if !ch.OptOut && d.senders[ch.Type] != nil {
			targets = append(targets, ch)
		}
	}
	if len(targets) == 0 {
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifySuppressed,
			Note: "no channel to send on (none configured, opted out, or not enabled here)"}, "no_channel")
	}
	day := ""
	if n.Event != ticketing.EventDigest {
		day = LocalDay(now, c.Timezone)
	}
	return d.deliver(ctx, n, targets, msg, day)
}

func (d *Dispatcher) handleStaff(ctx context.Context, n ticketing.Notification, now time.Time) error {
	s := d.senders[ChannelStaff]
	if s == nil {
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifySuppressed, Note: "no staff channel configured (notify.staff_webhook_url)"}, "no_channel")
	}
	data := Data{Event: n.Event, Incident: IncidentInfo{ID: n.IncidentID}}
	var tk ticketing.Ticket
	if n.TicketID != 0 {
		var err error
		if tk, err = d.out.GetTicket(ctx, n.TicketID); err != nil {
			return err
		}
		data = ticketData(data, tk, now)
	}
	data.Incident.ID = n.IncidentID
	if data.Incident.Fault == "" {
		data.Incident.Fault = tk.Fault
	}
	msg, err := d.message(n, "en", "staff", data, tk)
	if err != nil {
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifyDead, Note: "render: " + err.Error()}, "")
	}
	return d.deliver(ctx, n, []ticketing.Channel{{Type: ChannelStaff}}, msg, "")
}

// ticketData fills the ticket's part of a template's data.
func ticketData(d Data, tk ticketing.Ticket, now time.Time) Data {
	d.Ticket = tk
	d.Ref = fmt.Sprintf("#%d", tk.ID)
	d.Reopened = tk.ReopenCount > 0 && d.Event == ticketing.EventTicketOpened
	d.Acknowledged = tk.AcknowledgedAt != nil
	d.Assigned = tk.Assignee
	d.Forecast = newForecast(tk.Evidence, now)
	if tk.IncidentID != 0 {
		d.Incident = IncidentInfo{ID: tk.IncidentID, Fault: tk.Fault}
	}
	return d
}

func (d *Dispatcher) digestItems(ctx context.Context, c ticketing.Customer, n ticketing.Notification) ([]DigestItem, error) {
	members, err := d.out.DigestMembers(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	items := make([]DigestItem, 0, len(members))
	for _, m := range members {
		tk, err := d.out.GetTicket(ctx, m.TicketID)
		if err != nil {
			return nil, err
		}
		sub, _, _, err := d.tpl.Render(c.Language, tk.Fault, ticketData(Data{Event: m.Event, Customer: c}, tk, d.now()))
		if err != nil {
			return nil, err
		}
		items = append(items, DigestItem{Ref: fmt.Sprintf("#%d", tk.ID), Event: m.Event, Fault: tk.Fault, DeviceID: tk.DeviceID, Subject: sub})
	}
	return items, nil
}

// body is the JSON of webhooks and MQTT push (DESIGN "Webhook signature").
type body struct {
	Event          string            `json:"event"`
	IdempotencyKey string            `json:"idempotency_key"`
	Ticket         *ticketing.Ticket `json:"ticket,omitempty"`
	DeviceID       string            `json:"device_id,omitempty"`
	CustomerID     string            `json:"customer_id,omitempty"`
	Severity       string            `json:"severity"`
	Subject        string            `json:"subject"`
	Message        string            `json:"message"`
	SentAt         time.Time         `json:"sent_at"`
}

func (d *Dispatcher) message(n ticketing.Notification, lang, name string, data Data, tk ticketing.Ticket) (Message, error) {
	subject, text, html, err := d.tpl.Render(lang, name, data)
	if err != nil {
		return Message{}, err
	}
	b := body{Event: n.Event, IdempotencyKey: n.IdempotencyKey, DeviceID: tk.DeviceID, CustomerID: n.CustomerID,
		Severity: n.Severity.String(), Subject: subject, Message: text, SentAt: n.CreatedAt.UTC()}
	if tk.ID != 0 {
		tk.Timeline = nil
		b.Ticket = &tk
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return Message{}, err
	}
	return Message{Key: n.IdempotencyKey, Event: n.Event, CustomerID: n.CustomerID, DeviceID: tk.DeviceID, Severity: n.Severity,
		Subject: subject, Text: text, HTML: html, Body: raw}, nil
}

// deliver tries the targets in order: the first success delivers the row;
// a permanent failure moves on to the next channel; a retryable one stops
// and schedules the row again after the backoff (or the receiver's
// Retry-After). Every try is recorded. Past MaxAttempts, or when every
// channel failed permanently, the row is dead.
func (d *Dispatcher) deliver(ctx context.Context, n ticketing.Notification, targets []ticketing.Channel, msg Message, day string) error {
	var (
		tries      []ticketing.Attempt
		retryAfter time.Duration
		retry      bool
		lastErr    string
		lastCh     string
	)
	for _, ch := range targets {
		start := d.now()
		sctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		err := d.senders[ch.Type].Send(sctx, ch, msg)
		cancel()
		a := ticketing.Attempt{At: start, Channel: ch.Type, DurationMS: d.now().Sub(start).Milliseconds()}
		if err == nil {
			a.Outcome = ticketing.AttemptDelivered
			tries = append(tries, a)
			d.m.delivered.WithLabelValues(ch.Type).Inc()
			d.log.Info("notification delivered", "notification_id", n.ID, "ticket_id", n.TicketID, "channel", ch.Type, "event", n.Event)
			return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifyDelivered, Channel: ch.Type, Attempts: tries, CountDay: day}, "")
		}
		retryable, after, status := classify(err)
		a.Error, a.StatusCode = truncate(err.Error(), 500), status
		lastErr, lastCh = a.Error, ch.Type
		if retryable {
			a.Outcome = ticketing.AttemptRetry
			tries = append(tries, a)
			d.m.failed.WithLabelValues(ch.Type, "retry").Inc()
			retry, retryAfter = true, after
			break
		}
		a.Outcome = ticketing.AttemptFailed
		tries = append(tries, a)
		d.m.failed.WithLabelValues(ch.Type, "permanent").Inc()
	}
	total := n.AttemptCount + len(tries)
	if !retry || total >= d.cfg.MaxAttempts {
		why := "every channel failed permanently"
		if retry {
			why = fmt.Sprintf("%d attempts", total)
		}
		d.m.dead.WithLabelValues(lastCh).Inc()
		d.log.Error("notification dead-lettered", "notification_id", n.ID, "ticket_id", n.TicketID, "attempt", total, "err", lastErr)
		return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifyDead, Attempts: tries, Note: why + ": " + lastErr}, "")
	}
	wait := max(Backoff(total, d.cfg.BackoffInitial, d.cfg.BackoffMax, d.rnd), retryAfter)
	d.log.Warn("notification delivery failed, will retry", "notification_id", n.ID, "channel", lastCh, "attempt", total, "in", wait, "err", lastErr)
	return d.finish(ctx, n, ticketing.Completion{Status: ticketing.NotifyPending, Attempts: tries, NotBefore: d.now().Add(wait),
		Note: "retrying: " + lastErr}, "")
}

// finish records c for claimed row n; suppressed names the metric reason
// of a suppression.
func (d *Dispatcher) finish(ctx context.Context, n ticketing.Notification, c ticketing.Completion, suppressed string) error {
	c.ID, c.Claim, c.Now = n.ID, n.Claim, d.now()
	if err := d.out.CompleteNotification(ctx, c); err != nil {
		return d.lost(err)
	}
	if c.Status == ticketing.NotifySuppressed {
		d.m.suppressed.WithLabelValues(suppressed).Inc()
	}
	return nil
}

// lost turns a lost lease into a logged warning: the row went to another
// dispatcher after this one held it past the lease, and that one records
// it (the receiver may see the delivery twice, with one idempotency key).
func (d *Dispatcher) lost(err error) error {
	if errors.Is(err, ticketing.ErrLeaseLost) {
		d.m.leaseLost.Inc()
		d.log.Warn("notification lease lost to another dispatcher", "err", err)
		return nil
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

type metrics struct {
	delivered  *prometheus.CounterVec
	failed     *prometheus.CounterVec
	dead       *prometheus.CounterVec
	suppressed *prometheus.CounterVec
	deferred   prometheus.Counter
	digested   prometheus.Counter
	leaseLost  prometheus.Counter
	depth      prometheus.Gauge
	age        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forewarn_notify_delivered_total",
			Help: "Notifications delivered, by channel."}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forewarn_notify_failed_total",
			Help: "Failed delivery attempts, by channel and kind (retry, permanent)."}, []string{"channel", "kind"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forewarn_notify_dead_total",
			Help: "Notifications moved to dead-letter, by the channel of their last attempt."}, []string{"channel"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forewarn_notify_suppressed_total",
			Help: "Notifications not sent, by reason (merged into their incident's, no_channel, no_customer)."}, []string{"reason"}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "forewarn_notify_deferred_total",
			Help: "Times a non-critical notification was held for the end of quiet hours."}),
		digested: prometheus.NewCounter(prometheus.CounterOpts{Name: "forewarn_notify_digested_total",
			Help: "Notifications beyond the daily cap, folded into the next digest."}),
		leaseLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "forewarn_notify_lease_lost_total",
			Help: "Rows whose lease ran out before their delivery was recorded."}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "forewarn_notify_outbox_depth",
			Help: "Pending outbox rows (due or waiting)."}),
		age: prometheus.NewGauge(prometheus.GaugeOpts{Name: "forewarn_notify_outbox_oldest_age_seconds",
			Help: "Age of the oldest pending outbox row."}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.failed, m.dead, m.suppressed, m.deferred, m.digested, m.leaseLost, m.depth, m.age)
	}
	return m
}
