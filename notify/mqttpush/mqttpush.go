// Package mqttpush delivers notifications to companion apps over MQTT:
// the JSON body (as a webhook's) is published at QoS 1 to
// customers/{customer_id}/notifications (notify.mqtt_topic), not retained.
// The app deduplicates by idempotency_key: QoS 1 may deliver twice.
package mqttpush

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/ticketing"
)

// Options say which broker to publish to.
type Options struct {
	URL, ClientID, Username, Password string
	Topic                             string // with {customer_id}
	ConnectTimeout                    time.Duration
}

// Channel publishes notifications; it connects on first use and
// reconnects by itself.
type Channel struct {
	opts   Options
	client mqtt.Client
}

// New returns a Channel; nothing connects until Send.
func New(o Options) *Channel {
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	co := mqtt.NewClientOptions().AddBroker(o.URL).SetClientID(o.ClientID).SetUsername(o.Username).SetPassword(o.Password).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(o.ConnectTimeout).SetConnectRetry(false)
	return &Channel{opts: o, client: mqtt.NewClient(co)}
}

// Topic is the push topic of customer id.
func (c *Channel) Topic(id string) string {
	return strings.ReplaceAll(c.opts.Topic, "{customer_id}", id)
}

// Send publishes m.Body at QoS 1 and waits for the broker's PUBACK.
func (c *Channel) Send(ctx context.Context, _ ticketing.Channel, m notify.Message) error {
	if m.CustomerID == "" {
		return notify.Permanent(errors.New("mqtt push: no customer"), 0)
	}
	if !c.client.IsConnectionOpen() {
		if c.client.IsConnected() { // paho is reconnecting by itself
			return notify.Retryable(fmt.Errorf("mqtt push: connection to %s lost, reconnecting", c.opts.URL), 0, 0)
		}
		tok := c.client.Connect()
		if err := wait(ctx, tok); err != nil {
			return notify.Retryable(fmt.Errorf("mqtt push: connect %s: %w", c.opts.URL, err), 0, 0)
		}
	}
	tok := c.client.Publish(c.Topic(m.CustomerID), 1, false, m.Body)
	if err := wait(ctx, tok); err != nil {
		return notify.Retryable(fmt.Errorf("mqtt push: publish: %w", err), 0, 0)
	}
	return nil
}

func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close disconnects, waiting up to a quarter second for in-flight work.
func (c *Channel) Close() {
	if c.client.IsConnected() {
		c.client.Disconnect(250)
	}
}
