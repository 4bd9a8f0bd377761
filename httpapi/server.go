package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/forewarn/forewarn/ticketing"
)

// A Check reports whether one dependency is reachable; nil means yes.
type Check func(ctx context.Context) error

// TelemetrySummarizer reads a device's recent telemetry for a ticket's
// context (GET /api/v1/tickets/{id}/context). cmd provides one backed by
// InfluxDB; it must honour ctx and may return an error, which the context
// reports in place of the summary.
type TelemetrySummarizer interface {
	Summarize(ctx context.Context, deviceID string, since time.Time) (any, error)
}

// Options are what the handler needs.
type Options struct {
	Service    *ticketing.Service
	AdminToken string           // the bootstrap admin's bearer token; must not be empty
	Limits     Config           // MaxBodyBytes and MaxImportBytes; zero: DefaultConfig's
	Checks     map[string]Check // dependencies /readyz checks, by name
	Gatherer   prometheus.Gatherer
	Telemetry  TelemetrySummarizer // optional
	// Series draws the console's ticket chart; optional (no chart).
	Series TelemetrySeries
	// Notifications puts a ticket's notifications on its console
	// timeline; optional.
	Notifications NotificationLister
	// Now is the console's clock (SLA countdowns, sessions); nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler serves the REST API, health, readiness and metrics.
type Handler struct {
	opts   Options
	store  *ticketing.SQLStore
	svc    *ticketing.Service
	log    *slog.Logger
	mux    *chi.Mux
	admin  [32]byte // SHA-256 of the admin token
	routes []route
}

// A route is one endpoint: its handler and what the OpenAPI document says
// about it. Role "" means no token (only /healthz and /readyz).
type route struct {
	method, pattern string
	role            ticketing.Role
	scoped          bool // customer-scoped tokens may call it
	summary         string
	query           []string // query parameters
	body            string   // request schema name in the OpenAPI document, "" for none
	resp            string   // response schema name
	status          int      // success status
	maxBody         int64    // 0: Limits.MaxBodyBytes
	handle          http.HandlerFunc
}

// NewHandler returns the HTTP handler of Forewarn.
func NewHandler(opts Options) *Handler {
	if opts.Limits == (Config{}) {
		opts.Limits = DefaultConfig()
	} else if opts.Limits.MaxBodyBytes == 0 {
		d := DefaultConfig()
		opts.Limits.MaxBodyBytes, opts.Limits.MaxImportBytes = d.MaxBodyBytes, d.MaxImportBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, svc: opts.Service, store: opts.Service.Store(), log: opts.Logger.With("component", "http"), mux: chi.NewRouter()}
	h.admin = sha256.Sum256([]byte(opts.AdminToken))
	h.mux.Use(middleware.Recoverer)
	h.routes = h.routeTable()
	for _, rt := range h.routes {
		h.mux.Method(rt.method, rt.pattern, h.guard(rt))
	}
	if opts.Limits.ConsoleEnabled {
		newConsole(h).mount(h.mux)
	}
	h.mux.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such resource")
	})
	h.mux.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here")
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Router returns the chi router, for tests that walk it.
func (h *Handler) Router() chi.Routes { return h.mux }

// principal is who is calling.
type principal struct {
	name     string
	role     ticketing.Role
	customer string // set: limited to this customer
}

type principalKey struct{}

func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// guard authenticates and authorizes a request for rt, bounds its body,
// and calls rt's handler.
func (h *Handler) guard(rt route) http.Handler {
	limit := rt.maxBody
	if limit == 0 {
		limit = h.opts.Limits.MaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if rt.role == "" {
			rt.handle(w, r)
			return
		}
		p, err := h.authenticate(r)
		if err != nil {
			writeError(h.log, w, r, err)
			return
		}
		if p.role.Rank() < rt.role.Rank() {
			writeError(h.log, w, r, errors.Join(errForbidden, errors.New("this needs the "+string(rt.role)+" role; the token has "+string(p.role))))
			return
		}
		if p.customer != "" && !rt.scoped {
			writeError(h.log, w, r, errors.Join(errForbidden, errors.New("a customer-scoped token cannot use "+rt.method+" "+rt.pattern)))
			return
		}
		rt.handle(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// authenticate resolves "Authorization: Bearer <token>": the bootstrap
// admin token (http.admin_token) or an issued token, looked up by hash.
func (h *Handler) authenticate(r *http.Request) (principal, error) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || secret == "" {
		return principal{}, errUnauthorized
	}
	if h.opts.AdminToken != "" {
		got := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], h.admin[:]) == 1 {
			return principal{name: "admin", role: ticketing.RoleAdmin}, nil
		}
	}
	t, err := h.store.Authenticate(r.Context(), secret)
	if errors.Is(err, ticketing.ErrNotFound) {
		return principal{}, errUnauthorized
	}
	if err != nil {
		return principal{}, err
	}
	return principal{name: t.Name, role: t.Role, customer: t.CustomerID}, nil
}

// healthz says the process is alive; it checks nothing else.
func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is 200 only when every dependency answers within 2 s.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	names := make([]string, 0, len(h.opts.Checks))
	for n := range h.opts.Checks {
		names = append(names, n)
	}
	slices.Sort(names)
	checks := make(map[string]string, len(names))
	ready := true
	for _, n := range names {
		if err := h.opts.Checks[n](ctx); err != nil {
			checks[n] = err.Error()
			ready = false
		} else {
			checks[n] = "ok"
		}
	}
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

func (h *Handler) metrics() http.HandlerFunc {
	return promhttp.HandlerFor(h.opts.Gatherer, promhttp.HandlerOpts{}).ServeHTTP
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
