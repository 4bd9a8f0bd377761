package simulator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MQTTPublisher publishes over one paho connection at QoS 1 (or 0, see
// SetQoS), keeping up to maxInflight publishes unacknowledged: a sliding
// window, so a publish waits only for the oldest one. It counts the
// acknowledged publishes.
type MQTTPublisher struct {
	client  mqtt.Client
	qos     byte
	pending []mqtt.Token
	acked   atomic.Int64
}

const maxInflight = 256

// DialMQTT connects to the broker at url as clientID (clean session: the
// simulator needs no state at the broker).
func DialMQTT(ctx context.Context, url, clientID, username, password string) (*MQTTPublisher, error) {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetUsername(username).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).
		SetMaxResumePubInFlight(maxInflight)
	c := mqtt.NewClient(opts)
	if err := waitToken(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("connect to broker %s: %w", url, err)
	}
	return &MQTTPublisher{client: c, qos: 1}, nil
}

func waitToken(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetQoS sets the QoS of later publishes: 0 (at most once) or 1 (at least once).
func (p *MQTTPublisher) SetQoS(qos byte) error {
	if qos > 1 {
		return fmt.Errorf("qos: %d is not 0 or 1", qos)
	}
	p.qos = qos
	return nil
}

// Publish sends payload to topic.
func (p *MQTTPublisher) Publish(ctx context.Context, topic string, payload []byte) error {
	return p.publish(ctx, topic, payload, false)
}

// PublishRetained sends payload to topic as a retained message.
func (p *MQTTPublisher) PublishRetained(ctx context.Context, topic string, payload []byte) error {
	return p.publish(ctx, topic, payload, true)
}

func (p *MQTTPublisher) publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	for len(p.pending) >= maxInflight {
		if err := waitToken(ctx, p.pending[0]); err != nil {
			return err
		}
		p.acked.Add(1)
		p.pending = p.pending[1:]
	}
	p.pending = append(p.pending, p.client.Publish(topic, p.qos, retained, payload))
	return nil
}

// Flush waits until the broker acknowledged every publish (QoS 1), or
// until each was written (QoS 0).
func (p *MQTTPublisher) Flush(ctx context.Context) error {
	var errs []error
	for _, t := range p.pending {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				errs = append(errs, err)
			} else {
				p.acked.Add(1)
			}
		case <-ctx.Done():
			p.pending = nil
			return ctx.Err()
		}
	}
	p.pending = nil
	return errors.Join(errs...)
}

// Acked returns the number of publishes acknowledged so far.
func (p *MQTTPublisher) Acked() int64 { return p.acked.Load() }

// Close disconnects.
func (p *MQTTPublisher) Close() { p.client.Disconnect(250) }
