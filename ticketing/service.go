package ticketing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forewarn/forewarn/telemetry"
)

// Options configure a Service. The zero value works: default lifecycle and
// registry settings, a discarding logger, unregistered metrics, time.Now.
type Options struct {
	Tickets  TicketsConfig  // zero: DefaultTicketsConfig()
	Registry RegistryConfig // zero: DefaultRegistryConfig()
	Logger   *slog.Logger
	// Registerer gets the Service's metrics. nil: not registered; one that
	// already holds them (another Service's) shares them.
	Registerer prometheus.Registerer
	// Now is the wall clock: updated_at, SLA due times, hold and reopen
	// windows. nil means time.Now.
	Now func() time.Time
}

func (o *Options) ensureDefaults() {
	if o.Tickets.SweepInterval == 0 && o.Tickets.SLA.Standard.Critical == 0 {
		o.Tickets = DefaultTicketsConfig()
	}
	if o.Registry.UnknownDevices == "" {
		o.Registry = DefaultRegistryConfig()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Service applies detector Findings and staff actions to tickets, runs the
// auto-resolve sweeper, and keeps the registry. It is safe for concurrent
// use; several Services may share one store or one database.
type Service struct {
	store   *SQLStore
	cfg     TicketsConfig
	reg     RegistryConfig
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	seenMu sync.Mutex
	seenAt map[string]seenEntry // device id -> when this process last wrote or refused it
}

type seenEntry struct {
	at    time.Time
	known bool
}

// NewService returns a Service that keeps tickets in store.
func NewService(store *SQLStore, opts Options) *Service {
	opts.ensureDefaults()
	return &Service{
		store:   store,
		cfg:     opts.Tickets,
		reg:     opts.Registry,
		log:     opts.Logger.With("component", "ticketing"),
		now:     opts.Now,
		metrics: newMetrics(opts.Registerer),
		seenAt:  map[string]seenEntry{},
	}
}

// Store returns the store the Service writes to, for reads.
func (s *Service) Store() *SQLStore { return s.store }

// Handle applies each Finding in order; each one's change (ticket row,
// timeline event, audit entries, incident grouping) commits atomically:
//
//   - Raised: adds a raise to the open (not resolved) ticket of the
//     Finding's (device, fault): raise count +1, latest evidence, severity
//     escalated to the worse of old and new (never lowered; the SLA due time
//     moves in when the new severity's is earlier), cleared_at and a pending
//     auto-resolve forgotten. Without an open ticket it reopens the key's
//     ticket if that was resolved within tickets.reopen_window (history
//     kept), else it opens one with an SLA due time from severity and the
//     customer's tier, and groups it into an incident when enough devices of
//     one site, firmware or model raised the same fault within the window.
//   - Cleared: records on the open ticket that the fault cleared and
//     schedules its auto-resolve after tickets.resolve_hold (Sweep resolves
//     it unless a raise comes first). A clear without an open ticket changes
//     nothing.
//
// A Finding that fails does not stop the others; Handle returns their
// errors joined. It stops early only when ctx is done. Malformed Findings
// give errors wrapping ErrInvalidArgument.
func (s *Service) Handle(ctx context.Context, fs ...telemetry.Finding) error {
	var errs []error
	for i, f := range fs {
		if err := ctx.Err(); err != nil {
			s.metrics.handleErrors.Add(float64(len(fs) - i))
			errs = append(errs, fmt.Errorf("handle findings: %d of %d not handled: %w", len(fs)-i, len(fs), err))
			break
		}
		if err := s.handle(ctx, f); err != nil {
			s.metrics.handleErrors.Inc()
			errs = append(errs, fmt.Errorf("handle %s finding %s: %w", f.State, f.Key(), err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) handle(ctx context.Context, f telemetry.Finding) error {
	if err := checkFinding(f); err != nil {
		return err
	}
	switch f.State {
	case telemetry.Raised:
		res, err := s.store.raise(ctx, f, s.now(), s.cfg)
		if err != nil {
			return err
		}
		switch {
		case res.opened:
			s.metrics.opened.Inc()
			s.log.Info("ticket opened", "ticket_id", res.id, "device_id", f.Device, "fault", f.Fault, "severity", f.Severity)
		case res.reopened:
			s.metrics.reopened.Inc()
			s.log.Info("ticket reopened", "ticket_id", res.id, "device_id", f.Device, "fault", f.Fault, "severity", f.Severity)
		default:
			s.metrics.raises.Inc()
			s.log.Debug("ticket raised again", "ticket_id", res.id, "device_id", f.Device, "fault", f.Fault, "severity", f.Severity)
		}
		if res.escalated {
			s.metrics.escalations.Inc()
		}
		if res.newIncid {
			s.metrics.incidents.Inc()
			s.log.Info("incident opened", "incident_id", res.incident, "fault", f.Fault)
		}
	case telemetry.Cleared:
		id, found, err := s.store.clear(ctx, f, s.now(), s.cfg)
		if err != nil {
			return err
		}
		if found {
			s.metrics.clears.Inc()
			s.log.Debug("ticket fault cleared", "ticket_id", id, "device_id", f.Device, "fault", f.Fault)
		} else {
			s.metrics.unmatchedClears.Inc()
			s.log.Debug("clear without open ticket ignored", "device_id", f.Device, "fault", f.Fault)
		}
	}
	return nil
}

// checkFinding rejects Findings no ticket can be made of.
func checkFinding(f telemetry.Finding) error {
	if _, err := telemetry.ParseDeviceID(string(f.Device)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	switch {
	case f.Fault == "":
		return fmt.Errorf("%w: empty fault", ErrInvalidArgument)
	case f.State != telemetry.Raised && f.State != telemetry.Cleared:
		return fmt.Errorf("%w: unknown state %d", ErrInvalidArgument, int(f.State))
	case f.State == telemetry.Raised && !f.Severity.Valid():
		return fmt.Errorf("%w: invalid severity %d", ErrInvalidArgument, int(f.Severity))
	case f.At.IsZero():
		return fmt.Errorf("%w: no event time", ErrInvalidArgument)
	}
	return nil
}

// ApplyTicket applies a staff Action to ticket id and records it in the
// audit trail in the same transaction. Errors wrap ErrNotFound,
// ErrInvalidArgument (the Action's fields) or ErrConflict (the ticket's
// status does not allow it, e.g. acknowledging a resolved ticket).
func (s *Service) ApplyTicket(ctx context.Context, id int64, a Action) (Ticket, error) {
	t, err := s.store.applyTicket(ctx, id, a, s.now(), s.cfg)
	if err != nil {
		return Ticket{}, err
	}
	s.metrics.actions.WithLabelValues(string(a.Kind)).Inc()
	s.log.Info("ticket changed by staff", "ticket_id", id, "action", a.Kind, "actor", a.Actor)
	return t, nil
}

// ApplyIncident applies a staff Action to incident id and to its member
// tickets, and returns the incident and the ids of the tickets it changed.
func (s *Service) ApplyIncident(ctx context.Context, id int64, a Action) (Incident, []int64, error) {
	in, changed, err := s.store.applyIncident(ctx, id, a, s.now(), s.cfg)
	if err != nil {
		return Incident{}, nil, err
	}
	s.metrics.actions.WithLabelValues("incident_" + string(a.Kind)).Inc()
	s.log.Info("incident changed by staff", "incident_id", id, "action", a.Kind, "actor", a.Actor, "tickets", len(changed))
	return in, changed, nil
}

// Sweep resolves, at the Service's clock, every ticket whose fault stayed
// clear for tickets.resolve_hold, and every open incident whose tickets are
// all resolved. It returns the ids it resolved.
func (s *Service) Sweep(ctx context.Context) (tickets, incidents []int64, err error) {
	tickets, incidents, err = s.store.sweep(ctx, s.now(), s.cfg)
	s.metrics.autoResolved.Add(float64(len(tickets)))
	for _, id := range tickets {
		s.log.Info("ticket auto-resolved", "ticket_id", id)
	}
	for _, id := range incidents {
		s.log.Info("incident resolved", "incident_id", id)
	}
	return tickets, incidents, err
}

// Run sweeps every tickets.sweep_interval until ctx is done, then returns
// nil. A failed sweep is logged and retried at the next tick. Run starts no
// goroutine and writes nothing after it returns.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.metrics.sweepErrors.Inc()
				s.log.Warn("ticket sweep failed, will retry", "err", err)
			}
		}
	}
}

// ObserveDevice tells the registry that telemetry arrived from device id
// (with the model and firmware it reported, either may be empty). A known
// device gets last_seen and online updated, at most once per
// registry.seen_interval per process. An unknown device is registered
// (source auto) when registry.unknown_devices is register; when it is
// reject, ObserveDevice counts it and returns an error wrapping
// ErrUnknownDevice, and the caller should drop the reading. Safe for
// concurrent use; cheap when the device was seen recently.
func (s *Service) ObserveDevice(ctx context.Context, id telemetry.DeviceID, model, firmware string) error {
	return s.ObserveDevices(ctx, []telemetry.Sighting{{Device: id, Model: model, Firmware: firmware}})[0]
}

// ObserveDevices is ObserveDevice for many sightings at once (ingest's
// group commit): the devices not seen within registry.seen_interval are
// written in one transaction, so a fleet's first sightings after a start
// cost one commit per group, not one per device. errs[i] is ss[i]'s
// result; a device that appears several times gets the same result each
// time (its first sighting's model and firmware are written).
func (s *Service) ObserveDevices(ctx context.Context, ss []telemetry.Sighting) (errs []error) {
	errs = make([]error, len(ss))
	now := s.now()
	var (
		write []telemetry.Sighting // devices to write, each once
		slot  map[string]int       // device -> index in write
		pend  []int                // the sightings the write decides
	)
	s.seenMu.Lock()
	for i, sg := range ss {
		if _, err := telemetry.ParseDeviceID(string(sg.Device)); err != nil {
			errs[i] = fmt.Errorf("observe device: %w: %w", ErrInvalidArgument, err)
			continue
		}
		if e, ok := s.seenAt[string(sg.Device)]; ok && now.Sub(e.at) < s.reg.SeenInterval {
			if !e.known {
				s.metrics.unknownDevices.WithLabelValues("rejected").Inc()
				errs[i] = fmt.Errorf("observe device %s: %w", sg.Device, ErrUnknownDevice)
			}
			continue
		}
		if slot == nil {
			slot = map[string]int{}
		}
		if _, ok := slot[string(sg.Device)]; !ok {
			slot[string(sg.Device)] = len(write)
			write = append(write, sg)
		}
		pend = append(pend, i)
	}
	s.seenMu.Unlock()
	if len(write) == 0 {
		return errs
	}
	known, registered, err := s.store.seen(ctx, write, now, s.reg.UnknownDevices == UnknownRegister)
	if err == nil {
		s.seenMu.Lock()
		if len(s.seenAt)+len(write) > maxSeenCache {
			clear(s.seenAt) // bounded memory; the next sighting of each writes once
		}
		for k, sg := range write {
			s.seenAt[string(sg.Device)] = seenEntry{at: now, known: known[k]}
		}
		s.seenMu.Unlock()
		for k, sg := range write {
			if registered[k] {
				s.metrics.unknownDevices.WithLabelValues("registered").Inc()
				s.log.Info("device registered on first telemetry", "device_id", sg.Device, "model", sg.Model)
			}
		}
	}
	for _, i := range pend {
		dev := ss[i].Device
		switch k := slot[string(dev)]; {
		case err != nil:
			errs[i] = fmt.Errorf("observe device %s: %w", dev, err)
		case !known[k]:
			s.metrics.unknownDevices.WithLabelValues("rejected").Inc()
			errs[i] = fmt.Errorf("observe device %s: %w", dev, ErrUnknownDevice)
		}
	}
	return errs
}

// ObserveStatus records a status change ({prefix}/{id}/status, also the
// devices' Last Will) in the registry: the device's online state, and for
// online its last_seen (the receive time, if later). A change of state is
// audited (actor system, action online). A device the registry does not
// know is left alone (admission already decided about it) and gives no
// error. It also forgets ObserveDevice's recent sighting of the device, so
// the next telemetry after an offline writes online again at once.
func (s *Service) ObserveStatus(ctx context.Context, st telemetry.StatusChange) error {
	if _, err := telemetry.ParseDeviceID(string(st.Device)); err != nil {
		return fmt.Errorf("observe status: %w: %w", ErrInvalidArgument, err)
	}
	now := s.now()
	at := st.At
	if at.IsZero() {
		at = now
	}
	s.seenMu.Lock()
	delete(s.seenAt, string(st.Device))
	s.seenMu.Unlock()
	known, changed, err := s.store.setOnline(ctx, string(st.Device), st.Online, at, now)
	if err != nil {
		return fmt.Errorf("observe status of %s: %w", st.Device, err)
	}
	if changed {
		s.log.Info("device online state changed", "device_id", st.Device, "online", st.Online)
	} else if !known {
		s.log.Debug("status of an unregistered device ignored", "device_id", st.Device, "online", st.Online)
	}
	return nil
}

// maxSeenCache bounds ObserveDevice's memory.
const maxSeenCache = 1 << 20

// PutDevice creates or replaces a device in the registry (source api);
// ObserveDevice's cache forgets the device, so a refusal ends at once.
func (s *Service) PutDevice(ctx context.Context, d Device, actor string) (Device, bool, error) {
	d.Source = SourceAPI
	out, created, err := s.store.PutDevice(ctx, d, actor, s.now())
	s.forgetSeen(d.ID)
	return out, created, err
}

// DeleteDevice removes a device from the registry (and from ObserveDevice's
// cache, so that with unknown_devices: reject its telemetry is refused at once).
func (s *Service) DeleteDevice(ctx context.Context, id, actor string) error {
	err := s.store.DeleteDevice(ctx, id, actor, s.now())
	s.forgetSeen(id)
	return err
}

// forgetSeen drops id from ObserveDevice's cache; "" drops every entry.
func (s *Service) forgetSeen(id string) {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if id == "" {
		clear(s.seenAt)
		return
	}
	delete(s.seenAt, id)
}

// PutCustomer creates or replaces a customer.
func (s *Service) PutCustomer(ctx context.Context, c Customer, actor string) (Customer, bool, error) {
	return s.store.PutCustomer(ctx, c, actor, s.now())
}

// RetryNotification sends dead notification id again (pending, due now,
// attempt count reset), audited with actor.
func (s *Service) RetryNotification(ctx context.Context, id int64, actor string) (Notification, error) {
	n, err := s.store.RetryNotification(ctx, id, actor, s.now())
	if err != nil {
		return Notification{}, err
	}
	s.log.Info("dead notification retried", "notification_id", id, "actor", actor)
	return n, nil
}

// DeleteCustomer removes a customer who owns no devices or tokens.
func (s *Service) DeleteCustomer(ctx context.Context, id, actor string) error {
	return s.store.DeleteCustomer(ctx, id, actor, s.now())
}

// metrics are the Service's counters.
type metrics struct {
	opened          prometheus.Counter
	reopened        prometheus.Counter
	raises          prometheus.Counter
	clears          prometheus.Counter
	unmatchedClears prometheus.Counter
	escalations     prometheus.Counter
	autoResolved    prometheus.Counter
	incidents       prometheus.Counter
	handleErrors    prometheus.Counter
	sweepErrors     prometheus.Counter
	actions         *prometheus.CounterVec
	unknownDevices  *prometheus.CounterVec
	importRows      *prometheus.CounterVec

	customerImportRows *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
	}
	return &metrics{
		opened:          counter("forewarn_tickets_opened_total", "Tickets opened by a raised finding."),
		reopened:        counter("forewarn_tickets_reopened_total", "Resolved tickets reopened because their fault returned within the reopen window."),
		raises:          counter("forewarn_ticket_raises_total", "Raised findings added to an already open ticket."),
		clears:          counter("forewarn_ticket_clears_total", "Cleared findings recorded on an open ticket."),
		unmatchedClears: counter("forewarn_ticket_unmatched_clears_total", "Cleared findings ignored because their fault had no open ticket."),
		escalations:     counter("forewarn_ticket_escalations_total", "Raises that made a ticket's severity worse."),
		autoResolved:    counter("forewarn_tickets_auto_resolved_total", "Tickets resolved because their fault stayed clear for the hold time."),
		incidents:       counter("forewarn_incidents_opened_total", "Incidents opened by grouping tickets."),
		handleErrors:    counter("forewarn_ticket_handle_errors_total", "Findings that could not be applied to tickets."),
		sweepErrors:     counter("forewarn_ticket_sweep_errors_total", "Sweeps that failed."),
		actions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_ticket_actions_total", Help: "Staff actions applied, by action.",
		}, []string{"action"})),
		unknownDevices: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_registry_unknown_devices_total", Help: "Telemetry from devices the registry did not know, by result (registered, rejected).",
		}, []string{"result"})),
		importRows: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_registry_import_rows_total", Help: "Rows of device imports, by result (created, updated, rejected).",
		}, []string{"result"})),
		customerImportRows: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forewarn_registry_customer_import_rows_total", Help: "Rows of customer imports, by result (created, updated, rejected).",
		}, []string{"result"})),
	}
}

// register registers c with reg, or returns the equal collector reg
// already holds, so Services sharing a Registerer share their counters.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("ticketing: register metrics: %v", err))
	}
	return c
}
