package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// FetchTickets reads every ticket (any status) from Forewarn's REST API at
// base (e.g. http://127.0.0.1:8080), following the list's cursor.
func FetchTickets(ctx context.Context, client *http.Client, base, token string) ([]Ticket, error) {
	var out []Ticket
	cursor := ""
	for page := 0; ; page++ {
		if page > 100_000 {
			return nil, fmt.Errorf("list tickets: more than %d pages", page)
		}
		q := url.Values{"limit": {"500"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		u := strings.TrimRight(base, "/") + "/api/v1/tickets?" + q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("list tickets: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("list tickets: %w", err)
		}
		var body struct {
			Items []ticketing.Ticket `json:"items"`
			Next  string             `json:"next"`
		}
		err = decodeResponse(resp, &body)
		if err != nil {
			return nil, fmt.Errorf("list tickets from %s: %w", base, err)
		}
		for _, tk := range body.Items {
			out = append(out, Ticket{ID: tk.ID, Device: telemetry.DeviceID(tk.DeviceID), Fault: tk.Fault, OpenedAt: tk.OpenedAt})
		}
		if body.Next == "" {
			return out, nil
		}
		cursor = body.Next
	}
}

func decodeResponse(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
