package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/ticketing"
)

// TestConsoleBrowserIntegration drives the support console in a real
// headless Chromium against the whole pipeline (Mosquitto, forewarn serve,
// InfluxDB): a simulated fault opens a ticket; staff sign in with an agent
// token, see it in the queue, see a second fault's ticket appear without a
// reload, open the first, see its chart drawn from InfluxDB, acknowledge it,
// and see its status change in the queue. Screenshots of the queue and of
// the ticket page, at laptop and phone widths, are test artifacts
// ($FOREWARN_TEST_ARTIFACTS, else a temporary directory; paths logged).
func TestConsoleBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto, influxd and chromium (run make test)")
	}
	t.Parallel()
	in := startServe(t, "  flush_interval: 100ms")
	secret := issueAgentToken(t, in, "ana")

	// A simulated fault: hp-web-1 overheats (above 60 for over a minute of event time).
	pub := dialPublisher(t, in)
	base := time.Now().Add(-30 * time.Minute).Truncate(time.Second).UTC()
	overheat := func(device string, from time.Time) {
		for i, v := range []float64{41, 42, 44, 43, 45, 62, 66, 71, 74, 77, 79, 80, 81, 82} {
			ts := from.Add(time.Duration(i) * 10 * time.Second).Format(time.RFC3339)
			publish(t, pub, in.prefix+"/"+device+"/telemetry", fmt.Sprintf(`{"ts":%q,"model":"heatpump-a2","fw":"1.4.2","metrics":{"supply_temp_c":%v}}`, ts, v))
		}
	}
	overheat("hp-web-1", base)
	first := waitTicket(t, in, "hp-web-1")
	require.Eventually(t, func() bool { return len(in.influxPoints(t)) >= 14 }, 20*time.Second, 100*time.Millisecond, "readings reach InfluxDB")

	ctx := testenv.Browser(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	artifacts := testenv.ArtifactDir(t)
	shoot := func(name string, width, height int64) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(width, height)))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		path := filepath.Join(artifacts, name)
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot: %s", path)
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	}
	row := func(id int64) string { return `#queue tr[data-id="` + strconv.FormatInt(id, 10) + `"]` }
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}

	// Sign in with the agent token.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(in.http+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), secret),
		chromedp.Click(chromedp.CSS(`form.stack button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(first.ID))),
	))
	require.Contains(t, text(row(first.ID)), "overheating")
	require.Contains(t, text(row(first.ID)), "open")
	require.Contains(t, text(row(first.ID)+" time.due"), "due in")

	// A second fault appears in the queue without a full reload.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__sameDocument = true`))
	require.NoError(t, err)
	overheat("hp-web-2", base.Add(5*time.Minute))
	second := waitTicket(t, in, "hp-web-2")
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row(second.ID)))))
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__sameDocument === true`))
	require.NoError(t, err)
	require.True(t, same, "the row came in by the live update, not a page load")
	require.Contains(t, text("#counts"), "2 tickets")
	requireLabelled(t, ctx)
	// Keyboard: j moves to the next ticket, k back.
	require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent("j"), chromedp.KeyEvent("j"), chromedp.KeyEvent("k")))
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.closest("tr").getAttribute("data-id")`))
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(first.ID, 10), focused, "j, j, k lands on the first ticket")
	shoot("queue-laptop.png", 1280, 900)
	shoot("queue-phone.png", 375, 812)

	// Open the first ticket: evidence, and the chart from InfluxDB with the limit line.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row(first.ID)+" a.row-link")),
		chromedp.WaitVisible(chromedp.CSS("#chart svg.chart")),
	))
	require.Contains(t, text("main h1"), "overheating on hp-web-1")
	require.Contains(t, text(".evidence"), "above the limit of 60")
	points, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#chart polyline.series"), "points"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(strings.Fields(points.Value)), 10, "the chart draws the readings read back from InfluxDB")
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#chart line.limit"))))
	require.Contains(t, text("#chart"), "limit 60")
	require.Contains(t, text("#h-context + dl"), "heatpump-a2")
	requireLabelled(t, ctx)
	shoot("ticket-laptop.png", 1280, 900)
	shoot("ticket-phone.png", 375, 812)

	// Acknowledge it; the page says so, and so does the queue.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("ack")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	))
	require.Equal(t, "Acknowledged.", text(".flash"))
	require.Equal(t, "acknowledged", text("#ticket-status"))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav a[href="/console/queue"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(first.ID))),
	))
	require.Contains(t, text(row(first.ID)), "acknowledged")
	require.Contains(t, text(row(second.ID)), "open")

	// Fleet and KPIs reflect the two tickets and the acknowledgement.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav a[href="/console/fleet"]`)),
		chromedp.WaitVisible(chromedp.CSS("#h-fw")),
	))
	require.Contains(t, text(".tiles"), "open tickets on 2 devices")
	require.Contains(t, text("#h-fw + .table-wrap"), "1.4.2")
	shoot("fleet-laptop.png", 1280, 900)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav a[href="/console/kpis"]`)),
		chromedp.WaitVisible(chromedp.CSS("#h-rules")),
	))
	require.Contains(t, text("#h-rules + .table-wrap"), "supply_temp_c/threshold")
	require.Contains(t, text(".tiles"), "1 acknowledged")
	shoot("kpis-laptop.png", 1280, 900)

	// The REST API agrees, and the audit trail names the signed-in token.
	var got ticketing.Ticket
	require.Equal(t, http.StatusOK, in.get(t, fmt.Sprintf("/api/v1/tickets/%d", first.ID), &got))
	require.Equal(t, ticketing.StatusAcknowledged, got.Status)
	var audit struct {
		Items []ticketing.AuditEntry `json:"items"`
	}
	require.Equal(t, http.StatusOK, in.get(t, fmt.Sprintf("/api/v1/tickets/%d/audit", first.ID), &audit))
	require.Equal(t, "ana", audit.Items[len(audit.Items)-1].Actor)
}

// requireLabelled checks that every form control on the page has a label.
func requireLabelled(t *testing.T, ctx context.Context) {
	t.Helper()
	unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(
		'input:not([type=hidden]), select, textarea')).filter(e => e.labels.length === 0).map(e => e.outerHTML)`))
	require.NoError(t, err)
	require.Empty(t, unlabelled, "form controls without a label")
}

// issueAgentToken issues an agent token over the REST API as the admin.
func issueAgentToken(t *testing.T, in *instance, name string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, in.http+"/api/v1/tokens", strings.NewReader(fmt.Sprintf(`{"name":%q,"role":"agent"}`, name)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var out struct {
		Secret string `json:"secret"`
	}
	require.NoError(t, jsonDecode(resp, &out))
	return out.Secret
}

// waitTicket waits for the open ticket of device and returns it.
func waitTicket(t *testing.T, in *instance, device string) ticketing.Ticket {
	t.Helper()
	var found ticketing.Ticket
	require.Eventually(t, func() bool {
		for _, tk := range in.openTickets(t) {
			if tk.DeviceID == device {
				found = tk
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "a ticket for %s", device)
	return found
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
