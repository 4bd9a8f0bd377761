package webhook_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/notifytest"
	"github.com/forewarn/forewarn/notify/webhook"
	"github.com/forewarn/forewarn/ticketing"
)

// TestSendStatuses posts to a real loopback receiver that verifies the
// signature: 2xx delivers; 408, 429 and 5xx are retryable (Retry-After
// read); other 4xx are permanent.
func TestSendStatuses(t *testing.T) {
	const secret = "s3cret-0123456789"
	r := notifytest.NewReceiver(t, secret)
	ch := webhook.New(nil, nil)
	to := ticketing.Channel{Type: "webhook", URL: r.URL, Secret: secret}
	msg := notify.Message{Key: "forewarn-1", Event: "ticket.opened", Body: []byte(`{"event":"ticket.opened"}`)}
	for _, tc := range []struct {
		name      string
		status    int
		after     time.Duration
		ok        bool
		retryable bool
	}{
		{"ok", 0, 0, true, false},
		{"throttled", http.StatusTooManyRequests, 7 * time.Second, false, true},
		{"unavailable", http.StatusServiceUnavailable, 0, false, true},
		{"timeout", http.StatusRequestTimeout, 0, false, true},
		{"not found", http.StatusNotFound, 0, false, false},
		{"gone", http.StatusGone, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.FailAlways(tc.status, tc.after)
			err := ch.Send(t.Context(), to, msg)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			de, ok := err.(*notify.DeliveryError)
			require.True(t, ok, "%T %v", err, err)
			require.Equal(t, tc.retryable, de.Retryable)
			require.Equal(t, tc.status, de.StatusCode)
			require.Equal(t, tc.after, de.RetryAfter)
		})
	}
	_, bad := r.Requests()
	require.Zero(t, bad, "every request was correctly signed")
	require.Equal(t, map[string]int{"forewarn-1": 1}, r.Keys())

	// A refused connection is retryable.
	err := ch.Send(t.Context(), ticketing.Channel{URL: "http://127.0.0.1:1/hook"}, msg)
	de, ok := err.(*notify.DeliveryError)
	require.True(t, ok)
	require.True(t, de.Retryable)
}

func TestChatSlackShape(t *testing.T) {
	r := notifytest.NewReceiver(t, "")
	c := webhook.NewChat(r.URL, nil, nil)
	require.NoError(t, c.Send(t.Context(), ticketing.Channel{}, notify.Message{Key: "forewarn-2", Text: "  :red_circle: Critical ticket #1\n"}))
	d := r.Deliveries()
	require.Len(t, d, 1)
	require.Equal(t, map[string]any{"text": ":red_circle: Critical ticket #1"}, d[0].Body)
}
