package ingest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
)

func appendLines(t *testing.T, s *Spool, lines ...string) {
	t.Helper()
	body := strings.Join(lines, "\n") + "\n"
	_, err := s.AppendRecord(nil, []byte(body), len(lines))
	require.NoError(t, err)
}

func readAll(t *testing.T, s *Spool, from int64) ([]string, int64) {
	t.Helper()
	recs, next, err := s.Read(nil, from, 0, 1<<30)
	require.NoError(t, err)
	var out []string
	for _, r := range recs {
		ls := strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n")
		require.Len(t, ls, r.Lines)
		out = append(out, ls...)
	}
	return out, next
}

func TestSpoolAppendSyncRead(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), 1<<20, testLogger(t))
	require.NoError(t, err)
	defer s.Close()
	appendLines(t, s, "a", "b")
	got, next := readAll(t, s, 0)
	require.Empty(t, got, "nothing is visible before Sync")
	require.Zero(t, next)
	require.NoError(t, s.Sync())
	appendLines(t, s, "c")
	require.NoError(t, s.Sync())
	got, next = readAll(t, s, 0)
	require.Equal(t, []string{"a", "b", "c"}, got)
	start, head, _ := s.Bounds()
	require.Zero(t, start)
	require.Equal(t, head, next)

	// maxLines bounds a read, but always returns at least one record.
	recs, mid, err := s.Read(nil, 0, 0, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, 2, recs[0].Lines)
	got, _ = readAll(t, s, mid)
	require.Equal(t, []string{"c"}, got)
}

func TestSpoolSegmentsReleaseAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 64, testLogger(t)) // tiny segments: one record each
	require.NoError(t, err)
	var ends []int64
	for i := range 10 {
		appendLines(t, s, fmt.Sprintf("line-%d-%s", i, strings.Repeat("x", 40)))
		require.NoError(t, s.Sync())
		_, head, _ := s.Bounds()
		ends = append(ends, head)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	require.Len(t, segs, 10)
	size := s.Size()

	require.NoError(t, s.Release(ends[3])) // records 0..3 written
	segs, _ = filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	require.Len(t, segs, 6)
	require.Less(t, s.Size(), size)
	got, _ := readAll(t, s, 0) // a released offset reads from the start
	require.Len(t, got, 6)
	require.True(t, strings.HasPrefix(got[0], "line-4-"))
	require.NoError(t, s.Close())

	s, err = OpenSpool(dir, 64, testLogger(t))
	require.NoError(t, err)
	defer s.Close()
	start, head, _ := s.Bounds()
	require.Equal(t, ends[3], start, "offsets survive a restart")
	require.FileExists(t, filepath.Join(dir, checkpointFile))
	require.Equal(t, ends[9], head)
	got, _ = readAll(t, s, start)
	require.Len(t, got, 6)
	appendLines(t, s, "after-restart")
	require.NoError(t, s.Sync())
	got, _ = readAll(t, s, ends[9])
	require.Equal(t, []string{"after-restart"}, got)

	require.NoError(t, s.Release(ends[9]+1000)) // past the head: clamps, keeps the active segment
	start, head, _ = s.Bounds()
	require.Equal(t, head, start)
	segs, _ = filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	require.Len(t, segs, 1)
}

func TestSpoolCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20, testLogger(t))
	require.NoError(t, err)
	appendLines(t, s, "kept-1")
	appendLines(t, s, "kept-2")
	require.NoError(t, s.Sync())
	_, head, _ := s.Bounds()
	require.NoError(t, s.Close())

	// A crash in the middle of appending a record: half a header and body.
	seg := filepath.Join(dir, fmt.Sprintf("%016x%s", 0, segmentExt))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{50, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 'p', 'a', 'r'})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s, err = OpenSpool(dir, 1<<20, testLogger(t))
	require.NoError(t, err)
	defer s.Close()
	_, head2, _ := s.Bounds()
	require.Equal(t, head, head2, "the torn record is cut off")
	got, _ := readAll(t, s, 0)
	require.Equal(t, []string{"kept-1", "kept-2"}, got)
	appendLines(t, s, "next")
	require.NoError(t, s.Sync())
	got, _ = readAll(t, s, 0)
	require.Equal(t, []string{"kept-1", "kept-2", "next"}, got)
}

func TestSpoolDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 64, testLogger(t))
	require.NoError(t, err)
	defer s.Close()
	appendLines(t, s, strings.Repeat("a", 50))
	appendLines(t, s, strings.Repeat("b", 50))
	require.NoError(t, s.Sync())
	// Flip a byte in the first (sealed) segment's body.
	seg := filepath.Join(dir, fmt.Sprintf("%016x%s", 0, segmentExt))
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	b[recordHeader+3] ^= 0xff
	require.NoError(t, os.WriteFile(seg, b, 0o640))

	recs, next, err := s.Read(nil, 0, 0, 100)
	require.ErrorIs(t, err, ErrCorruptRecord)
	require.Empty(t, recs)
	require.Equal(t, int64(len(b)), next, "the reader is sent to the next segment")
	got, _ := readAll(t, s, next)
	require.Equal(t, []string{strings.Repeat("b", 50)}, got)
}

func TestTracker(t *testing.T) {
	tr := tracker{base: 10}
	base, moved := tr.confirm(30, 40)
	require.False(t, moved)
	require.Equal(t, int64(10), base)
	require.Equal(t, []span{{10, 30}, {40, 50}}, tr.gaps(50))
	base, moved = tr.confirm(20, 30)
	require.False(t, moved)
	require.Equal(t, []span{{10, 20}, {40, 50}}, tr.gaps(50))
	base, moved = tr.confirm(10, 20)
	require.True(t, moved)
	require.Equal(t, int64(40), base, "merged spans move the base past them")
	require.Equal(t, []span{{40, 50}}, tr.gaps(50))
	require.Equal(t, int64(10), tr.unconfirmed(50))
	_, moved = tr.confirm(0, 40) // already confirmed
	require.False(t, moved)
	base, moved = tr.confirm(35, 60) // overlaps the base
	require.True(t, moved)
	require.Equal(t, int64(60), base)
	require.Empty(t, tr.gaps(60))
}

func TestSpoolCheckpointSkipsWrittenRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20, testLogger(t)) // one segment
	require.NoError(t, err)
	appendLines(t, s, "written")
	require.NoError(t, s.Sync())
	_, mid, _ := s.Bounds()
	appendLines(t, s, "not-yet")
	require.NoError(t, s.Sync())
	require.NoError(t, s.Release(mid)) // the segment stays: it is the active one
	require.NoError(t, s.Close())

	s, err = OpenSpool(dir, 1<<20, testLogger(t))
	require.NoError(t, err)
	start, _, _ := s.Bounds()
	require.Equal(t, mid, start, "a clean close remembers what InfluxDB already has")
	got, _ := readAll(t, s, start)
	require.Equal(t, []string{"not-yet"}, got)
	require.NoError(t, s.Close())

	// Without the checkpoint (a crash), the whole segment is replayed.
	require.NoError(t, os.Remove(filepath.Join(dir, checkpointFile)))
	s, err = OpenSpool(dir, 1<<20, testLogger(t))
	require.NoError(t, err)
	defer s.Close()
	got, _ = readAll(t, s, 0)
	require.Equal(t, []string{"written", "not-yet"}, got)
}

// readUntilClosed reads c until it fails and then sends everything it read.
func readUntilClosed(c net.Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		buf := make([]byte, 1024)
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				return
			}
		}
	}()
	return got
}

func TestBufConnBatchesWritesAndFlushesOnClose(t *testing.T) {
	a, b := net.Pipe()
	c := newBufConn(a)
	got := readUntilClosed(b)
	var want []byte
	for i := range 100 {
		p := []byte{0x40, 2, 0, byte(i)} // a PUBACK
		n, err := c.Write(p)
		require.NoError(t, err)
		require.Equal(t, 4, n)
		want = append(want, p...)
	}
	require.NoError(t, c.Close())
	require.Equal(t, want, <-got, "every byte written, in order, before the close")
	_, err := c.Write([]byte{1})
	require.ErrorIs(t, err, net.ErrClosed)
}

// TestSubscriberStopsOnSpoolFailure: when the spool cannot be written, Run
// returns the error instead of taking messages it cannot make durable.
func TestSubscriberStopsOnSpoolFailureIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs mosquitto (run make test)")
	}
	t.Parallel()
	b := testenv.Mosquitto(t)
	sp, err := OpenSpool(t.TempDir(), 1<<20, testLogger(t))
	require.NoError(t, err)
	mc := DefaultMQTTConfig()
	mc.URL, mc.ClientID, mc.TopicPrefix = b.URL, "fail-ingest", "fail"
	s := NewSubscriber(SubscriberOptions{MQTT: mc, Limits: DefaultLimits(), Spool: sp, MaxBytes: 64 << 20,
		Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	require.Eventually(t, s.Connected, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, sp.Close()) // the disk goes away, as far as ingest can tell

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("fail-pub"))
	require.True(t, pub.Connect().WaitTimeout(10*time.Second))
	defer pub.Disconnect(100)
	require.True(t, pub.Publish("fail/dev-1/telemetry", 1, false, `{"metrics":{"v":1}}`).WaitTimeout(10*time.Second))
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrSpoolClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after the spool failed")
	}
	require.Zero(t, testutil.ToFloat64(s.metrics.spooled))
}

func TestSpoolDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	log := testLogger(t)
	a, err := OpenSpool(dir, 1<<20, log)
	require.NoError(t, err)
	_, err = OpenSpool(dir, 1<<20, log)
	require.ErrorContains(t, err, "in use by another Forewarn")
	require.NoError(t, a.Close())
	b, err := OpenSpool(dir, 1<<20, log) // released at Close
	require.NoError(t, err)
	require.NoError(t, b.Close())
}

// TestBufConnWriteFailureBreaksRead: when the broker goes away while
// paho's reader is not reading (its pipeline is backed up), the first sign
// is a failed write. The blocked or next Read must then fail with an error
// paho reports as a lost connection, never with "use of closed network
// connection", which paho takes for its own close and ignores (the client
// then stays "connected" until the keep-alive expires, while the broker
// queues and, past max_queued_messages, drops our messages).
func TestBufConnWriteFailureBreaksRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		s, err := ln.Accept()
		if err == nil {
			accepted <- s
		}
		close(accepted)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	c := newBufConn(raw)
	defer c.Close()
	peer := <-accepted
	require.NotNil(t, peer)
	// The peer resets the connection (SO_LINGER 0): the next write fails.
	require.NoError(t, peer.(*net.TCPConn).SetLinger(0))
	require.NoError(t, peer.Close())

	require.Eventually(t, func() bool {
		_, err := c.Write([]byte{0x40, 2, 0, 1}) // a PUBACK
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "a write to a reset connection fails")
	readErr := make(chan error, 1)
	go func() { // only now, as paho's reader does once its pipeline moves again
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		require.Error(t, err)
		require.NotContains(t, err.Error(), "use of closed network connection")
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after the connection failed on write")
	}
}

func TestNextBackoff(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 9 {
		d = nextBackoff(d, &WriteError{Retryable: true})
		got = append(got, d)
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5 * time.Second, 5 * time.Second, 5 * time.Second}, got)
	require.Equal(t, 7*time.Second, nextBackoff(5*time.Second, &WriteError{Retryable: true, RetryAfter: 7 * time.Second}), "Retry-After wins")
	require.Equal(t, 5*time.Minute, nextBackoff(0, &WriteError{Retryable: true, RetryAfter: time.Hour}), "Retry-After is bounded")
	require.Equal(t, 100*ms, nextBackoff(0, nil))
}

// fakeMsg is an mqtt.Message as paho hands it over.
type fakeMsg struct {
	qos byte
	id  uint16
}

func (m fakeMsg) Duplicate() bool   { return false }
func (m fakeMsg) Qos() byte         { return m.qos }
func (m fakeMsg) Retained() bool    { return false }
func (m fakeMsg) Topic() string     { return "devices/d/telemetry" }
func (m fakeMsg) MessageID() uint16 { return m.id }
func (m fakeMsg) Payload() []byte   { return nil }
func (m fakeMsg) Ack()              {}

// TestSubscriberAckWritesPUBACKsPerConnection: the PUBACKs of a group go
// out in arrival order, one write per connection, each on the connection
// its message arrived on; QoS 0 messages get none, and messages whose
// connection is unknown get none (the broker redelivers them).
func TestSubscriberAckWritesPUBACKsPerConnection(t *testing.T) {
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	ca, cb := newBufConn(a1), newBufConn(b1)
	gotA, gotB := readUntilClosed(a2), readUntilClosed(b2)
	s := &Subscriber{}
	s.ack([]item{
		{msg: fakeMsg{1, 0x0102}, conn: ca},
		{msg: fakeMsg{0, 0}, conn: ca},
		{msg: fakeMsg{1, 7}, conn: ca},
		{msg: fakeMsg{1, 8}, conn: nil},
		{msg: fakeMsg{1, 0xfffe}, conn: cb},
		{msg: fakeMsg{1, 9}, conn: ca},
	})
	require.NoError(t, ca.Close())
	require.NoError(t, cb.Close())
	require.Equal(t, []byte{0x40, 2, 1, 2, 0x40, 2, 0, 7, 0x40, 2, 0, 9}, <-gotA)
	require.Equal(t, []byte{0x40, 2, 0xff, 0xfe}, <-gotB)
}
