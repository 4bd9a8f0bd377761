// Package notify delivers the customer and staff notifications that
// package ticketing writes to its outbox in the transaction of each ticket
// change (DESIGN "Notifications").
//
// It owns the Dispatcher (claims due outbox rows with a lease, delivers them
// with retries, exponential backoff with jitter and a dead-letter state, and
// records every attempt), the per-customer Policy (preferred channels in
// order, opt-out, language, time zone, quiet hours, the daily cap and its
// digest, tier rules, one message per customer and incident in a storm), and
// the Templates (per fault and language, checked at start-up). Channels live
// in notify/webhook, notify/email and notify/mqttpush and satisfy Sender.
//
// It sits after ticketing in the flow: it reads the store through the Outbox
// interface, which *ticketing.SQLStore satisfies (asserted in cmd), and
// ticketing never imports it. It does not decide which ticket changes
// concern a customer; ticketing does, when it writes the row.
package notify
