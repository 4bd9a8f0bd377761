package notify

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

func TestEmbeddedTemplatesCheck(t *testing.T) {
	tpl, err := LoadTemplates("")
	require.NoError(t, err)
	require.NoError(t, tpl.Check())
}

func TestRenderForecastInPlainWords(t *testing.T) {
	tpl, err := LoadTemplates("")
	require.NoError(t, err)
	now := time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
	tk := ticketing.Ticket{ID: 42, DeviceID: "hp-1", Model: "heatpump-a2", Fault: "filter_clogging", Severity: telemetry.SeverityMinor,
		Evidence: telemetry.Evidence{CrossAt: now.Add(71 * time.Hour)}}
	d := Data{Event: ticketing.EventTicketOpened, Ref: "#42", Customer: ticketing.Customer{Name: "Ana"}, Ticket: tk,
		Forecast: newForecast(tk.Evidence, now), Callback: true}
	for _, tc := range []struct {
		lang, subject string
		text          []string
	}{
		{"en", "Your heatpump-a2's filter needs changing soon (#42)", []string{"Hello Ana", "in about 3 days", "replacement filter", "call you", "#42"}},
		{"de", "Der Filter Ihres heatpump-a2 muss bald gewechselt werden (#42)", []string{"Guten Tag Ana", "in etwa 3 Tagen", "Ersatzfilter", "#42"}},
		{"de-AT", "Der Filter Ihres heatpump-a2 muss bald gewechselt werden (#42)", []string{"Ersatzfilter"}},
		{"fr", "Your heatpump-a2's filter needs changing soon (#42)", []string{"Hello Ana"}}, // no French: English
	} {
		t.Run(tc.lang, func(t *testing.T) {
			subject, text, html, err := tpl.Render(tc.lang, "filter_clogging", d)
			require.NoError(t, err)
			require.Equal(t, tc.subject, subject)
			for _, want := range tc.text {
				require.Contains(t, text, want)
			}
			require.Contains(t, html, "<p>")
		})
	}
	// Another fault: the language's default template.
	d.Ticket.Fault, d.Forecast = "overheating", Forecast{}
	subject, text, _, err := tpl.Render("en", "overheating", d)
	require.NoError(t, err)
	require.Equal(t, "We noticed a problem with your heatpump-a2 (#42)", subject)
	require.Contains(t, text, `"overheating"`)
	require.NotContains(t, text, "in about")
}

// TestTemplatesDirOverride: a bad override fails at load, naming the file
// and the field, not at delivery.
func TestTemplatesDirOverride(t *testing.T) {
	for _, tc := range []struct {
		name, file, body, want string
	}{
		{"unknown field", "en/overheating.txt", `{{define "subject"}}{{.Ticket.Colour}}{{end}}{{define "text"}}x{{end}}`, "can't evaluate field Colour"},
		{"no subject", "en/overheating.txt", `{{define "text"}}x{{end}}`, `no template "subject"`},
		{"syntax", "en/overheating.txt", `{{define "subject"}}{{if}}{{end}}`, "en/overheating.txt"},
		{"html without text", "fr/default.html", `{{define "html"}}x{{end}}`, "fr/default.html: no fr/default.txt"},
		{"language without digest", "fr/default.txt", `{{define "subject"}}s{{end}}{{define "text"}}t{{end}}`, "fr/digest.txt: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(tc.file)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.body), 0o600))
			_, err := LoadTemplates(dir)
			require.ErrorContains(t, err, tc.want)
		})
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "en"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "en", "overheating.txt"),
		[]byte(`{{define "subject"}}Too hot: {{.Ticket.DeviceID}}{{end}}{{define "text"}}Cooling it down. {{.Ref}}{{end}}`), 0o600))
	tpl, err := LoadTemplates(dir)
	require.NoError(t, err)
	subject, _, _, err := tpl.Render("en", "overheating", Data{Ref: "#1", Ticket: ticketing.Ticket{DeviceID: "hp-9"}})
	require.NoError(t, err)
	require.Equal(t, "Too hot: hp-9", subject)
}

// TestFaultTemplatesSayWhatWeDid: each fault with its own template tells the
// customer, in their language, what we noticed, when (forecasts), and what
// we already did; the resolution says it is fixed.
func TestFaultTemplatesSayWhatWeDid(t *testing.T) {
	tpl, err := LoadTemplates("")
	require.NoError(t, err)
	now := time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		fault, lang, model string
		opened, resolved   []string
	}{
		{"battery_low", "en", "waterpump-p1", []string{"backup battery", "in about 3 days", "replacement battery", "#7"}, []string{"holds its charge"}},
		{"battery_low", "de", "waterpump-p1", []string{"Notstrombatterie", "in etwa 3 Tagen zu schwach", "Ersatzbatterie"}, []string{"hält wieder"}},
		{"connector_overheat", "en", "evcharger-e1", []string{"charging socket", "booked a technician", "#7"}, []string{"normal temperature"}},
		{"connector_overheat", "de", "evcharger-e1", []string{"Ladebuchse", "Techniker gebucht"}, []string{"normal warm"}},
		{"scale_buildup", "en", "waterheater-w1", []string{"Limescale", "descaling visit", "#7"}, []string{"normal speed"}},
		{"scale_buildup", "de", "waterheater-w1", []string{"Kalk", "Entkalken"}, []string{"normaler Zeit"}},
	} {
		t.Run(tc.fault+"/"+tc.lang, func(t *testing.T) {
			tk := ticketing.Ticket{ID: 7, DeviceID: "dev-1", Model: tc.model, Fault: tc.fault, Severity: telemetry.SeverityMinor,
				Evidence: telemetry.Evidence{CrossAt: now.Add(71 * time.Hour)}}
			d := Data{Event: ticketing.EventTicketOpened, Ref: "#7", Ticket: tk, Forecast: newForecast(tk.Evidence, now)}
			if tc.fault != "battery_low" {
				d.Forecast = Forecast{}
			}
			subject, text, html, err := tpl.Render(tc.lang, tc.fault, d)
			require.NoError(t, err)
			require.Contains(t, subject, "#7")
			for _, want := range tc.opened {
				require.Contains(t, text, want)
			}
			require.NotContains(t, text, tc.fault, "written for a person, not with the fault's id")
			require.Contains(t, html, "<b>")
			d.Event = ticketing.EventTicketResolved
			_, text, _, err = tpl.Render(tc.lang, tc.fault, d)
			require.NoError(t, err)
			for _, want := range tc.resolved {
				require.Contains(t, text, want)
			}
		})
	}
}
