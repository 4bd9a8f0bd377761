package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htemplate "html/template"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	ttemplate "text/template"
	"time"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// The embedded templates: templates/LANG/NAME.txt (text/template, defines
// "subject" and "text") and templates/LANG/NAME.html (html/template,
// defines "html"). NAME is a fault (filter_clogging), "default" (any other
// fault), "digest" (the daily cap's digest) or "staff" (the staff chat, en
// only, text only).
//
//go:embed templates
var embedded embed.FS

// Data is what a template sees. Every field is always set (zero when it
// does not apply), so a template that names a field that does not exist
// fails at start-up (Templates.Check), never at delivery.
type Data struct {
	Event    string // ticketing.EventTicketOpened, ...
	Ref      string // the ticket reference for the customer: "#42"
	Customer ticketing.Customer
	Ticket   ticketing.Ticket // as in the REST API
	Reopened bool             // the fault came back and its ticket reopened
	// What Forewarn already did, for the "what we did" part.
	Acknowledged bool   // our support team took the ticket on
	Assigned     string // a technician's name, "" when none yet
	Callback     bool   // someone will call the customer back (tier rule)
	// Forecast is set for predictive findings (forecast, usage): when the
	// limit will be reached at the current rate.
	Forecast Forecast
	// Incident is set when the ticket belongs to an incident (a storm):
	// one message covers the customer's devices in it.
	Incident IncidentInfo
	Items    []DigestItem // digest: the messages it gathers
	Day      string       // digest: the local day it covers
}

// Forecast says when a predicted limit is reached.
type Forecast struct {
	Set   bool
	At    time.Time
	Days  int // whole days from the message's time, rounded
	Hours int // whole hours, when under two days
}

// IncidentInfo is the storm a ticket belongs to.
type IncidentInfo struct {
	ID    int64
	Fault string
}

// A DigestItem is one message a digest gathers.
type DigestItem struct {
	Ref      string
	Event    string
	Fault    string
	DeviceID string
	Subject  string
}

// newForecast reads the prediction of a ticket's evidence.
func newForecast(ev telemetry.Evidence, now time.Time) Forecast {
	if ev.CrossAt.IsZero() {
		return Forecast{}
	}
	d := max(ev.CrossAt.Sub(now), 0)
	return Forecast{Set: true, At: ev.CrossAt, Days: int((d + 12*time.Hour) / (24 * time.Hour)), Hours: int((d + 30*time.Minute) / time.Hour)}
}

// Templates are the parsed message templates by "lang/name".
type Templates struct {
	text map[string]*ttemplate.Template
	html map[string]*htemplate.Template
}

// LoadTemplates parses the embedded templates and, when dir is set, the
// files of dir in the same layout (they replace embedded ones of the same
// name, or add languages and faults), then checks every one (Check).
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{text: map[string]*ttemplate.Template{}, html: map[string]*htemplate.Template{}}
	sub, _ := fs.Sub(embedded, "templates")
	if err := t.parse(sub, "embedded"); err != nil {
		return nil, err
	}
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("templates_dir: %w", err)
		}
		if err := t.parse(os.DirFS(dir), dir); err != nil {
			return nil, err
		}
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Templates) parse(fsys fs.FS, where string) error {
	files, err := fs.Glob(fsys, "*/*")
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		ext := path.Ext(f)
		key := strings.TrimSuffix(f, ext)
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s/%s: %w", where, f, err))
			continue
		}
		switch ext {
		case ".txt":
			tt, err := ttemplate.New(key).Option("missingkey=error").Parse(string(b))
			if err != nil {
				errs = append(errs, fmt.Errorf("template %s/%s: %w", where, f, err))
				continue
			}
			t.text[key] = tt
		case ".html":
			ht, err := htemplate.New(key).Option("missingkey=error").Parse(string(b))
			if err != nil {
				errs = append(errs, fmt.Errorf("template %s/%s: %w", where, f, err))
				continue
			}
			t.html[key] = ht
		}
	}
	return errors.Join(errs...)
}

// sampleData are the values Check executes every template with: each
// event, with and without the optional parts.
func sampleData() []Data {
	now := time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC)
	tk := ticketing.Ticket{ID: 42, DeviceID: "hp-0001", Model: "heatpump-a2", Site: "Lyon", CustomerID: "c-1", Fault: "filter_clogging",
		Severity: telemetry.SeverityMinor, Status: ticketing.StatusOpen, CustomerVisible: true, Remedy: "Replace the filter.", OpenedAt: now,
		Evidence: telemetry.Evidence{Detector: "forecast", Metric: "filter_dp_pa", Value: 180, Limit: 250, CrossAt: now.Add(72 * time.Hour)}}
	c := ticketing.Customer{ID: "c-1", Name: "Ana Lima", Tier: ticketing.TierPremium, Language: "en", Timezone: "Europe/Paris"}
	var out []Data
	for _, ev := range []string{ticketing.EventTicketOpened, ticketing.EventTicketAcknowledged, ticketing.EventTicketResolved,
		ticketing.EventStaffCritical, ticketing.EventStaffIncident} {
		full := Data{Event: ev, Ref: "#42", Customer: c, Ticket: tk, Reopened: true, Acknowledged: true, Assigned: "Bo", Callback: true,
			Forecast: newForecast(tk.Evidence, now), Incident: IncidentInfo{ID: 7, Fault: tk.Fault}}
		bare := Data{Event: ev, Ref: "#42", Customer: c, Ticket: tk}
		bare.Ticket.Evidence = telemetry.Evidence{}
		out = append(out, full, bare)
	}
	out = append(out, Data{Event: ticketing.EventDigest, Customer: c, Day: "2026-11-22", Items: []DigestItem{
		{Ref: "#42", Event: ticketing.EventTicketOpened, Fault: "filter_clogging", DeviceID: "hp-0001", Subject: "Your heat pump's filter"},
		{Ref: "#43", Event: ticketing.EventTicketResolved, Fault: "overheating", DeviceID: "hp-0002", Subject: "Fixed"}}})
	return out
}

// Check executes every template with sampleData and reports every
// failure: a field that does not exist, a missing "subject" or "text", an
// empty result, a language without its default and digest templates.
func (t *Templates) Check() error {
	var errs []error
	langs := map[string]bool{}
	for key := range t.text {
		langs[path.Dir(key)] = true
	}
	for lang := range langs {
		for _, need := range []string{"default", "digest"} {
			if t.text[lang+"/"+need] == nil {
				errs = append(errs, fmt.Errorf("template %s/%s.txt: missing", lang, need))
			}
		}
	}
	if t.text["en/staff"] == nil {
		errs = append(errs, errors.New("template en/staff.txt: missing"))
	}
	keys := make([]string, 0, len(t.text))
	for k := range t.text {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		name := path.Base(key)
		for _, d := range sampleData() {
			isDigest, isStaff := d.Event == ticketing.EventDigest, strings.HasPrefix(d.Event, "staff.")
			if (name == "digest") != isDigest || (name == "staff") != isStaff {
				continue
			}
			subject, text, html, err := t.execute(key, d)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("template %s (event %s): %w", key, d.Event, err))
			case strings.TrimSpace(subject) == "" || strings.TrimSpace(text) == "":
				errs = append(errs, fmt.Errorf("template %s.txt (event %s): empty subject or text", key, d.Event))
			case t.html[key] != nil && strings.TrimSpace(html) == "":
				errs = append(errs, fmt.Errorf("template %s.html (event %s): empty", key, d.Event))
			}
		}
	}
	for key := range t.html {
		if t.text[key] == nil {
			errs = append(errs, fmt.Errorf("template %s.html: no %s.txt beside it", key, key))
		}
	}
	return errors.Join(errs...)
}

func (t *Templates) execute(key string, d Data) (subject, text, html string, err error) {
	tt := t.text[key]
	var b bytes.Buffer
	if err := tt.ExecuteTemplate(&b, "subject", d); err != nil {
		return "", "", "", err
	}
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := tt.ExecuteTemplate(&b, "text", d); err != nil {
		return "", "", "", err
	}
	text = strings.TrimSpace(b.String()) + "\n"
	if ht := t.html[key]; ht != nil {
		b.Reset()
		if err := ht.ExecuteTemplate(&b, "html", d); err != nil {
			return "", "", "", err
		}
		html = b.String()
	}
	return subject, text, html, nil
}

// Render renders the message name (a fault, "digest" or "staff") in
// language lang, falling back to the language's default template, then
// to English ("pt-BR" tries pt-BR, pt, then en).
func (t *Templates) Render(lang, name string, d Data) (subject, text, html string, err error) {
	for _, l := range langChain(lang) {
		for _, n := range []string{name, "default"} {
			if n == "default" && (name == "digest" || name == "staff") {
				continue
			}
			if t.text[l+"/"+n] != nil {
				return t.execute(l+"/"+n, d)
			}
		}
	}
	return "", "", "", fmt.Errorf("no template for %s in %s or en", name, lang)
}

func langChain(lang string) []string {
	chain := []string{}
	for l := lang; l != ""; {
		chain = append(chain, l)
		i := strings.LastIndex(l, "-")
		if i < 0 {
			break
		}
		l = l[:i]
	}
	return append(chain, "en")
}
