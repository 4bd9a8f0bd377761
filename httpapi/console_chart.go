package httpapi

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/forewarn/forewarn/ticketing"
)

// The ticket page's chart is SVG drawn here, on the server, from the
// metric's telemetry in InfluxDB: no chart library and no script.

const (
	chartW, chartH         = 800.0, 280.0
	padL, padR, padT, padB = 64.0, 16.0, 16.0, 40.0
	chartBefore            = 6 * time.Hour // telemetry read before the ticket opened
	chartAfter             = 6 * time.Hour // and after its latest raise
	chartTimeout           = 3 * time.Second
	maxForecastSpan        = 14 * 24 * time.Hour // a forecast crossing further out is drawn to the edge
)

// chartWindow is the telemetry window of ticket t's chart at now.
func chartWindow(t ticketing.Ticket, now time.Time) (from, to time.Time) {
	from = t.OpenedAt.Add(-chartBefore)
	if s := t.Evidence.Since; !s.IsZero() && s.Before(t.OpenedAt) {
		from = s.Add(-chartBefore)
	}
	to = t.LastRaisedAt.Add(chartAfter)
	if t.ClearedAt != nil && t.ClearedAt.Add(time.Hour).After(to) {
		to = t.ClearedAt.Add(time.Hour)
	}
	if to.After(now) {
		to = now
	}
	if !to.After(from) {
		to = from.Add(time.Minute)
	}
	return from, to
}

// chart reads ticket t's metric and draws it; failures become a sentence
// in place of the chart, never a failed page.
func (c *console) chart(r *http.Request, t ticketing.Ticket) template.HTML {
	metric := t.Evidence.Metric
	if metric == "" {
		return chartNote("This finding has no metric to chart.")
	}
	if c.h.opts.Series == nil {
		return chartNote("No telemetry source is configured, so there is no chart.")
	}
	from, to := chartWindow(t, c.now())
	ctx, cancel := context.WithTimeout(r.Context(), chartTimeout)
	defer cancel()
	pts, err := c.h.opts.Series.Series(ctx, t.DeviceID, metric, from, to, chartMaxPoints)
	if err != nil {
		c.log.Warn("read telemetry for the chart failed", "ticket_id", t.ID, "device_id", t.DeviceID, "err", err)
		return chartNote("The telemetry could not be read from InfluxDB: " + err.Error())
	}
	return drawChart(t, pts)
}

func chartNote(s string) template.HTML {
	return template.HTML(`<p class="chart-note">` + template.HTMLEscapeString(s) + `</p>`)
}

// drawChart renders pts of t's metric with the limit and, for forecast
// findings, the forecast line from the latest raise to the predicted
// crossing.
func drawChart(t ticketing.Ticket, pts []SeriesPoint) template.HTML {
	ev := t.Evidence
	metric := strings.ReplaceAll(ev.Metric, "_", " ")
	if len(pts) == 0 {
		return chartNote(fmt.Sprintf("InfluxDB holds no %s readings of %s around this finding.", metric, t.DeviceID))
	}
	forecast := (ev.Detector == "forecast" || ev.Detector == "usage") && !ev.CrossAt.IsZero()
	// The ranges cover the readings, the raise, the limit and the forecast.
	x0, x1 := pts[0].At, pts[len(pts)-1].At
	y0, y1 := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		y0, y1 = math.Min(y0, p.Value), math.Max(y1, p.Value)
	}
	extendX := func(at time.Time) {
		if at.IsZero() {
			return
		}
		if at.Before(x0) {
			x0 = at
		}
		if at.After(x1) {
			x1 = at
		}
	}
	extendX(t.LastRaisedAt)
	hasLimit := ev.Limit != 0 || ev.Detector == "threshold" || forecast
	if hasLimit {
		y0, y1 = math.Min(y0, ev.Limit), math.Max(y1, ev.Limit)
	}
	var fcFrom, fcTo time.Time
	var fcV0 float64
	if forecast {
		fcFrom, fcV0 = t.LastRaisedAt, ev.Expected
		if fcV0 == 0 {
			fcV0 = ev.Value
		}
		fcTo = ev.CrossAt
		if fcTo.Sub(fcFrom) > maxForecastSpan {
			fcTo = fcFrom.Add(maxForecastSpan)
		}
		extendX(fcTo)
		y0, y1 = math.Min(y0, fcV0), math.Max(y1, fcV0)
	}
	if !x1.After(x0) {
		x1 = x0.Add(time.Minute)
	}
	if y1-y0 < 1e-9 {
		y0, y1 = y0-1, y1+1
	}
	pad := (y1 - y0) * 0.08
	y0, y1 = y0-pad, y1+pad
	span := x1.Sub(x0)
	sx := func(at time.Time) float64 {
		return padL + (chartW-padL-padR)*float64(at.Sub(x0))/float64(span)
	}
	sy := func(v float64) float64 { return padT + (chartH-padT-padB)*(1-(v-y0)/(y1-y0)) }

	var b strings.Builder
	title := fmt.Sprintf("%s of %s", metric, t.DeviceID)
	desc := fmt.Sprintf("%d readings from %s to %s, between %s and %s.", len(pts),
		pts[0].At.UTC().Format("2006-01-02 15:04 UTC"), pts[len(pts)-1].At.UTC().Format("2006-01-02 15:04 UTC"),
		num(minOf(pts)), num(maxOf(pts)))
	if hasLimit {
		desc += fmt.Sprintf(" The limit is %s.", num(ev.Limit))
	}
	if forecast {
		desc += fmt.Sprintf(" The forecast reaches it at %s.", ev.CrossAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH)
	fmt.Fprintf(&b, `<title id="chart-title">%s</title><desc id="chart-desc">%s</desc>`, esc(title), esc(desc))
	// Axes and grid: 5 value ticks, 5 time ticks.
	fmt.Fprintf(&b, `<g class="axis">`)
	for i := 0; i <= 4; i++ {
		v := y0 + (y1-y0)*float64(i)/4
		y := sy(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, esc(num(round3(v))))
	}
	layout := "15:04"
	switch {
	case span > 36*time.Hour:
		layout = "01-02 15:04"
	case span < 30*time.Minute:
		layout = "15:04:05"
	}
	for i := 0; i <= 4; i++ {
		at := x0.Add(time.Duration(float64(span) * float64(i) / 4))
		anchor := "middle"
		if i == 0 {
			anchor = "start"
		} else if i == 4 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, sx(at), chartH-padB+18, anchor, at.UTC().Format(layout))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">UTC</text>`, chartW-padR, chartH-4)
	fmt.Fprintf(&b, `</g>`)
	// The raise.
	if !t.LastRaisedAt.IsZero() {
		x := sx(t.LastRaisedAt)
		fmt.Fprintf(&b, `<line class="raised" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, x, x, padT, chartH-padB)
		fmt.Fprintf(&b, `<text class="raised-label" x="%.1f" y="%.1f">raised</text>`, x+4, padT+12)
	}
	if hasLimit {
		y := sy(ev.Limit)
		fmt.Fprintf(&b, `<line class="limit" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text class="limit-label" x="%.1f" y="%.1f" text-anchor="end">limit %s</text>`, chartW-padR-4, y-5, esc(num(ev.Limit)))
	}
	// The readings.
	b.WriteString(`<polyline class="series" points="`)
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", sx(p.At), sy(p.Value))
	}
	b.WriteString(`"/>`)
	if len(pts) == 1 {
		fmt.Fprintf(&b, `<circle class="series-dot" cx="%.1f" cy="%.1f" r="3"/>`, sx(pts[0].At), sy(pts[0].Value))
	}
	if forecast {
		v1 := ev.Limit
		if !fcTo.Equal(ev.CrossAt) { // clipped: where the trend is at the edge
			frac := float64(fcTo.Sub(fcFrom)) / float64(ev.CrossAt.Sub(fcFrom))
			v1 = fcV0 + (ev.Limit-fcV0)*frac
		}
		fmt.Fprintf(&b, `<line class="forecast" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, sx(fcFrom), sy(fcV0), sx(fcTo), sy(v1))
		fmt.Fprintf(&b, `<text class="forecast-label" x="%.1f" y="%.1f" text-anchor="end">forecast</text>`, sx(fcTo)-4, sy(v1)+14)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text in it went through esc
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func round3(v float64) float64 {
	if v == 0 {
		return 0
	}
	mag := math.Pow(10, math.Floor(math.Log10(math.Abs(v)))-2)
	return math.Round(v/mag) * mag
}

func minOf(pts []SeriesPoint) float64 {
	m := math.Inf(1)
	for _, p := range pts {
		m = math.Min(m, p.Value)
	}
	return m
}

func maxOf(pts []SeriesPoint) float64 {
	m := math.Inf(-1)
	for _, p := range pts {
		m = math.Max(m, p.Value)
	}
	return m
}
