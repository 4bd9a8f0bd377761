package notify_test

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/email"
	"github.com/forewarn/forewarn/notify/notifytest"
	"github.com/forewarn/forewarn/notify/webhook"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

const secret = "hook-secret-0123456789"

// clock is a settable wall clock shared by ticketing and the dispatcher.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Sunday 22 Nov 2026, 15:00 in Paris.
var t0 = time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)

type harness struct {
	store *ticketing.SQLStore
	svc   *ticketing.Service
	clock *clock
	hook  *notifytest.Receiver
	staff *notifytest.Receiver
	d     *notify.Dispatcher
	reg   *prometheus.Registry
	cfg   notify.Config
}

func newHarness(t *testing.T, edit func(*notify.Config), senders ...map[string]notify.Sender) *harness {
	t.Helper()
	store, err := ticketing.Open(t.Context(), ticketing.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "t.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	h := &harness{store: store, clock: &clock{now: t0}, hook: notifytest.NewReceiver(t, secret), staff: notifytest.NewReceiver(t, ""), reg: prometheus.NewRegistry()}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	tc := ticketing.DefaultTicketsConfig()
	tc.Incidents.MinDevices = 3
	h.svc = ticketing.NewService(store, ticketing.Options{Tickets: tc, Logger: log, Now: h.clock.Now})
	h.cfg = notify.DefaultConfig()
	h.cfg.GroupWait = 0
	h.cfg.BackoffInitial, h.cfg.BackoffMax = 10*time.Second, time.Minute
	h.cfg.MaxAttempts = 4
	h.cfg.TierRules.Standard.DailyCap = 0
	h.cfg.TierRules.Premium.Callback = false
	if edit != nil {
		edit(&h.cfg)
	}
	s := map[string]notify.Sender{"webhook": webhook.New(nil, nil), notify.ChannelStaff: webhook.NewChat(h.staff.URL, nil, nil)}
	for _, m := range senders {
		for k, v := range m {
			s[k] = v
		}
	}
	h.d, err = notify.New(notify.Options{Config: h.cfg, Outbox: store, Senders: s, Logger: log, Registerer: h.reg, Now: h.clock.Now,
		Rand: func() float64 { return 0.999 }})
	require.NoError(t, err)
	return h
}

var _ notify.Outbox = (*ticketing.SQLStore)(nil)

func (h *harness) customer(t *testing.T, c ticketing.Customer, devices ...string) {
	t.Helper()
	if c.Channels == nil {
		c.Channels = []ticketing.Channel{{Type: "webhook", URL: h.hook.URL, Secret: secret}}
	}
	_, _, err := h.svc.PutCustomer(t.Context(), c, "admin")
	require.NoError(t, err)
	for _, d := range devices {
		_, _, err := h.svc.PutDevice(t.Context(), ticketing.Device{ID: d, Model: "heatpump-a2", CustomerID: c.ID, Site: "site-" + c.ID}, "admin")
		require.NoError(t, err)
	}
}

func (h *harness) raise(t *testing.T, dev, fault string, sev telemetry.Severity) {
	t.Helper()
	require.NoError(t, h.svc.Handle(t.Context(), telemetry.Finding{Device: telemetry.DeviceID(dev), Model: "heatpump-a2", Fault: fault,
		Rule: "r", State: telemetry.Raised, Severity: sev, CustomerVisible: true, At: h.clock.Now(),
		Evidence: telemetry.Evidence{Detector: "threshold", Metric: "m", Value: 1, Limit: 0}}))
}

// drain runs the dispatcher until nothing is due now.
func (h *harness) drain(t *testing.T) {
	t.Helper()
	for range 50 {
		n, err := h.d.RunOnce(t.Context())
		require.NoError(t, err)
		if n == 0 {
			return
		}
	}
	t.Fatal("the outbox never drained")
}

func (h *harness) list(t *testing.T, f ticketing.NotificationFilter) []ticketing.Notification {
	t.Helper()
	ns, _, err := h.store.ListNotifications(t.Context(), f)
	require.NoError(t, err)
	return ns
}

func outcomes(n ticketing.Notification) []string {
	var out []string
	for _, a := range n.Attempts {
		out = append(out, a.Channel+":"+a.Outcome)
	}
	return out
}

// TestRetryBackoffThenDeliver: 503, then 429 with Retry-After, then 2xx:
// each attempt waits its backoff (injected clock), is recorded, and the
// receiver sees one key, correctly signed.
func TestRetryBackoffThenDeliver(t *testing.T) {
	h := newHarness(t, nil)
	h.customer(t, ticketing.Customer{ID: "c1", Name: "Ana"}, "hp-1")
	h.hook.FailNext(http.StatusServiceUnavailable, http.StatusTooManyRequests)
	h.hook.FailAlways(0, 45*time.Second) // the 429 carries Retry-After: 45
	h.raise(t, "hp-1", "overheating", telemetry.SeverityMajor)

	h.drain(t) // attempt 1: 503
	n := h.list(t, ticketing.NotificationFilter{})[0]
	require.Equal(t, ticketing.NotifyPending, n.Status)
	require.Equal(t, []string{"webhook:retry"}, outcomes(n))
	require.WithinDuration(t, t0.Add(10*time.Second), n.NotBefore, 10*time.Millisecond, "first backoff ~10s (jitter 0.999)")
	h.clock.Advance(5 * time.Second)
	h.drain(t) // not due yet
	require.Len(t, h.list(t, ticketing.NotificationFilter{})[0].Attempts, 1)

	h.clock.Advance(5 * time.Second)
	h.drain(t) // attempt 2: 429, Retry-After 45s beats the 20s backoff
	n = h.list(t, ticketing.NotificationFilter{})[0]
	require.Equal(t, []string{"webhook:retry", "webhook:retry"}, outcomes(n))
	require.Equal(t, 429, n.Attempts[1].StatusCode)
	require.Equal(t, h.clock.Now().Add(45*time.Second), n.NotBefore)

	h.clock.Advance(45 * time.Second)
	h.drain(t)
	n = h.list(t, ticketing.NotificationFilter{})[0]
	require.Equal(t, ticketing.NotifyDelivered, n.Status)
	require.Equal(t, []string{"webhook:retry", "webhook:retry", "webhook:delivered"}, outcomes(n))
	require.Equal(t, "webhook", n.Channel)
	require.Equal(t, map[string]int{n.IdempotencyKey: 1}, h.hook.Keys())
	_, bad := h.hook.Requests()
	require.Zero(t, bad)
	d := h.hook.Deliveries()[0]
	require.Equal(t, "ticket.opened", d.Body["event"])
	require.Equal(t, "hp-1", d.Body["device_id"])
	require.Equal(t, "c1", d.Body["customer_id"])
	require.Contains(t, d.Body["message"], "Hello Ana")
	require.Equal(t, float64(n.TicketID), d.Body["ticket"].(map[string]any)["id"])
	require.InDelta(t, 1, testutil.ToFloat64(mustVec(t, h.reg, "forewarn_notify_delivered_total", "webhook")), 0)
}

func mustVec(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for i, lp := range m.GetLabel() {
				if i < len(labels) && lp.GetValue() != labels[i] {
					match = false
				}
			}
			if match {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
				g.Set(m.GetCounter().GetValue() + m.GetGauge().GetValue())
				return g
			}
		}
	}
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
}

// TestDeadLetterAndRetry: a receiver that keeps failing sends the row to
// dead-letter after max_attempts; staff retry it and it is delivered.
func TestDeadLetterAndRetry(t *testing.T) {
	h := newHarness(t, nil)
	h.customer(t, ticketing.Customer{ID: "c1"}, "hp-1")
	h.hook.FailAlways(http.StatusInternalServerError, 0)
	h.raise(t, "hp-1", "overheating", telemetry.SeverityMajor)
	for range h.cfg.MaxAttempts {
		h.drain(t)
		h.clock.Advance(time.Minute)
	}
	dead := h.list(t, ticketing.NotificationFilter{Status: ticketing.NotifyDead})
	require.Len(t, dead, 1)
	require.Len(t, dead[0].Attempts, h.cfg.MaxAttempts)
	require.Contains(t, dead[0].Note, "4 attempts")
	require.InDelta(t, 1, testutil.ToFloat64(mustVec(t, h.reg, "forewarn_notify_dead_total", "webhook")), 0)
	h.clock.Advance(time.Hour)
	h.drain(t)
	all, _ := h.hook.Requests()
	require.Equal(t, h.cfg.MaxAttempts, all, "a dead row is not tried again by itself")

	h.hook.FailAlways(0, 0)
	_, err := h.store.RetryNotification(t.Context(), dead[0].ID, "bo", h.clock.Now())
	require.NoError(t, err)
	h.drain(t)
	n := h.list(t, ticketing.NotificationFilter{})[0]
	require.Equal(t, ticketing.NotifyDelivered, n.Status)
	require.Len(t, n.Attempts, h.cfg.MaxAttempts+1)
	require.Len(t, h.hook.Keys(), 1)
}

// TestChannelFallbackAndOptOut: the preferred channel failing permanently
// (410) falls back to the next; an opted-out channel is skipped; a
// customer with every channel opted out gets nothing (suppressed).
func TestChannelFallbackAndOptOut(t *testing.T) {
	smtp := testenv.SMTP(t, testenv.SMTPOptions{})
	mailCh := newMail(t, notify.SMTPConfig{Host: smtp.Host, Port: smtp.Port, From: "Forewarn <noreply@forewarn.test>", TLS: notify.TLSStartTLS},
		&tls.Config{RootCAs: smtp.CertPool, ServerName: smtp.Host, MinVersion: tls.VersionTLS12})
	h := newHarness(t, nil, map[string]notify.Sender{"email": mailCh})
	h.customer(t, ticketing.Customer{ID: "c1", Language: "de", Channels: []ticketing.Channel{
		{Type: "webhook", URL: h.hook.URL, Secret: secret}, {Type: "email", Address: "ana@example.com"}}}, "hp-1")
	h.customer(t, ticketing.Customer{ID: "c2", Channels: []ticketing.Channel{
		{Type: "webhook", URL: h.hook.URL, Secret: secret, OptOut: true}, {Type: "email", Address: "bo@example.com"}}}, "hp-2")
	h.customer(t, ticketing.Customer{ID: "c3", Channels: []ticketing.Channel{{Type: "email", Address: "cy@example.com", OptOut: true}}}, "hp-3")
	h.hook.FailAlways(http.StatusGone, 0)
	for _, d := range []string{"hp-1", "hp-2", "hp-3"} {
		h.raise(t, d, "filter_clogging", telemetry.SeverityMinor)
	}
	h.drain(t)
	byCustomer := map[string]ticketing.Notification{}
	for _, n := range h.list(t, ticketing.NotificationFilter{}) {
		byCustomer[n.CustomerID] = n
	}
	require.Equal(t, []string{"webhook:failed", "email:delivered"}, outcomes(byCustomer["c1"]))
	require.Equal(t, ticketing.NotifyDelivered, byCustomer["c1"].Status)
	require.Equal(t, []string{"email:delivered"}, outcomes(byCustomer["c2"]))
	require.Equal(t, ticketing.NotifySuppressed, byCustomer["c3"].Status)
	require.Contains(t, byCustomer["c3"].Note, "opted out")
	msgs := smtp.Messages()
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		if m.To[0] == "ana@example.com" {
			require.Contains(t, m.Header.Get("Subject"), "Filter") // German template
			require.Contains(t, string(m.Raw), "Ersatzfilter")
		}
	}
}

// TestQuietHours: a non-critical message at 23:30 Paris waits until
// 07:00; a critical one goes at once.
func TestQuietHours(t *testing.T) {
	h := newHarness(t, nil)
	h.customer(t, ticketing.Customer{ID: "c1", Timezone: "Europe/Paris", QuietHours: &ticketing.QuietHours{Start: "22:00", End: "07:00"}}, "hp-1", "hp-2")
	h.clock.Set(time.Date(2026, 11, 22, 22, 30, 0, 0, time.UTC)) // 23:30 in Paris
	h.raise(t, "hp-1", "filter_clogging", telemetry.SeverityMinor)
	h.raise(t, "hp-2", "overheating", telemetry.SeverityCritical)
	h.drain(t)
	ds := h.hook.Deliveries()
	require.Len(t, ds, 1, "only the critical one")
	require.Equal(t, "critical", ds[0].Body["severity"])
	waiting := h.list(t, ticketing.NotificationFilter{Status: ticketing.NotifyPending})
	require.Len(t, waiting, 1)
	require.Empty(t, waiting[0].Attempts, "waiting is not an attempt")
	require.Equal(t, time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC), waiting[0].NotBefore)
	require.Contains(t, waiting[0].Note, "quiet hours until 2026-11-23 07:00")

	h.clock.Set(time.Date(2026, 11, 23, 5, 59, 0, 0, time.UTC))
	h.drain(t)
	require.Len(t, h.hook.Deliveries(), 1)
	h.clock.Set(time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC))
	h.drain(t)
	require.Len(t, h.hook.Deliveries(), 2)
}

// TestDailyCapDigest: beyond the tier's daily cap, non-critical messages
// fold into one digest sent the next local morning; critical ones still
// go at once.
func TestDailyCapDigest(t *testing.T) {
	h := newHarness(t, func(c *notify.Config) { c.TierRules.Standard.DailyCap = 2 })
	h.customer(t, ticketing.Customer{ID: "c1", Timezone: "Europe/Paris"}, "hp-1")
	for i := range 5 {
		h.raise(t, "hp-1", fmt.Sprintf("fault_%d", i), telemetry.SeverityMinor)
		h.drain(t)
	}
	h.raise(t, "hp-1", "overheating", telemetry.SeverityCritical)
	h.drain(t)
	require.Len(t, h.hook.Deliveries(), 3, "2 within the cap, then the critical one")
	require.Len(t, h.list(t, ticketing.NotificationFilter{Status: ticketing.NotifyDigested}), 3)
	digests := h.list(t, ticketing.NotificationFilter{Status: ticketing.NotifyPending})
	require.Len(t, digests, 1)
	require.Equal(t, ticketing.EventDigest, digests[0].Event)
	require.Equal(t, time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC), digests[0].NotBefore, "midnight in Paris")

	h.clock.Set(time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC))
	h.drain(t)
	ds := h.hook.Deliveries()
	require.Len(t, ds, 4)
	last := ds[3]
	require.Equal(t, "digest", last.Body["event"])
	require.Contains(t, last.Body["subject"], "2026-11-22 (3 updates)")
	for _, ref := range []string{"#3", "#4", "#5"} { // fault_2..4's tickets
		require.Contains(t, last.Body["message"], ref)
	}
	// A new day: the cap starts again.
	h.raise(t, "hp-1", "fault_new", telemetry.SeverityMinor)
	h.drain(t)
	require.Len(t, h.hook.Deliveries(), 5)
}

// TestStormOneMessagePerCustomer: an incident over many devices yields one
// message per customer.
func TestStormOneMessagePerCustomer(t *testing.T) {
	h := newHarness(t, nil)
	h.customer(t, ticketing.Customer{ID: "c1"}, "hp-1", "hp-2", "hp-3", "hp-4")
	for _, d := range []string{"hp-1", "hp-2", "hp-3", "hp-4"} {
		h.raise(t, d, "overheating", telemetry.SeverityMajor)
	}
	h.drain(t)
	ds := h.hook.Deliveries()
	require.Len(t, ds, 1)
	require.Contains(t, ds[0].Body["message"], "treating it as one problem")
	suppressed := h.list(t, ticketing.NotificationFilter{Status: ticketing.NotifySuppressed})
	require.Len(t, suppressed, 3)
	for _, n := range suppressed {
		require.Contains(t, n.Note, "merged into")
	}
	staff := h.staff.Deliveries()
	require.Len(t, staff, 1, "staff hear about the incident")
	require.Contains(t, staff[0].Body["text"], "Incident")
}

// TestTierCallbackAndStaffCritical: premium customers get a call-back task
// on their ticket (and the message says so); a critical ticket reaches the
// staff chat.
func TestTierCallbackAndStaffCritical(t *testing.T) {
	h := newHarness(t, func(c *notify.Config) { c.TierRules.Premium.Callback = true })
	h.customer(t, ticketing.Customer{ID: "vip", Name: "Ana", Tier: ticketing.TierPremium}, "hp-1")
	h.raise(t, "hp-1", "overheating", telemetry.SeverityCritical)
	h.drain(t)
	ds := h.hook.Deliveries()
	require.Len(t, ds, 1)
	require.Contains(t, ds[0].Body["message"], "call you")
	tid := int64(ds[0].Body["ticket"].(map[string]any)["id"].(float64))
	audit, _, err := h.store.ListAudit(t.Context(), ticketing.AuditFilter{TicketID: tid})
	require.NoError(t, err)
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	require.Contains(t, actions, ticketing.ActionCallback)
	staff := h.staff.Deliveries()
	require.Len(t, staff, 1)
	require.True(t, strings.HasPrefix(staff[0].Body["text"].(string), ":red_circle: Critical ticket"))
}

// TestLeaseExpiryNoLoss: a dispatcher that claimed rows and died (never
// completed them) loses them after the lease; another delivers each once.
func TestLeaseExpiryNoLoss(t *testing.T) {
	h := newHarness(t, nil)
	h.customer(t, ticketing.Customer{ID: "c1"}, "hp-1")
	for i := range 5 {
		h.raise(t, "hp-1", fmt.Sprintf("f%d", i), telemetry.SeverityMajor)
	}
	claimed, err := h.store.ClaimNotifications(t.Context(), h.clock.Now(), h.clock.Now(), h.cfg.Lease, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 5) // ... and the process is killed
	h.drain(t)
	require.Empty(t, h.hook.Deliveries(), "leased rows wait")
	h.clock.Advance(h.cfg.Lease + time.Second)
	h.drain(t)
	keys := h.hook.Keys()
	require.Len(t, keys, 5)
	for k, n := range keys {
		require.Equal(t, 1, n, k)
	}
}

func newMail(t *testing.T, cfg notify.SMTPConfig, tlsConfig *tls.Config) *email.Channel {
	t.Helper()
	ch, err := email.New(cfg, tlsConfig)
	require.NoError(t, err)
	return ch
}
