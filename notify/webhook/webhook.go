// Package webhook delivers notifications as signed JSON POSTs to customer
// webhooks (Channel) and as Slack-compatible messages to the staff chat
// (Chat).
//
// Every customer POST carries (DESIGN "Webhook signature"):
//
//	X-Forewarn-Timestamp: <unix seconds>
//	X-Forewarn-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
//	X-Forewarn-Delivery:  <idempotency key, the same on every retry>
//	X-Forewarn-Event:     ticket.opened | ticket.acknowledged | ticket.resolved | digest
//
// A receiver checks it with Verify (or the recipe in the README). 2xx is
// delivered; 408, 429 and 5xx are retried (Retry-After honoured); any
// other status is permanent for the channel.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/ticketing"
)

// Header names.
const (
	HeaderTimestamp = "X-Forewarn-Timestamp"
	HeaderSignature = "X-Forewarn-Signature"
	HeaderDelivery  = "X-Forewarn-Delivery"
	HeaderEvent     = "X-Forewarn-Event"
)

// Channel posts notifications to the webhook of a customer channel.
type Channel struct {
	client *http.Client
	now    func() time.Time
}

// New returns a Channel; client nil means a client with no overall
// timeout (the dispatcher bounds each attempt), now nil means time.Now.
func New(client *http.Client, now func() time.Time) *Channel {
	if client == nil {
		client = &http.Client{}
	}
	if now == nil {
		now = time.Now
	}
	return &Channel{client: client, now: now}
}

// Sign returns the X-Forewarn-Signature value of body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("missing X-Forewarn-Timestamp or X-Forewarn-Signature")
	ErrStale        = errors.New("timestamp outside the tolerance (replayed or clock skew)")
	ErrBadSignature = errors.New("signature does not match")
)

// Verify checks a received POST: the timestamp is within tolerance of now
// (against replays) and the signature matches the raw body. Compare in
// constant time, as it does.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsv, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if tsv == "" || sig == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsv, 10, 64)
	if err != nil {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

// Send posts m.Body to to.URL, signed with to.Secret (unsigned when the
// channel has no secret).
func (c *Channel) Send(ctx context.Context, to ticketing.Channel, m notify.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to.URL, bytes.NewReader(m.Body))
	if err != nil {
		return notify.Permanent(fmt.Errorf("webhook request: %w", err), 0)
	}
	ts := c.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Forewarn-Webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderDelivery, m.Key)
	req.Header.Set(HeaderEvent, m.Event)
	if to.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(to.Secret, ts, m.Body))
	}
	return post(c.client, req, c.now)
}

// post sends req and sorts the answer.
func post(client *http.Client, req *http.Request, now func() time.Time) error {
	resp, err := client.Do(req)
	if err != nil {
		return notify.Retryable(fmt.Errorf("post to %s: %w", req.URL.Redacted(), err), 0, 0)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err = fmt.Errorf("post to %s: %s: %q", req.URL.Redacted(), resp.Status, bytes.TrimSpace(snippet))
	if code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500 {
		after, _ := notify.ParseRetryAfter(resp.Header.Get("Retry-After"), now())
		return notify.Retryable(err, code, after)
	}
	return notify.Permanent(err, code)
}

// Chat posts staff notifications to a Slack-compatible incoming webhook:
// {"text": "..."}.
type Chat struct {
	url    string
	client *http.Client
	now    func() time.Time
}

// NewChat returns a Chat posting to url.
func NewChat(url string, client *http.Client, now func() time.Time) *Chat {
	if client == nil {
		client = &http.Client{}
	}
	if now == nil {
		now = time.Now
	}
	return &Chat{url: url, client: client, now: now}
}

// Send posts m's text; the channel argument is ignored.
func (c *Chat) Send(ctx context.Context, _ ticketing.Channel, m notify.Message) error {
	body, err := jsonText(m.Text)
	if err != nil {
		return notify.Permanent(err, 0)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return notify.Permanent(fmt.Errorf("chat request: %w", err), 0)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderDelivery, m.Key)
	return post(c.client, req, c.now)
}
