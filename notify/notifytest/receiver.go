// Package notifytest holds test receivers for notify's channels: a real
// HTTP server (on loopback) that verifies the webhook signature, records
// every delivery and fails on demand.
package notifytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/forewarn/forewarn/notify/webhook"
)

// A Delivery is one POST the Receiver accepted.
type Delivery struct {
	Key   string // X-Forewarn-Delivery
	Event string
	Body  map[string]any
	Raw   []byte
}

// Receiver is a webhook endpoint for tests.
type Receiver struct {
	URL    string
	Secret string

	mu       sync.Mutex
	next     []int // statuses to answer the next requests with
	always   int   // when next is empty: 0 = 200
	after    string
	got      []Delivery
	requests int
	bad      int // signature failures
	seen     map[string]int
	delay    time.Duration
}

// SetDelay makes every answer wait d (a slow receiver, to kill a sender
// mid-delivery).
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// NewReceiver starts a receiver for t with secret ("" for the staff chat:
// no signature checked).
func NewReceiver(t testing.TB, secret string) *Receiver {
	r := &Receiver{Secret: secret, seen: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hook"
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	delay := r.delay
	r.mu.Unlock()
	time.Sleep(delay) // a slow receiver; the request has fully arrived
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.Secret != "" {
		if err := webhook.Verify(r.Secret, req.Header, raw, time.Now(), 5*time.Minute); err != nil {
			r.bad++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	status := r.always
	if len(r.next) > 0 {
		status, r.next = r.next[0], r.next[1:]
	}
	if status != 0 && status != http.StatusOK {
		if r.after != "" && status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", r.after)
		}
		http.Error(w, "failing on demand", status)
		return
	}
	d := Delivery{Key: req.Header.Get(webhook.HeaderDelivery), Event: req.Header.Get(webhook.HeaderEvent), Raw: raw}
	_ = json.Unmarshal(raw, &d.Body)
	r.got = append(r.got, d)
	r.seen[d.Key]++
	w.WriteHeader(http.StatusNoContent)
}

// FailNext answers the next requests with these statuses.
func (r *Receiver) FailNext(statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next = append(r.next, statuses...)
}

// FailAlways answers every request with status (0 or 200: accept); a 429
// carries Retry-After: retryAfter when it is set.
func (r *Receiver) FailAlways(status int, retryAfter time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.always = status
	r.after = ""
	if retryAfter > 0 {
		r.after = strconv.Itoa(int(retryAfter / time.Second))
	}
}

// Deliveries returns the accepted POSTs, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Keys returns how often each idempotency key was accepted.
func (r *Receiver) Keys() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// Requests returns how many requests arrived, and how many of them had a
// bad signature.
func (r *Receiver) Requests() (all, badSignature int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.bad
}
