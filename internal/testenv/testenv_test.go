package testenv_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
)

const wait = 10 * time.Second

func TestFreePort(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	require.Positive(t, port)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err, "the port FreePort returned should be bindable")
	require.NoError(t, l.Close())
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(mod), "module github.com/forewarn/forewarn")
}

func TestMosquittoIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto; skipped under -short")
	}
	t.Parallel()

	b := testenv.Mosquitto(t)
	require.Equal(t, "127.0.0.1", b.Host)
	require.NotEqual(t, 1883, b.Port, "must not be the system broker")
	require.Equal(t, fmt.Sprintf("tcp://127.0.0.1:%d", b.Port), b.URL)

	prefix := "testenv/" + t.Name()
	roundTrip, retained, queued := prefix+"/roundtrip", prefix+"/retained", prefix+"/queued"

	// Round trip through the broker.
	got := make(chan mqtt.Message, 10)
	c := connect(t, b.URL, "testenv-rt", true, nil)
	subscribe(t, c, roundTrip, got)
	publish(t, c, roundTrip, "hello", false)
	requireMessage(t, got, roundTrip, "hello", false)

	// A persistent session with a QoS 1 subscription, then offline.
	durable := connect(t, b.URL, "testenv-durable", false, nil)
	subscribe(t, durable, queued, nil)
	durable.Disconnect(250)

	// Published before the broker stops: a retained message, and one queued
	// for the offline persistent session.
	publish(t, c, retained, "kept", true)
	publish(t, c, queued, "queued", false)
	c.Disconnect(250)

	b.Stop(t)
	b.Stop(t) // idempotent
	_, err := net.DialTimeout("tcp", b.Addr(), time.Second)
	require.Error(t, err, "the broker should be gone after Stop")

	b.Start(t)
	b.Start(t) // no-op while running

	// The persistent session survived: its queued message is delivered on
	// reconnect, without subscribing again.
	gotQueued := make(chan mqtt.Message, 10)
	connect(t, b.URL, "testenv-durable", false, gotQueued)
	requireMessage(t, gotQueued, queued, "queued", false)

	// The retained message survived.
	gotRetained := make(chan mqtt.Message, 10)
	c2 := connect(t, b.URL, "testenv-after", true, nil)
	subscribe(t, c2, retained, gotRetained)
	requireMessage(t, gotRetained, retained, "kept", true)
}

// connect opens a paho client that is disconnected in t.Cleanup. Messages
// that arrive with no subscription handler (a resumed session) go to
// unrouted, if not nil.
func connect(t *testing.T, brokerURL, id string, clean bool, unrouted chan<- mqtt.Message) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(id).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectTimeout(wait)
	if unrouted != nil {
		opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { unrouted <- m })
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(wait), "connect %s: timed out", id)
	require.NoError(t, tok.Error(), "connect %s", id)
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

func subscribe(t *testing.T, c mqtt.Client, topic string, got chan<- mqtt.Message) {
	t.Helper()
	var h mqtt.MessageHandler
	if got != nil {
		h = func(_ mqtt.Client, m mqtt.Message) { got <- m }
	}
	tok := c.Subscribe(topic, 1, h)
	require.True(t, tok.WaitTimeout(wait), "subscribe %s: timed out", topic)
	require.NoError(t, tok.Error(), "subscribe %s", topic)
}

func publish(t *testing.T, c mqtt.Client, topic, payload string, retain bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retain, payload)
	require.True(t, tok.WaitTimeout(wait), "publish %s: timed out", topic)
	require.NoError(t, tok.Error(), "publish %s", topic)
}

func requireMessage(t *testing.T, got <-chan mqtt.Message, topic, payload string, retained bool) {
	t.Helper()
	select {
	case m := <-got:
		require.Equal(t, topic, m.Topic())
		require.Equal(t, payload, string(m.Payload()))
		require.Equal(t, retained, m.Retained(), "retained flag")
	case <-time.After(wait):
		t.Fatalf("no message on %s within %s", topic, wait)
	}
}

func TestInfluxDBIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts influxd; skipped under -short")
	}
	t.Parallel()

	db := testenv.InfluxDB(t)
	require.True(t, strings.HasPrefix(db.URL, "http://127.0.0.1:"), db.URL)
	require.Equal(t, "forewarn", db.Database)
	require.Equal(t, "forewarn/autogen", db.Bucket)
	require.NotEmpty(t, db.Org)
	require.Empty(t, db.Token)

	const value = "12345.678"
	line := fmt.Sprintf("testenv_probe,test=%s value=%s %d", t.Name(), value, time.Now().UnixNano())
	status, body, err := influxPost(db, "/api/v2/write?"+url.Values{
		"bucket": {db.Bucket}, "org": {db.Org}, "precision": {"ns"},
	}.Encode(), "text/plain; charset=utf-8", line)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status, body)

	requireValue := func(msg string) {
		t.Helper()
		var last string
		require.Eventually(t, func() bool {
			last = query(db)
			return strings.Contains(last, value)
		}, wait, 50*time.Millisecond, "%s: %s not in Flux result; last response:\n%s", msg, value, lazy{&last})
	}
	requireValue("after write")

	db.Stop(t)
	db.Stop(t) // idempotent
	_, _, err = influxPost(db, "/query", "application/x-www-form-urlencoded", "q=SHOW+DATABASES")
	require.Error(t, err, "influxd should be gone after Stop")

	db.Start(t)
	db.Start(t) // no-op while running
	requireValue("after restart")
}

// lazy formats as the string it points to when the message is built, after
// require.Eventually gave up.
type lazy struct{ s *string }

func (l lazy) String() string { return *l.s }

// query runs the Flux query through the v2 compat API and returns the CSV,
// or the error text: it is called inside require.Eventually.
func query(db *testenv.Influx) string {
	flux := fmt.Sprintf(`from(bucket:%q) |> range(start:-1h) |> filter(fn: (r) => r._measurement == "testenv_probe")`, db.Bucket)
	status, body, err := influxPost(db, "/api/v2/query?"+url.Values{"org": {db.Org}}.Encode(), "application/vnd.flux", flux)
	if err != nil {
		return err.Error()
	}
	if status != http.StatusOK {
		return fmt.Sprintf("status %d: %s", status, body)
	}
	return body
}

func influxPost(db *testenv.Influx, path, contentType, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, db.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/csv")
	if db.Token != "" {
		req.Header.Set("Authorization", "Token "+db.Token)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestBrowserIntegration starts Chromium, renders a page, and checks that
// closing it leaves no process behind.
func TestBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs chromium (run make test)")
	}
	t.Parallel()
	profile := t.TempDir()
	t.Run("render", func(t *testing.T) {
		ctx := testenv.BrowserWithProfile(t, profile)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("data:text/html,<title>forewarn</title><p>hello</p>")))
		title, err := chromedp.Run(ctx, chromedp.Title())
		require.NoError(t, err)
		require.Equal(t, "forewarn", title)
		require.NotEmpty(t, testenv.ProfileProcesses(profile), "the browser runs with its own profile")
	})
	require.Empty(t, testenv.ProfileProcesses(profile), "cleanup stopped every chromium process")
}
