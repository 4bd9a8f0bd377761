package testenv

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	loopback = "127.0.0.1"

	// stopGrace is how long a service gets to exit after SIGTERM before it
	// is sent SIGKILL, and then how long we wait for SIGKILL to take effect.
	stopGrace = 5 * time.Second

	// pollInterval paces readiness probes.
	pollInterval = 25 * time.Millisecond

	// tailBytes is how much of each log file a failure message quotes.
	tailBytes = 4 << 10
)

// errNotFound reports that no candidate for a service binary exists.
var errNotFound = errors.New("not found")

// errExited reports that a service process ended before it became ready.
var errExited = errors.New("process exited before it was ready")

// FreePort returns a TCP port on 127.0.0.1 that was free when it was
// checked. It is drawn at random below the kernel's ephemeral range, so the
// outgoing connections of the many tests running at once (which take
// ephemeral ports) cannot take it before the caller binds it; only another
// explicit bind of the same port can, and the service starters retry once
// when that happens. Falls back to a kernel-chosen port.
func FreePort(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	for range 50 {
		port := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
		if err != nil {
			continue // taken: draw again
		}
		if err := l.Close(); err != nil {
			t.Fatalf("testenv: release free port %d: %v", port, err)
		}
		return port
	}
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testenv: release free port %d: %v", port, err)
	}
	return port
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux:
// /proc/sys/net/ipv4/ip_local_port_range), 32768 when it cannot be read or
// leaves too little room below it.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < 12000 {
		return 32768
	}
	return low
}

// RepoRoot returns the directory holding go.mod, found by walking up from
// the working directory (a package directory under go test).
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: working directory: %v", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod in %s or any parent", wd)
		}
		dir = parent
	}
}

// process is one run of a service binary. A goroutine started with it reaps
// it (cmd.Wait) and closes done, so it never lingers as a zombie.
type process struct {
	name string // for messages, e.g. "mosquitto"
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result; read only after done is closed
}

// startProcess runs bin with args, appending its stdout and stderr to
// outPath. env nil means the test's environment.
func startProcess(name, bin string, args, env []string, outPath string) (*process, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s output: %w", name, err)
	}
	// Not exec.CommandContext: the process must outlive no test, but its
	// end is decided by stop, not by a context.
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	// *os.File outputs are handed to the child as-is, so no copying
	// goroutines are involved and we can close our copy right away.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended and been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady calls probe until it succeeds, the process exits (errExited),
// or timeout passes.
func (p *process) waitReady(timeout time.Duration, probe func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready after %s: %w", p.name, p.cmd.Process.Pid, timeout, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s (pid %d): %w (%v); last probe: %v", p.name, p.cmd.Process.Pid, errExited, p.err, err)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the PID we started, waits up to stopGrace, then
// sends SIGKILL. It reports whether the process had already exited on its
// own before stop was called.
func (p *process) stop(t testing.TB) (exitedBefore bool) {
	t.Helper()
	if p.exited() {
		return true
	}
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("testenv: SIGTERM %s (pid %d): %v", p.name, pid, err)
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		return false
	case <-grace.C:
	}
	t.Logf("testenv: %s (pid %d) still running %s after SIGTERM; sending SIGKILL", p.name, pid, stopGrace)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("testenv: SIGKILL %s (pid %d): %v", p.name, pid, err)
	}
	grace.Reset(stopGrace)
	select {
	case <-p.done:
	case <-grace.C:
		t.Errorf("testenv: %s (pid %d) still running %s after SIGKILL", p.name, pid, stopGrace)
	}
	return false
}

// addrInUse reports whether a start failed because another process took
// our port between FreePort and bind. The log files hold the service's
// own words for it.
func addrInUse(err error, logs ...string) bool {
	if !errors.Is(err, errExited) {
		return false
	}
	for _, path := range logs {
		b, _ := os.ReadFile(path)
		if strings.Contains(strings.ToLower(string(b)), "address already in use") {
			return true
		}
	}
	return false
}

// logTails returns the last tailBytes of each file, labelled, for failure
// messages. Missing files are skipped.
func logTails(paths ...string) string {
	var sb strings.Builder
	for _, path := range paths {
		tail, err := readTail(path, tailBytes)
		if err != nil || len(strings.TrimSpace(tail)) == 0 {
			continue
		}
		fmt.Fprintf(&sb, "\n--- tail of %s ---\n%s", path, tail)
		if !strings.HasSuffix(tail, "\n") {
			sb.WriteByte('\n')
		}
	}
	if sb.Len() == 0 {
		return "\n(no log output)"
	}
	return sb.String()
}

func readTail(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if off := fi.Size() - n; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// findBinary resolves a service binary: $envVar if set (it must exist),
// else the first candidate that is an executable file. A candidate holding
// no path separator is looked up in $PATH.
func findBinary(envVar string, candidates ...string) (string, error) {
	if v := os.Getenv(envVar); v != "" {
		if err := isExecutable(v); err != nil {
			return "", fmt.Errorf("$%s=%q: %w", envVar, v, err)
		}
		return v, nil
	}
	for _, c := range candidates {
		if !strings.ContainsRune(c, filepath.Separator) {
			if p, err := exec.LookPath(c); err == nil {
				return p, nil
			}
			continue
		}
		if isExecutable(c) == nil {
			return c, nil
		}
	}
	return "", errNotFound
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// hostPort joins the loopback address and a port.
func hostPort(port int) string {
	return net.JoinHostPort(loopback, strconv.Itoa(port))
}
