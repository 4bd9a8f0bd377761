package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mosquittoReady bounds the wait for the broker to answer a CONNECT.
const mosquittoReady = 10 * time.Second

// A Broker is a mosquitto 2 process started for one test by Mosquitto.
// Its fields are fixed for the life of the test; Stop and Start keep them.
type Broker struct {
	Host string // "127.0.0.1"
	Port int
	URL  string // "tcp://127.0.0.1:PORT", as paho's AddBroker wants it

	bin  string // mosquitto binary
	dir  string // t.TempDir(): conf, logs, persistence
	conf string // generated mosquitto.conf
	log  string // mosquitto's own log (log_dest file)
	out  string // the process's stdout and stderr

	userConf string // an operator's conf to rewrite, or "" for the generated one

	mu   sync.Mutex
	proc *process // nil when stopped
}

// Mosquitto starts Debian's mosquitto 2 in the foreground on a free port of
// 127.0.0.1, with anonymous access and persistence in t.TempDir(), waits until
// it answers an MQTT CONNECT, and stops it in t.Cleanup. The system broker on
// 127.0.0.1:1883, if any, is never touched.
//
// The binary is $FOREWARN_MOSQUITTO, else mosquitto in $PATH, else
// /usr/sbin/mosquitto. If none exists the test fails.
func Mosquitto(t testing.TB) *Broker {
	t.Helper()
	return startMosquitto(t, "")
}

// MosquittoWithConf is Mosquitto with an operator's mosquitto.conf (such as
// examples/mosquitto.conf) instead of the generated one. Its listener,
// persistence_location and log_dest lines are rewritten to the test's free
// port and temp dir; every other setting is used as written.
func MosquittoWithConf(t testing.TB, conf string) *Broker {
	t.Helper()
	return startMosquitto(t, conf)
}

func startMosquitto(t testing.TB, userConf string) *Broker {
	t.Helper()
	bin, err := findBinary("FOREWARN_MOSQUITTO", "mosquitto", "/usr/sbin/mosquitto")
	if errors.Is(err, errNotFound) {
		t.Fatalf("testenv: mosquitto not found in $PATH or at /usr/sbin/mosquitto: run `make deps` (apt-get install mosquitto)")
	}
	if err != nil {
		t.Fatalf("testenv: mosquitto: %v", err)
	}
	dir := t.TempDir()
	b := &Broker{
		Host:     loopback,
		bin:      bin,
		dir:      dir,
		userConf: userConf,
		conf:     filepath.Join(dir, "mosquitto.conf"),
		log:      filepath.Join(dir, "mosquitto.log"),
		out:      filepath.Join(dir, "mosquitto.out"),
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() { b.Stop(t) })

	b.mu.Lock()
	defer b.mu.Unlock()
	for attempt := 1; ; attempt++ {
		b.Port = FreePort(t)
		b.URL = "tcp://" + hostPort(b.Port)
		if err := b.writeConf(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		start := time.Now()
		err := b.start()
		if err == nil {
			t.Logf("testenv: mosquitto (pid %d) ready at %s in %s; dir %s", b.proc.cmd.Process.Pid, b.URL, time.Since(start).Round(time.Millisecond), dir)
			return b
		}
		if attempt == 1 && addrInUse(err, b.log, b.out) {
			t.Logf("testenv: mosquitto port %d was taken; retrying on another", b.Port)
			continue
		}
		t.Fatalf("testenv: %v%s", err, logTails(b.out, b.log))
	}
}

// Stop stops the broker now: SIGTERM, which makes mosquitto save its
// persistence file, then SIGKILL if it has not exited after a few seconds.
// Stopping a stopped broker does nothing.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return
	}
	start := time.Now()
	if b.proc.stop(t) {
		t.Logf("testenv: mosquitto on port %d had exited by itself: %v%s", b.Port, b.proc.err, logTails(b.out, b.log))
	} else {
		t.Logf("testenv: mosquitto (pid %d) stopped in %s", b.proc.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	}
	b.proc = nil
}

// Start starts the broker again on the same port, with the same conf and
// persistence directory (so retained messages and persistent sessions
// survive), and waits until it answers MQTT again. Starting a running
// broker does nothing.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil && !b.proc.exited() {
		return
	}
	b.proc = nil
	start := time.Now()
	if err := b.start(); err != nil {
		t.Fatalf("testenv: restart: %v%s", err, logTails(b.out, b.log))
	}
	t.Logf("testenv: mosquitto (pid %d) ready again at %s in %s", b.proc.cmd.Process.Pid, b.URL, time.Since(start).Round(time.Millisecond))
}

// start runs mosquitto -c conf and waits for it; b.mu is held. On error the
// process, if still running, stays in b.proc for Stop to end.
func (b *Broker) start() error {
	p, err := startProcess("mosquitto", b.bin, []string{"-c", b.conf}, nil, b.out)
	if err != nil {
		return err
	}
	b.proc = p
	defer func() {
		if b.proc.exited() {
			b.proc = nil // nothing left for Stop to do or report
		}
	}()
	addr := hostPort(b.Port)
	return p.waitReady(mosquittoReady, func() error { return mqttPing(addr) })
}

// mqttPing is the readiness probe: an MQTT 3.1.1 CONNECT (clean session,
// empty client id) answered by a CONNACK that accepts it, or refuses it for
// want of credentials (return codes 4 and 5: a broker that requires sign-in
// is up too). A bare TCP connect would also succeed against whoever else
// took our port first.
func mqttPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	connect := []byte{
		0x10, 12, // CONNECT, remaining length
		0, 4, 'M', 'Q', 'T', 'T', 4, // protocol name and level 4 (3.1.1)
		0x02,  // connect flags: clean session
		0, 10, // keep alive, seconds
		0, 0, // payload: empty client id
	}
	if _, err := c.Write(connect); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	var connack [4]byte
	if _, err := io.ReadFull(c, connack[:]); err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if connack[0] != 0x20 || connack[1] != 2 || (connack[3] != 0 && connack[3] != 4 && connack[3] != 5) {
		return fmt.Errorf("unexpected CONNACK % x", connack)
	}
	_, _ = c.Write([]byte{0xe0, 0}) // DISCONNECT
	return nil
}

func (b *Broker) writeConf() error {
	// mosquitto started as root drops to user "mosquitto", which cannot
	// write into a 0700 t.TempDir(); stay root then (it warns, harmlessly).
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n"
	}
	if b.userConf != "" {
		var out []string
		for _, line := range strings.Split(b.userConf, "\n") {
			switch f := strings.Fields(line); {
			case len(f) > 0 && f[0] == "listener":
				line = fmt.Sprintf("listener %d %s", b.Port, loopback)
			case len(f) > 0 && f[0] == "persistence_location":
				line = "persistence_location " + b.dir + "/"
			case len(f) > 0 && (f[0] == "log_dest" || f[0] == "user"):
				continue
			}
			out = append(out, line)
		}
		out = append(out, user, "log_dest file "+b.log)
		if err := os.WriteFile(b.conf, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			return fmt.Errorf("write mosquitto conf: %w", err)
		}
		return nil
	}
	conf := fmt.Sprintf(`# Written by internal/testenv for one test.
%slistener %d %s
allow_anonymous true

persistence true
persistence_location %s/
persistence_file mosquitto.db
max_queued_messages 10000

log_dest file %s
log_type error
log_type warning
log_type notice
log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S
`, user, b.Port, loopback, b.dir, b.log)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write mosquitto conf: %w", err)
	}
	return nil
}

// Addr is the broker's "127.0.0.1:PORT", for net.Dial.
func (b *Broker) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }
