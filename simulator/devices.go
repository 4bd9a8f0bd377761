package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/forewarn/forewarn/telemetry"
)

// MaxDeviceConnections bounds DevicePublisher: each connection is a paho
// client (goroutines, buffers) and a file descriptor at both ends. Larger
// fleets share one connection and emulate the Last Will (Options.Status).
const MaxDeviceConnections = 2000

// DevicePublisher gives every device its own MQTT connection, as real
// devices have: client id {clientPrefix}{device_id}, Last Will "offline"
// (retained, QoS 1) on {prefix}/{id}/status, and a retained "online"
// published after each connect. Drop closes a device's TCP connection
// without an MQTT DISCONNECT, so the broker itself publishes the Will. It
// implements Publisher, DeviceLinker and Acker, and is used from one
// goroutine (Run's).
type DevicePublisher struct {
	url, username, password string
	clientPrefix, prefix    string
	qos                     byte
	conns                   map[telemetry.DeviceID]*deviceConn
	pending                 []mqtt.Token
	acked                   atomic.Int64
}

type deviceConn struct {
	client mqtt.Client
	mu     sync.Mutex
	conn   net.Conn // the TCP connection paho opened, to close it uncleanly
}

// NewDevicePublisher returns a DevicePublisher for the broker at brokerURL
// (tcp:// only) and topic prefix; devices connect on their first publish.
func NewDevicePublisher(brokerURL, username, password, clientPrefix, prefix string, qos byte) (*DevicePublisher, error) {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Scheme != "tcp" {
		return nil, fmt.Errorf("connections per device need a tcp:// broker url, not %q", brokerURL)
	}
	if qos > 1 {
		return nil, fmt.Errorf("qos: %d is not 0 or 1", qos)
	}
	return &DevicePublisher{url: brokerURL, username: username, password: password, clientPrefix: clientPrefix,
		prefix: prefix, qos: qos, conns: map[telemetry.DeviceID]*deviceConn{}}, nil
}

func (p *DevicePublisher) connect(ctx context.Context, dev telemetry.DeviceID) (*deviceConn, error) {
	if len(p.conns) >= MaxDeviceConnections {
		return nil, fmt.Errorf("more than %d device connections", MaxDeviceConnections)
	}
	dc := &deviceConn{}
	status := p.prefix + "/" + string(dev) + "/status"
	opts := mqtt.NewClientOptions().AddBroker(p.url).SetClientID(p.clientPrefix+string(dev)).
		SetUsername(p.username).SetPassword(p.password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10*time.Second).
		SetKeepAlive(60*time.Second).SetWill(status, "offline", 1, true).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 10 * time.Second}).Dial("tcp", uri.Host)
			dc.mu.Lock()
			dc.conn = c
			dc.mu.Unlock()
			return c, err
		})
	dc.client = mqtt.NewClient(opts)
	if err := waitToken(ctx, dc.client.Connect()); err != nil {
		return nil, fmt.Errorf("connect device %s: %w", dev, err)
	}
	if err := waitToken(ctx, dc.client.Publish(status, 1, true, "online")); err != nil {
		dc.client.Disconnect(0)
		return nil, fmt.Errorf("publish %s online: %w", dev, err)
	}
	p.conns[dev] = dc
	return dc, nil
}

// Publish sends payload to topic ({prefix}/{device_id}/...) over that
// device's connection, connecting it first if needed.
func (p *DevicePublisher) Publish(ctx context.Context, topic string, payload []byte) error {
	rest, ok := strings.CutPrefix(topic, p.prefix+"/")
	dev, _, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return fmt.Errorf("topic %q is not under %s/{device_id}/", topic, p.prefix)
	}
	dc := p.conns[telemetry.DeviceID(dev)]
	if dc == nil {
		var err error
		if dc, err = p.connect(ctx, telemetry.DeviceID(dev)); err != nil {
			return err
		}
	}
	p.pending = append(p.pending, dc.client.Publish(topic, p.qos, false, payload))
	if len(p.pending) >= maxInflight {
		return p.Flush(ctx)
	}
	return nil
}

// Flush waits for every outstanding publish.
func (p *DevicePublisher) Flush(ctx context.Context) error {
	var errs []error
	for _, t := range p.pending {
		if err := waitToken(ctx, t); err != nil {
			if ctx.Err() != nil {
				p.pending = nil
				return ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		p.acked.Add(1)
	}
	p.pending = p.pending[:0]
	return errors.Join(errs...)
}

// Drop closes dev's TCP connection without DISCONNECT: the broker sees the
// connection lost and publishes the device's Last Will.
func (p *DevicePublisher) Drop(dev telemetry.DeviceID) error {
	if err := p.Flush(context.Background()); err != nil {
		return err
	}
	dc := p.conns[dev]
	if dc == nil {
		return nil
	}
	delete(p.conns, dev)
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.conn == nil {
		return nil
	}
	return dc.conn.Close()
}

// Reconnect connects dev again (and publishes its retained "online").
func (p *DevicePublisher) Reconnect(ctx context.Context, dev telemetry.DeviceID) error {
	if p.conns[dev] != nil {
		return nil
	}
	_, err := p.connect(ctx, dev)
	return err
}

// Acked returns the number of publishes acknowledged so far.
func (p *DevicePublisher) Acked() int64 { return p.acked.Load() }

// Connections returns the number of open device connections.
func (p *DevicePublisher) Connections() int { return len(p.conns) }

// Close disconnects every device cleanly (no Will).
func (p *DevicePublisher) Close() {
	var wg sync.WaitGroup
	for _, dc := range p.conns {
		wg.Go(func() { dc.client.Disconnect(250) })
	}
	wg.Wait()
	p.conns = map[telemetry.DeviceID]*deviceConn{}
}
