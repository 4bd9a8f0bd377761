package ingest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/net/proxy"
)

// bufConn batches system calls both ways. paho reads each packet's fixed
// header a byte at a time straight from the connection
// (packets.ReadPacket), several read system calls per message; through a
// bufio.Reader one read brings in many messages. paho also writes each
// packet with its own Write. Write here appends to a buffer that a flusher
// goroutine writes out whole: while one write system call is under way the
// next packets gather, and an idle connection still sends each packet at
// once (no timer, no added latency). The subscriber writes the PUBACKs of
// a whole group commit in one Write (Subscriber.ack).
// A failed write breaks the connection's reads (see Read); paho sees the
// read fail and reconnects, and the messages whose PUBACKs were lost are
// redelivered.
type bufConn struct {
	net.Conn
	r *bufio.Reader

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte // waiting to be written
	spare  []byte
	err    error
	closed bool
	done   chan struct{} // closed when the flusher has stopped
}

// maxPendingWrite bounds buffered writes; Write waits beyond it.
const maxPendingWrite = 1 << 20

func newBufConn(conn net.Conn) *bufConn {
	c := &bufConn{Conn: conn, r: bufio.NewReaderSize(conn, 64<<10), done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go c.flush()
	return c
}

// Read reads through the buffer. Once a write has failed the connection
// is broken both ways: the flusher set a past read deadline, so Read
// fails as soon as the buffer is empty, with the write's error.
func (c *bufConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil {
		c.mu.Lock()
		werr := c.err
		c.mu.Unlock()
		if werr != nil {
			return n, fmt.Errorf("connection failed on write: %w", werr)
		}
	}
	return n, err
}

func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) >= maxPendingWrite && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *bufConn) flush() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.buf) == 0 {
			return // closed and drained
		}
		b := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(b)
		c.mu.Lock()
		c.spare = b[:0]
		c.cond.Broadcast()
		if err != nil {
			// Not Close: paho's reader takes "use of closed network
			// connection" for a close of its own and reports nothing, so
			// the client would stay "connected" until its keep-alive
			// expires, while the broker queues (and past its limit drops)
			// our messages. Wake the reader instead; Read returns err.
			c.err = err
			c.buf = nil
			_ = c.Conn.SetReadDeadline(time.Now())
			return
		}
	}
}

// Close writes what is buffered (for at most a second), then closes.
func (c *bufConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	return c.Conn.Close()
}

// openBuffered dials the broker as paho does (tcp, ssl and ws schemes, with
// the proxy from the environment) and buffers the connection's reads.
func openBuffered(uri *url.URL, o mqtt.ClientOptions) (*bufConn, error) {
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		conn, err = proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		if os.Getenv("all_proxy") == "" {
			conn, err = tls.DialWithDialer(dialer, "tcp", uri.Host, o.TLSConfig)
			break
		}
		var raw net.Conn
		if raw, err = proxy.FromEnvironment().Dial("tcp", uri.Host); err != nil {
			break
		}
		tc := tls.Client(raw, o.TLSConfig)
		if err = tc.Handshake(); err != nil {
			_ = raw.Close()
			break
		}
		conn = tc
	case "ws", "wss":
		u := *uri
		u.User = nil
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.TLSConfig
		}
		conn, err = mqtt.NewWebsocket(u.String(), tlsc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	default:
		return nil, errors.New("unknown protocol " + uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return newBufConn(conn), nil
}

// noStore is a paho Store that keeps nothing. paho's default MemoryStore
// records every inbound QoS 1 message until its PUBACK goes out (a map
// insert and delete, with allocated keys, per message) so that it could
// resend acknowledgements after a reconnect. We need none of it: a message
// is durable in our spool before we acknowledge it, and an
// acknowledgement lost with a connection only makes the broker redeliver
// the message, which the spool then takes again (InfluxDB keeps one point
// per series and timestamp).
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}
