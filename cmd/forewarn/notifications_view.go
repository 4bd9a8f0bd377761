package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/forewarn/forewarn/httpapi"
	"github.com/forewarn/forewarn/ticketing"
)

// ticketNotifications lets the console's ticket timeline show the ticket's
// notifications and their delivery status (httpapi.NotificationLister over
// the outbox).
type ticketNotifications struct{ store *ticketing.SQLStore }

var _ httpapi.NotificationLister = ticketNotifications{}

// maxTimelineNotifications bounds what one ticket page reads.
const maxTimelineNotifications = 200

func (tn ticketNotifications) TicketNotifications(ctx context.Context, ticketID int64) ([]httpapi.NotificationView, error) {
	ns, _, err := tn.store.ListNotifications(ctx, ticketing.NotificationFilter{TicketID: ticketID, Limit: maxTimelineNotifications})
	if err != nil {
		return nil, fmt.Errorf("list notifications of ticket %d: %w", ticketID, err)
	}
	return notificationViews(ns), nil
}

// notificationViews maps outbox rows (newest first, as the store lists
// them) to timeline entries, oldest first. The recipient is the customer
// id or "staff", never an address or a secret.
func notificationViews(ns []ticketing.Notification) []httpapi.NotificationView {
	out := make([]httpapi.NotificationView, 0, len(ns))
	for _, n := range slices.Backward(ns) {
		v := httpapi.NotificationView{
			At: n.CreatedAt, Event: n.Event, Channel: n.Channel, Recipient: n.CustomerID,
			Status: string(n.Status), Attempts: n.AttemptCount, LastError: n.Note,
		}
		if n.Audience == "staff" {
			v.Recipient = "staff"
		}
		if k := len(n.Attempts); k > 0 {
			last := n.Attempts[k-1]
			if v.Channel == "" {
				v.Channel = last.Channel
			}
			if last.Error != "" {
				v.LastError = last.Error
			}
		}
		out = append(out, v)
	}
	return out
}
