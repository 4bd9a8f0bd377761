package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/notify/webhook"
)

// A receiver checks each POST with Verify before trusting it, and then
// drops deliveries whose X-Forewarn-Delivery it has seen.
func ExampleVerify() {
	const secret = "the-customer-secret-0123"
	seen := map[string]bool{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if key := r.Header.Get(webhook.HeaderDelivery); !seen[key] {
			seen[key] = true
			fmt.Println("new notification:", string(body))
		}
		w.WriteHeader(http.StatusNoContent)
	})

	body := `{"event":"ticket.opened"}`
	ts := time.Now().Unix()
	req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, []byte(body)))
	req.Header.Set(webhook.HeaderDelivery, "forewarn-1")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// new notification: {"event":"ticket.opened"}
	// 204
}
