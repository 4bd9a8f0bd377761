package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"

	"github.com/forewarn/forewarn/config"
	"github.com/forewarn/forewarn/httpapi"
	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/live"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/email"
	"github.com/forewarn/forewarn/notify/mqttpush"
	"github.com/forewarn/forewarn/notify/webhook"
	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, fs, err := parseConfigFlags("serve", args, stderr, nil)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	file, _ := fs.GetString("config")
	reload := func() (config.Config, error) { return config.Load(config.Options{File: file, Flags: fs}) }
	return serve(ctx, cfg, newLogger(cfg.Log, stderr), reload)
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs Forewarn until ctx is done, then shuts down upstream first:
// stop taking MQTT messages, make every message taken durable in the spool
// and acknowledge it, stop the detector engine (it writes its snapshot),
// write the findings and ship the spool to InfluxDB (bounded by
// shutdown_timeout; the rest waits in the spool for the next start), stop
// HTTP, close the store. On SIGHUP it reloads the configuration with reload
// and applies its profiles.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, reload func() (config.Config, error)) (err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := ticketing.Open(ctx, cfg.Store)
	if err != nil {
		return fmt.Errorf("open ticket store: %w", err)
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	tickets := ticketing.NewService(store, ticketing.Options{
		Tickets: cfg.Tickets, Registry: cfg.Registry, Logger: log, Registerer: reg,
	})

	dispatcher, push, err := newDispatcher(cfg, store, log, reg)
	if err != nil {
		return err
	}
	if push != nil {
		defer push.Close()
	}

	influx := ingest.NewInfluxClient(cfg.Influx)
	defer influx.Close()
	spool, err := ingest.OpenSpool(cfg.Spool.Dir, cfg.Spool.SegmentBytes(), log)
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	defer func() { err = errors.Join(err, spool.Close()) }()
	writer := ingest.NewWriter(spool, cfg.Influx, log, reg)
	findingsOut := newFindingsWriter(influx, cfg.Influx, log, reg)
	engine, err := live.New(live.Options{
		Config:   cfg.Detectors,
		Profiles: cfg.Profiles,
		Handle:   findingsHandler(tickets, findingsOut, log, reg),
		Logger:   log.With("component", "detectors"),
	})
	if err != nil {
		return fmt.Errorf("load detector profiles: %w", err)
	}
	sub := ingest.NewSubscriber(ingest.SubscriberOptions{
		MQTT: cfg.MQTT, Limits: cfg.Ingest, Spool: spool, MaxBytes: cfg.Spool.MaxBytes,
		Readings: newDetectSink(engine, log),
		Events:   engineEvents{engine}, Status: engineStatus{engine, tickets}, Admit: admitDevices(tickets), Logger: log, Registerer: reg,
	})

	token := cfg.HTTP.AdminToken
	if token == "" {
		token = randomToken()
		log.Warn("http.admin_token is not set; generated one for this run", "admin_token", token)
	}
	summarizer := &influxSummarizer{client: influx, org: cfg.Influx.Org, bucket: cfg.Influx.Bucket, now: time.Now}
	handler := httpapi.NewHandler(httpapi.Options{
		Service:       tickets,
		AdminToken:    token,
		Limits:        cfg.HTTP,
		Gatherer:      reg,
		Telemetry:     summarizer,
		Series:        summarizer,                 // the console's ticket chart
		Notifications: ticketNotifications{store}, // the console's ticket timeline
		Logger:        log,
		Checks: map[string]httpapi.Check{
			"mqtt":  sub.Ready,
			"store": store.Ping,
			"influxdb": func(ctx context.Context) error {
				if ok, err := influx.Ping(ctx); !ok {
					return fmt.Errorf("influxdb at %s does not answer: %w", cfg.Influx.URL, err)
				}
				return nil
			},
		},
	})
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "addr", ln.Addr().String())

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var serveErr error
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serve http: %w", err)
			stop()
		}
	}()
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		_ = writer.Run(writerCtx) // returns nil when stopped
	}()

	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		_ = tickets.Run(runCtx) // auto-resolves held tickets; returns nil when runCtx ends
	}()
	detCtx, stopDetectors := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDetectors()
	var detErr error
	detDone := make(chan struct{})
	go func() {
		defer close(detDone)
		if detErr = engine.Run(detCtx); detErr != nil {
			detErr = fmt.Errorf("detector engine: %w", detErr)
		}
	}()
	// The dispatcher runs until the findings are written (they make outbox
	// rows); then it finishes the deliveries under way and stops.
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNotify()
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		if dispatcher != nil {
			_ = dispatcher.Run(notifyCtx) // returns nil when stopped
		}
	}()
	findingsCtx, stopFindings := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFindings()
	findingsDone := make(chan struct{})
	go func() { defer close(findingsDone); findingsOut.Run(findingsCtx, cfg.ShutdownTimeout) }()
	select {
	case <-engine.Started():
	case <-detDone:
		stop()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHUP(runCtx, hup, reload, engine, log)

	// Until ctx is done; then it stops taking messages and returns once
	// everything taken is in the spool and acknowledged.
	subErr := sub.Run(runCtx)
	stop()
	<-sweepDone

	log.Info("shutting down", "backlog_bytes", writer.Backlog())
	stopDetectors() // writes the detector snapshot
	<-detDone
	stopFindings()
	<-findingsDone
	stopNotify()
	<-notifyDone
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	stopWriter()
	<-writerDone
	if left := writer.Close(drainCtx); left > 0 {
		log.Warn("influxdb did not take the whole spool before shutdown_timeout; the rest is kept for the next start", "backlog_bytes", left)
	}
	shutErr := srv.Shutdown(drainCtx)
	<-serveDone
	log.Info("stopped")
	return errors.Join(subErr, detErr, serveErr, shutErr)
}

// reloadOnHUP reloads the configuration at each SIGHUP and applies its
// detector profiles; the state of unchanged rules is kept. A bad file
// changes nothing. Other sections need a restart.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, reload func() (config.Config, error), engine *live.Engine, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if reload == nil {
			continue
		}
		cfg, err := reload()
		if err == nil {
			err = engine.Reload(cfg.Profiles)
		}
		if err != nil {
			log.Error("configuration reload failed, keeping the running rules", "err", err)
			continue
		}
		log.Info("detector profiles reloaded", "profiles", len(cfg.Profiles))
	}
}

// newDetectSink feeds readings to the sharded detector engine, which
// hands its findings to findingsHandler. A reading the engine cannot take
// (it is stopping) is logged; ingest goes on, the reading is stored.
func newDetectSink(engine *live.Engine, log *slog.Logger) ingest.Sink {
	return ingest.SinkFunc(func(ctx context.Context, rs []telemetry.Reading) error {
		if err := engine.Observe(ctx, rs); err != nil {
			log.Error("detector engine did not take readings", "readings", len(rs), "err", err)
		}
		return nil
	})
}

// admitDevices asks the registry about the devices of each group commit
// that send telemetry or events, in one call: it records last_seen and
// registers unknown devices, or, with registry.unknown_devices: reject,
// refuses them (reason unknown_device).
func admitDevices(tickets *ticketing.Service) func(context.Context, []telemetry.Sighting) []error {
	return func(ctx context.Context, ss []telemetry.Sighting) []error {
		errs := tickets.ObserveDevices(ctx, ss)
		for i, err := range errs {
			if errors.Is(err, ticketing.ErrUnknownDevice) {
				errs[i] = fmt.Errorf("%w: %w", ingest.ErrNotAdmitted, err)
			}
		}
		return errs
	}
}

// engineEvents hands device events ({prefix}/{id}/events) to the detector
// engine's event rules.
type engineEvents struct{ e *live.Engine }

func (x engineEvents) WriteEvents(ctx context.Context, es []telemetry.DeviceEvent) error {
	for _, ev := range es {
		if err := x.e.ObserveEvent(ctx, ev); err != nil {
			return fmt.Errorf("detector engine: event of %s: %w", ev.Device, err)
		}
	}
	return nil
}

// engineStatus hands status changes ({prefix}/{id}/status, the Last Will)
// to the registry (the device's online state) and to the detector engine's
// offline rules. A registry failure does not keep a change from the engine.
type engineStatus struct {
	e       *live.Engine
	tickets *ticketing.Service
}

func (x engineStatus) WriteStatus(ctx context.Context, ss []telemetry.StatusChange) error {
	var errs []error
	for _, st := range ss {
		if err := x.tickets.ObserveStatus(ctx, st); err != nil {
			errs = append(errs, fmt.Errorf("registry: %w", err))
		}
		if err := x.e.ObserveStatus(ctx, st); err != nil {
			return errors.Join(append(errs, fmt.Errorf("detector engine: status of %s: %w", st.Device, err))...)
		}
	}
	return errors.Join(errs...)
}

// findingsHandler counts findings, queues them for InfluxDB (measurement
// findings) and hands them to ticketing.
func findingsHandler(tickets *ticketing.Service, out *findingsWriter, log *slog.Logger, reg prometheus.Registerer) live.Handler {
	findings := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "forewarn_findings_total", Help: "Findings the detectors emitted, by state (raised, cleared).",
	}, []string{"state"})
	reg.MustRegister(findings)
	return func(ctx context.Context, fs []telemetry.Finding) {
		for _, f := range fs {
			findings.WithLabelValues(f.State.String()).Inc()
		}
		out.Add(fs)
		if err := tickets.Handle(ctx, fs...); err != nil {
			// The readings are stored; only their tickets failed. Keep ingesting.
			log.Error("ticketing failed to handle findings", "findings", len(fs), "err", err)
		}
	}
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// The ticket store is the dispatcher's outbox.
var _ notify.Outbox = (*ticketing.SQLStore)(nil)

// newDispatcher builds the notification dispatcher with the channels the
// configuration enables: webhooks always, email with notify.smtp.host,
// MQTT push on the mqtt broker, the staff chat with
// notify.staff_webhook_url. Its templates are checked here, so a broken
// one stops start-up. It returns nil when notify.enabled is false.
func newDispatcher(cfg config.Config, store *ticketing.SQLStore, log *slog.Logger, reg prometheus.Registerer) (*notify.Dispatcher, *mqttpush.Channel, error) {
	tpl, err := notify.LoadTemplates(cfg.Notify.TemplatesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("notification templates: %w", err)
	}
	if !cfg.Notify.Enabled {
		log.Info("notifications are off (notify.enabled: false); outbox rows wait")
		return nil, nil, nil
	}
	senders := map[string]notify.Sender{"webhook": webhook.New(nil, nil)}
	if cfg.Notify.SMTP.Host != "" {
		mail, err := email.New(cfg.Notify.SMTP, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("notify.%w", err)
		}
		senders["email"] = mail
	}
	push := mqttpush.New(mqttpush.Options{URL: cfg.MQTT.URL, ClientID: cfg.MQTT.ClientID + "-notify", Username: cfg.MQTT.Username,
		Password: cfg.MQTT.Password, Topic: cfg.Notify.MQTTTopic, ConnectTimeout: cfg.MQTT.ConnectTimeout})
	senders["mqtt"] = push
	if cfg.Notify.StaffWebhookURL != "" {
		senders[notify.ChannelStaff] = webhook.NewChat(cfg.Notify.StaffWebhookURL, nil, nil)
	}
	d, err := notify.New(notify.Options{Config: cfg.Notify, Outbox: store, Senders: senders, Templates: tpl, Logger: log, Registerer: reg})
	if err != nil {
		return nil, nil, fmt.Errorf("notification dispatcher: %w", err)
	}
	return d, push, nil
}
