package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// rawPub is the load generator's MQTT 3.1.1 publisher: CONNECT, PUBLISH at
// QoS 0 or 1, PUBACK and DISCONNECT, written straight to a buffered socket.
// paho's Publish costs several goroutine hand-offs and a token per message;
// on 2 shared cores that made the generator, not the consumer under test,
// the limit. Both consumers are measured against the same generator.
type rawPub struct {
	conn   net.Conn
	w      *bufio.Writer
	qos    byte
	window int64 // most QoS 1 messages not yet acknowledged
	id     uint16
	sent   int64        // PUBLISH packets written (by the publishing goroutine)
	acked  atomic.Int64 // PUBACKs read (QoS 1)
	rdErr  atomic.Pointer[error]
	rdDone chan struct{}
	pkt    []byte
}

// dialRaw connects with a clean session and waits for the CONNACK.
func dialRaw(addr, clientID string, qos byte, window int64) (*rawPub, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial broker: %w", err)
	}
	p := &rawPub{conn: c, w: bufio.NewWriterSize(c, 64<<10), qos: qos, window: window, rdDone: make(chan struct{})}
	// CONNECT: protocol "MQTT" level 4, clean session, keep-alive 120 s
	// (longer than a step, so no PINGREQ is needed).
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 120}
	body := binary.BigEndian.AppendUint16(vh, uint16(len(clientID)))
	body = append(body, clientID...)
	pkt := appendRemLen([]byte{0x10}, len(body))
	pkt = append(pkt, body...)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		c.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("connection refused: CONNACK % x", ack)
	}
	_ = c.SetDeadline(time.Time{})
	go p.readAcks()
	return p, nil
}

// appendRemLen appends MQTT's variable-length "remaining length".
func appendRemLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// readAcks counts PUBACKs until the connection closes.
func (p *rawPub) readAcks() {
	defer close(p.rdDone)
	r := bufio.NewReaderSize(p.conn, 16<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			p.rdErr.Store(&err)
			return
		}
		if hdr[0] != 0x40 || hdr[1] != 2 {
			err := fmt.Errorf("unexpected packet % x from the broker", hdr[:2])
			p.rdErr.Store(&err)
			return
		}
		if _, err := io.ReadFull(r, hdr[2:4]); err != nil {
			p.rdErr.Store(&err)
			return
		}
		p.acked.Add(1)
	}
}

func (p *rawPub) readErr() error {
	if e := p.rdErr.Load(); e != nil {
		return *e
	}
	return nil
}

// publish buffers one PUBLISH; at QoS 1 it first waits while window
// messages are unacknowledged.
func (p *rawPub) publish(topic string, payload []byte) error {
	if p.qos == 1 {
		for p.sent-p.acked.Load() >= p.window {
			if err := p.w.Flush(); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			if err := p.wait(100 * time.Microsecond); err != nil {
				return err
			}
		}
	}
	n := 2 + len(topic) + len(payload)
	if p.qos == 1 {
		n += 2
	}
	pkt := appendRemLen(append(p.pkt[:0], 0x30|p.qos<<1), n)
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(len(topic)))
	pkt = append(pkt, topic...)
	if p.qos == 1 {
		p.id++
		if p.id == 0 {
			p.id = 1
		}
		pkt = binary.BigEndian.AppendUint16(pkt, p.id)
	}
	pkt = append(pkt, payload...)
	p.pkt = pkt
	if _, err := p.w.Write(pkt); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	p.sent++
	return nil
}

// wait sleeps d for PUBACKs to arrive; an error once the connection
// has closed.
func (p *rawPub) wait(d time.Duration) error {
	select {
	case <-p.rdDone:
		return fmt.Errorf("broker connection closed: %v", p.readErr())
	default:
	}
	time.Sleep(d)
	return nil
}

// flush writes what is buffered.
func (p *rawPub) flush() error { return p.w.Flush() }

// close flushes, waits up to wait for the outstanding PUBACKs, sends
// DISCONNECT and closes. It returns how many messages the broker took:
// at QoS 1 the acknowledged ones, at QoS 0 the ones written.
func (p *rawPub) close(wait time.Duration) (int64, error) {
	err := p.w.Flush()
	if p.qos == 1 {
		deadline := time.Now().Add(wait)
		for err == nil && p.acked.Load() < p.sent && time.Now().Before(deadline) {
			err = p.wait(time.Millisecond)
		}
	}
	if err == nil {
		_, err = p.conn.Write([]byte{0xe0, 0})
	}
	p.conn.Close()
	<-p.rdDone
	if p.qos == 1 {
		n := p.acked.Load()
		if err == nil && n < p.sent {
			err = fmt.Errorf("%d of %d messages not acknowledged after %s", p.sent-n, p.sent, wait)
		}
		return n, err
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return p.sent, err
}
