package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/forewarn/forewarn/ticketing"
)

// The support console (issue 8): server-rendered pages under /console/
// that staff work in, signed in with an API token. This file holds its
// routing, sessions and CSRF protection; console_pages.go the pages,
// console_chart.go the telemetry chart, web/ the templates and assets.

// SeriesPoint is one telemetry reading of one metric.
type SeriesPoint struct {
	At    time.Time
	Value float64
}

// TelemetrySeries reads one metric of one device between from and to, in
// time order, for the ticket page's chart. cmd provides one backed by
// InfluxDB. It must honour ctx and return at most about maxPoints points
// (downsampled, keeping peaks, when there are more).
type TelemetrySeries interface {
	Series(ctx context.Context, deviceID, metric string, from, to time.Time, maxPoints int) ([]SeriesPoint, error)
}

// NotificationView is one notification of a ticket, with its delivery
// state, as the ticket page's timeline shows it.
type NotificationView struct {
	At        time.Time // when it was queued
	Event     string    // e.g. ticket.opened
	Channel   string    // webhook, email, mqtt, ...
	Recipient string    // customer id, address or URL (no secrets)
	Status    string    // e.g. pending, delivered, failed, suppressed
	Attempts  int
	LastError string
}

// NotificationLister lists a ticket's notifications, oldest first. It is
// optional: without one the timeline says no notifications are recorded.
type NotificationLister interface {
	TicketNotifications(ctx context.Context, ticketID int64) ([]NotificationView, error)
}

//go:embed web/templates/*.html web/static/*
var webFS embed.FS

const (
	maxFormBytes  = 64 << 10 // a console form: a comment of 4,000 characters and change
	sessionCookie = "fw_session"
	loginCSRF     = "fw_login_csrf"
	consolePrefix = "/console"
)

// console serves the support console.
type console struct {
	h     *Handler
	key   []byte
	ttl   time.Duration
	pages map[string]*template.Template
	now   func() time.Time
	log   *slog.Logger
}

func newConsole(h *Handler) *console {
	key := []byte(h.opts.Limits.SessionKey)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails (crypto/rand, Go 1.24+)
	}
	ttl := h.opts.Limits.SessionTTL
	if ttl <= 0 {
		ttl = DefaultConfig().SessionTTL
	}
	now := h.opts.Now
	if now == nil {
		now = time.Now
	}
	return &console{h: h, key: key, ttl: ttl, pages: parsePages(), now: now, log: h.log.With("component", "console")}
}

// mount registers the console's routes on r.
func (c *console) mount(r chi.Router) {
	static, _ := fs.Sub(webFS, "web/static")
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, consolePrefix+"/", http.StatusSeeOther)
	})
	r.Route(consolePrefix, func(r chi.Router) {
		r.Use(securityHeaders)
		r.Handle("/static/*", http.StripPrefix(consolePrefix+"/static/", cacheStatic(http.FileServerFS(static))))
		r.Get("/login", c.loginPage)
		r.Post("/login", c.login)
		r.Group(func(r chi.Router) {
			r.Use(c.authenticated)
			r.Get("/", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, consolePrefix+"/queue", http.StatusSeeOther)
			})
			r.Post("/logout", c.logout)
			r.Get("/queue", c.queue)
			r.Get("/queue/live", c.queueLive)
			r.Get("/tickets/{id}", c.ticket)
			r.Post("/tickets/{id}/{action}", c.ticketAction)
			r.Get("/incidents", c.incidents)
			r.Get("/incidents/{id}", c.incident)
			r.Post("/incidents/{id}/{action}", c.incidentAction)
			r.Get("/fleet", c.fleet)
			r.Get("/kpis", c.kpis)
		})
	})
}

// securityHeaders keeps the console's pages to their own scripts and
// styles and out of frames.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// A session is a signed-in member of staff. The cookie holds
// "v1.<token id>.<expiry unix>.<nonce>" and its HMAC-SHA256 under the
// session key; nothing is stored on the server. Token id 0 is the
// bootstrap admin (http.admin_token). Each request checks the token again,
// so revoking it ends its sessions.
type session struct {
	payload string
	tokenID int64
	expires time.Time
	who     principal
}

func (c *console) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

func (c *console) newSession(tokenID int64) (cookie string, expires time.Time) {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	expires = c.now().Add(c.ttl).Truncate(time.Second)
	payload := fmt.Sprintf("v1.%d.%d.%s", tokenID, expires.Unix(), b64.EncodeToString(nonce))
	return payload + "." + b64.EncodeToString(c.mac("session", payload)), expires
}

// csrfToken is the session's CSRF token: an HMAC of its payload, so it
// needs no storage and changes with every sign-in.
func (c *console) csrfToken(s session) string {
	return b64.EncodeToString(c.mac("csrf", s.payload))
}

var errNoSession = errors.New("no valid console session")

// readSession checks the session cookie and the token behind it.
func (c *console) readSession(r *http.Request) (session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, errNoSession
	}
	i := strings.LastIndexByte(ck.Value, '.')
	if i < 0 {
		return session{}, errNoSession
	}
	payload, sig := ck.Value[:i], ck.Value[i+1:]
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac("session", payload)) {
		return session{}, errNoSession
	}
	f := strings.Split(payload, ".")
	if len(f) != 4 || f[0] != "v1" {
		return session{}, errNoSession
	}
	id, err1 := strconv.ParseInt(f[1], 10, 64)
	exp, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return session{}, errNoSession
	}
	s := session{payload: payload, tokenID: id, expires: time.Unix(exp, 0)}
	if !c.now().Before(s.expires) {
		return session{}, errNoSession
	}
	if id == 0 {
		if c.h.opts.AdminToken == "" {
			return session{}, errNoSession
		}
		s.who = principal{name: "admin", role: ticketing.RoleAdmin}
		return s, nil
	}
	t, err := c.h.store.GetToken(r.Context(), id)
	if errors.Is(err, ticketing.ErrNotFound) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, err
	}
	if t.RevokedAt != nil || t.CustomerID != "" {
		return session{}, errNoSession
	}
	s.who = principal{name: t.Name, role: t.Role}
	return s, nil
}

type sessionKey struct{}

func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey{}).(session)
	return s
}

// authenticated lets requests with a valid session through; others go to
// the sign-in page (the live endpoint gets 401, so its script can follow).
// Every POST must carry the session's CSRF token and come from an agent
// or admin.
func (c *console) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.readSession(r)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				c.fail(w, r, err)
				return
			}
			if strings.HasSuffix(r.URL.Path, "/live") {
				http.Error(w, "sign in again", http.StatusUnauthorized)
				return
			}
			next := consolePrefix + "/queue"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, consolePrefix+"/login?next="+urlQueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, fmt.Errorf("%w: %w", errBadRequest, err))
				return
			}
			want := c.csrfToken(s)
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(want)) != 1 {
				c.fail(w, r, errors.Join(errForbidden, errors.New("the form's CSRF token is missing or stale; reload the page and try again")))
				return
			}
			if s.who.role.Rank() < ticketing.RoleAgent.Rank() && !strings.HasSuffix(r.URL.Path, "/logout") {
				c.fail(w, r, errors.Join(errForbidden, errors.New("this needs the agent role; you signed in with a "+string(s.who.role)+" token")))
				return
			}
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, s)
		ctx = context.WithValue(ctx, principalKey{}, s.who)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (c *console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, expires time.Time) {
	ck := &http.Cookie{Name: name, Value: value, Path: consolePrefix + "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil}
	if value == "" {
		ck.MaxAge = -1
	} else if !expires.IsZero() {
		ck.Expires = expires
		ck.MaxAge = int(time.Until(expires).Seconds())
	}
	http.SetCookie(w, ck)
}

// loginPage shows the sign-in form. Its CSRF token is double-submitted: a
// cookie and the same value in the form.
func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.readSession(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := make([]byte, 18)
	_, _ = rand.Read(tok)
	csrf := b64.EncodeToString(tok)
	c.setCookie(w, r, loginCSRF, csrf, time.Time{})
	c.render(w, r, status, "login", loginData{page: page{Title: "Sign in", CSRF: csrf}, Next: safeNext(r.FormValue("next")), Error: msg})
}

type loginData struct {
	page
	Next  string
	Error string
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	ck, err := r.Cookie(loginCSRF)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		c.renderLogin(w, r, http.StatusForbidden, "The sign-in form expired. Please try again.")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	var tokenID int64 = -1
	if h := c.h; secret != "" && h.opts.AdminToken != "" {
		got := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], h.admin[:]) == 1 {
			tokenID = 0
		}
	}
	if tokenID < 0 && secret != "" {
		t, err := c.h.store.Authenticate(r.Context(), secret)
		switch {
		case errors.Is(err, ticketing.ErrNotFound):
		case err != nil:
			c.fail(w, r, err)
			return
		case t.CustomerID != "":
			c.renderLogin(w, r, http.StatusForbidden, "This token is limited to one customer; the console is for staff tokens.")
			return
		default:
			tokenID = t.ID
		}
	}
	if tokenID < 0 {
		c.log.Info("console sign-in refused", "remote", r.RemoteAddr)
		c.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid. Check it and try again.")
		return
	}
	value, exp := c.newSession(tokenID)
	c.setCookie(w, r, sessionCookie, value, exp)
	c.setCookie(w, r, loginCSRF, "", time.Time{})
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	c.setCookie(w, r, sessionCookie, "", time.Time{})
	http.Redirect(w, r, consolePrefix+"/login", http.StatusSeeOther)
}

// safeNext keeps redirects after sign-in inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, consolePrefix+"/") && !strings.HasPrefix(next, consolePrefix+"//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return consolePrefix + "/queue"
}

// flash is the confirmation of the action a redirect names (?done=ack,
// &n= tickets changed): fixed texts, so a crafted link cannot put words
// on the page.
func flash(q url.Values) string {
	kind, ok := consoleActions[q.Get("done")]
	if !ok {
		return ""
	}
	msg := actionDone[kind]
	if n, err := strconv.Atoi(q.Get("n")); err == nil && n >= 0 {
		msg += fmt.Sprintf(" %d ticket(s) changed.", n)
	}
	return msg
}

// page is what every console page's template gets.
type page struct {
	Title  string
	Nav    string // the current section: queue, incidents, fleet, kpis
	User   string
	Role   string
	CanAct bool // agent or admin
	CSRF   string
	Flash  string
}

func (c *console) page(r *http.Request, title, nav string) page {
	s := sessionOf(r)
	return page{Title: title, Nav: nav, User: s.who.name, Role: string(s.who.role),
		CanAct: s.who.role.Rank() >= ticketing.RoleAgent.Rank(), CSRF: c.csrfToken(s), Flash: flash(r.URL.Query())}
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 and not half a page.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	t, ok := c.pages[name]
	if !ok {
		c.fail(w, r, fmt.Errorf("no console page %q", name))
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		c.log.Error("render console page failed", "page", name, "err", err)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	page
	Status int
	Detail string
}

// fail answers err as an HTML error page with the status errorStatus
// gives it.
func (c *console) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, detail, internal := errorStatus(err)
	if internal {
		c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	p := page{Title: http.StatusText(status)}
	if s, ok := r.Context().Value(sessionKey{}).(session); ok {
		p = c.page(r, http.StatusText(status), "")
		p.User = s.who.name
	}
	c.render(w, r, status, "error", errorData{page: p, Status: status, Detail: detail})
}
