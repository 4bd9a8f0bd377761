// Command benchingest is the end-to-end ingest benchmark behind `make
// bench-ingest`: a bounded load generator -> a real Mosquitto -> `forewarn
// serve` (and, in the same run, Telegraf's mqtt_consumer -> influxdb_v2) ->
// a real InfluxDB 1.8, at QoS 0 and QoS 1, stepping the offered rate. For
// each step it reports what was sent and stored, the stored points per
// second, the consumer's CPU per message and its peak RSS. Everything runs
// on loopback; every process it starts is stopped by its PID.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

type options struct {
	forewarn, telegraf, influxd, mosquitto, mosqConf string
	rates0, rates1                                   string
	duration, drain                                  time.Duration
	devices, conns                                   int
	systems                                          string
	profileDir                                       string
}

func main() {
	var o options
	flag.StringVar(&o.forewarn, "forewarn", "bin/forewarn", "forewarn binary")
	flag.StringVar(&o.telegraf, "telegraf", "bin/telegraf", "telegraf binary (custom build, see Makefile)")
	flag.StringVar(&o.influxd, "influxd", "bin/influxd", "influxd 1.8 binary")
	flag.StringVar(&o.mosquitto, "mosquitto", "mosquitto", "mosquitto binary")
	flag.StringVar(&o.mosqConf, "mosquitto-conf", "examples/mosquitto.conf", "broker settings (listener and paths are rewritten)")
	flag.StringVar(&o.rates0, "qos0", "40000,80000,100000", "offered rates (msgs/s) at QoS 0, comma separated")
	flag.StringVar(&o.rates1, "qos1", "30000,45000,60000", "offered rates (msgs/s) at QoS 1")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load duration per step")
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "longest wait for the stored count to settle after a step")
	flag.IntVar(&o.devices, "devices", 10000, "distinct device ids")
	flag.IntVar(&o.conns, "conns", 4, "publisher connections")
	flag.StringVar(&o.systems, "systems", "forewarn,telegraf", "consumers to measure")
	flag.StringVar(&o.profileDir, "cpuprofile", "", "write a CPU profile of each forewarn step into this directory (FOREWARN_CPUPROFILE)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchingest:", err)
		os.Exit(1)
	}
}

// proc is a process we started; stop ends it by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func start(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=2"), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cpu returns the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// selfCPU returns this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perMsg is d per message in µs.
func perMsg(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return d.Seconds() * 1e6 / float64(n)
}

// peakRSS returns VmHWM in MiB.
func (p *proc) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(what string, d time.Duration, p *proc, ok func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited while starting (see its log)", p.name)
		}
		if ok() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", what, d)
}

type env struct {
	dir          string
	brokerURL    string
	influxURL    string
	broker, infl *proc
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "benchingest-")
	if err != nil {
		return err
	}
	fmt.Printf("# benchingest: work dir %s\n", dir)
	e := &env{dir: dir}
	// Mosquitto with the shipped settings.
	conf, err := os.ReadFile(o.mosqConf)
	if err != nil {
		return err
	}
	mport := freePort()
	var lines []string
	for _, l := range strings.Split(string(conf), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "listener":
			l = fmt.Sprintf("listener %d 127.0.0.1", mport)
		case len(f) > 0 && f[0] == "persistence_location":
			l = "persistence_location " + dir + "/"
		case len(f) > 0 && f[0] == "log_dest":
			continue
		}
		lines = append(lines, l)
	}
	if os.Geteuid() == 0 {
		lines = append(lines, "user root")
	}
	lines = append(lines, "log_dest file "+filepath.Join(dir, "mosquitto.out"))
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if e.broker, err = start(dir, "mosquitto", nil, o.mosquitto, "-c", filepath.Join(dir, "mosquitto.conf")); err != nil {
		return err
	}
	defer e.broker.stop()
	e.brokerURL = fmt.Sprintf("tcp://127.0.0.1:%d", mport)
	if err := waitFor("mosquitto", 10*time.Second, e.broker, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", mport))
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return err
	}
	// InfluxDB 1.8.
	iport, rport := freePort(), freePort()
	iconf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  flux-enabled = true
  log-enabled = false
[logging]
  level = "warn"
`, rport, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), iport)
	if err := os.WriteFile(filepath.Join(dir, "influxd.conf"), []byte(iconf), 0o644); err != nil {
		return err
	}
	if e.infl, err = start(dir, "influxd", nil, o.influxd, "run", "-config", filepath.Join(dir, "influxd.conf")); err != nil {
		return err
	}
	defer e.infl.stop()
	e.influxURL = fmt.Sprintf("http://127.0.0.1:%d", iport)
	if err := waitFor("influxd", 30*time.Second, e.infl, func() bool {
		resp, err := http.Get(e.influxURL + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}); err != nil {
		return err
	}

	fmt.Printf("%-9s %-4s %8s %8s %9s %9s %9s %10s %9s %9s %9s %9s %9s\n", "system", "qos", "offered", "sent/s", "sent", "stored", "complete", "stored/s", "cpu/msg", "peak_rss", "broker", "influxd", "load")
	step := 0
	for _, q := range []struct {
		qos   byte
		rates string
	}{{0, o.rates0}, {1, o.rates1}} {
		for _, rs := range strings.Split(q.rates, ",") {
			rate, err := strconv.Atoi(strings.TrimSpace(rs))
			if err != nil || rate <= 0 {
				continue
			}
			for _, sys := range strings.Split(o.systems, ",") {
				step++
				res, err := e.step(o, strings.TrimSpace(sys), q.qos, rate, step)
				if err != nil {
					return fmt.Errorf("%s qos %d at %d/s: %w", sys, q.qos, rate, err)
				}
				fmt.Printf("%-9s %-4d %8d %8.0f %9d %9d %9v %10.0f %7.2fµs %6.0fMiB %7.2fµs %7.2fµs %7.2fµs\n", sys, q.qos, rate, res.sentPerSec, res.sent, res.stored,
					res.stored == res.sent, res.storedPerSec, res.cpuPerMsg.Seconds()*1e6, res.rss,
					perMsg(res.brokerCPU, res.sent), perMsg(res.influxCPU, res.stored), perMsg(res.loadCPU, res.sent))
			}
		}
	}
	return nil
}

type result struct {
	sent, stored int64
	sentPerSec   float64
	storedPerSec float64
	cpuPerMsg    time.Duration
	// CPU over the step of the broker, InfluxDB and the load generator
	// (this process: publishing, and the count queries while settling).
	brokerCPU, influxCPU, loadCPU time.Duration
	rss                           float64
}

func (e *env) query(db, q string) (int64, error) {
	resp, err := http.PostForm(e.influxURL+"/query", url.Values{"db": {db}, "q": {q}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Values [][]json.RawMessage `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("query %q: %s", q, body)
	}
	if len(r.Results) == 0 || r.Results[0].Error != "" {
		return 0, fmt.Errorf("query %q: %s", q, body)
	}
	if len(r.Results[0].Series) == 0 || len(r.Results[0].Series[0].Values) == 0 {
		return 0, nil
	}
	return strconv.ParseInt(string(r.Results[0].Series[0].Values[0][1]), 10, 64)
}

func (e *env) step(o options, sys string, qos byte, rate, step int) (result, error) {
	db := fmt.Sprintf("bench_%s_q%d_%d_%d", sys, qos, rate, step) // a fresh database per step, repeated rates too
	if _, err := e.query("", fmt.Sprintf("CREATE DATABASE %q", db)); err != nil {
		return result{}, err
	}
	prefix := fmt.Sprintf("b%d", step)
	var p *proc
	var err error
	field := "supply_temp_c"
	switch sys {
	case "forewarn":
		httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
		cfg := fmt.Sprintf(`log: {level: warn}
mqtt: {url: %q, client_id: %q, topic_prefix: %q}
influx: {url: %q, org: bench, bucket: "%s/autogen", batch_size: 5000, flush_interval: 100ms}
spool: {dir: %q}
store: {dsn: "sqlite:%s"}
http: {addr: %q, admin_token: benchmark-admin-token}
`, e.brokerURL, "fw-"+prefix, prefix, e.influxURL, db, filepath.Join(e.dir, prefix+"-spool"), filepath.Join(e.dir, prefix+".db"), httpAddr)
		path := filepath.Join(e.dir, prefix+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return result{}, err
		}
		var env []string
		if o.profileDir != "" {
			env = append(env, "FOREWARN_CPUPROFILE="+filepath.Join(o.profileDir, fmt.Sprintf("forewarn-q%d-%d.prof", qos, rate)))
		}
		if p, err = start(e.dir, prefix+"-forewarn", env, o.forewarn, "serve", "--config", path); err != nil {
			return result{}, err
		}
		if err := waitFor("forewarn", 30*time.Second, p, func() bool {
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == 200
		}); err != nil {
			p.stop()
			return result{}, err
		}
		// A known fleet (steady state): the devices are registered in one
		// import, as an operator would, so the step measures ingest, not
		// the registry's first sightings (each new device is one more row
		// and audit entry, a one-time cost per device).
		if err := registerFleet(httpAddr, prefix, o.devices); err != nil {
			p.stop()
			return result{}, err
		}
	case "telegraf":
		field = "metrics_supply_temp_c"
		conf := fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "100ms"
  metric_batch_size = 5000
  metric_buffer_limit = 1000000
  omit_hostname = true
  quiet = true
[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = ["%s/+/telemetry"]
  qos = %d
  client_id = "tg-%s"
  persistent_session = true
  max_undelivered_messages = 10000
  data_format = "json"
  json_time_key = "ts"
  json_time_format = "unix_ns"
  tag_keys = ["model"]
  name_override = "telemetry"
  [[inputs.mqtt_consumer.topic_parsing]]
    topic = "%s/+/telemetry"
    tags = "_/device_id/_"
[[outputs.influxdb_v2]]
  urls = [%q]
  token = ""
  organization = "bench"
  bucket = "%s/autogen"
`, e.brokerURL, prefix, qos, prefix, prefix, e.influxURL, db)
		path := filepath.Join(e.dir, prefix+".toml")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return result{}, err
		}
		if p, err = start(e.dir, prefix+"-telegraf", nil, o.telegraf, "--config", path); err != nil {
			return result{}, err
		}
		// Telegraf has no readiness endpoint: wait until a probe reading is stored.
		probe := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.brokerURL).SetClientID("probe-" + prefix))
		if tok := probe.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			p.stop()
			return result{}, errors.New("probe connect failed")
		}
		err := waitFor("telegraf", 30*time.Second, p, func() bool {
			probe.Publish(prefix+"/probe/telemetry", 1, false, fmt.Sprintf(`{"ts":%d,"model":"probe","metrics":{"supply_temp_c":1}}`, time.Now().Add(-48*time.Hour).UnixNano())).Wait()
			n, _ := e.query(db, fmt.Sprintf(`SELECT count(%q) FROM "telemetry"`, field))
			return n > 0
		})
		probe.Disconnect(100)
		if err != nil {
			p.stop()
			return result{}, err
		}
	default:
		return result{}, fmt.Errorf("unknown system %q", sys)
	}
	defer p.stop()
	if sys == "forewarn" {
		// The same probe, so both consumers start from one stored point.
		probe := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.brokerURL).SetClientID("probe-" + prefix))
		if tok := probe.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return result{}, errors.New("probe connect failed")
		}
		probe.Publish(prefix+"/probe/telemetry", 1, false, fmt.Sprintf(`{"ts":%d,"model":"probe","metrics":{"supply_temp_c":1}}`, time.Now().Add(-48*time.Hour).UnixNano())).Wait()
		probe.Disconnect(100)
		if err := waitFor("probe", 10*time.Second, p, func() bool {
			n, _ := e.query(db, fmt.Sprintf(`SELECT count(%q) FROM "telemetry"`, field))
			return n > 0
		}); err != nil {
			return result{}, err
		}
	}

	cpu0, bcpu0, icpu0, lcpu0 := p.cpu(), e.broker.cpu(), e.infl.cpu(), selfCPU()
	t0 := time.Now()
	sent, err := e.load(o, prefix, qos, rate)
	if err != nil {
		return result{}, err
	}
	sendTime := time.Since(t0)
	// Wait until the count settles (or reaches what was sent).
	var stored, last int64
	lastChange := time.Now()
	deadline := time.Now().Add(o.drain)
	var tDone time.Time
	for time.Now().Before(deadline) {
		n, err := e.query(db, fmt.Sprintf(`SELECT count(%q) FROM "telemetry" WHERE time > now() - 24h`, field))
		if err == nil {
			stored = n
		}
		if stored != last {
			last, lastChange, tDone = stored, time.Now(), time.Now()
		}
		if stored >= sent || time.Since(lastChange) > 5*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if tDone.IsZero() {
		tDone = time.Now()
	}
	cpu := p.cpu() - cpu0
	res := result{sent: sent, sentPerSec: float64(sent) / sendTime.Seconds(), stored: stored,
		storedPerSec: float64(stored) / tDone.Sub(t0).Seconds(), rss: p.peakRSS(),
		brokerCPU: e.broker.cpu() - bcpu0, influxCPU: e.infl.cpu() - icpu0, loadCPU: selfCPU() - lcpu0}
	if stored > 0 {
		res.cpuPerMsg = cpu / time.Duration(stored)
	}
	return res, nil
}

// load publishes rate msgs/s for o.duration over o.conns connections, each
// a ~200-byte JSON reading of one of o.devices devices with a unique
// timestamp, and returns how many the broker took.
func (e *env) load(o options, prefix string, qos byte, rate int) (int64, error) {
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.conns)
	base := time.Now().Add(-time.Hour).UnixNano()
	total := int(float64(rate) * o.duration.Seconds())
	per := total / o.conns
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+30*time.Second)
	defer cancel()
	// Topics and payload tails made once, so the generator spends its CPU
	// on publishing.
	topics := make([]string, o.devices)
	for d := range topics {
		topics[d] = fmt.Sprintf("%s/hp-%05d/telemetry", prefix, d)
	}
	tails := make([][]byte, 100)
	for k := range tails {
		tails[k] = fmt.Appendf(nil, `,"model":"heatpump-a2","fw":"1.4.2","metrics":{"supply_temp_c":%d.%d,"return_temp_c":31.%d,"compressor_amps":7.%d,"flow_l_min":12.%d,"defrost":false}}`,
			40+k%20, k%10, k%9, k%7, k%5)
	}
	addr := strings.TrimPrefix(e.brokerURL, "tcp://")
	for c := range o.conns {
		wg.Go(func() {
			pub, err := dialRaw(addr, fmt.Sprintf("load-%s-%d", prefix, c), qos, 1000)
			if err != nil {
				errs <- fmt.Errorf("load connection %d: %w", c, err)
				return
			}
			start := time.Now()
			interval := time.Duration(float64(time.Second) * float64(o.conns) / float64(rate))
			payload := make([]byte, 0, 256)
			for i := range per {
				if i%64 == 0 { // pace in slices of 64 messages
					if err = pub.flush(); err != nil {
						break
					}
					if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
						time.Sleep(d)
					}
					if ctx.Err() != nil {
						break
					}
				}
				n := c*per + i
				payload = append(strconv.AppendInt(append(payload[:0], `{"ts":`...), base+int64(n), 10), tails[n%len(tails)]...)
				if err = pub.publish(topics[n%o.devices], payload); err != nil {
					break
				}
			}
			// QoS 1: acknowledged by the broker; QoS 0: written to it.
			n, cerr := pub.close(30 * time.Second)
			sent.Add(n)
			if err = errors.Join(err, cerr); err != nil {
				errs <- fmt.Errorf("load connection %d: %w", c, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return sent.Load(), nil
}

// registerFleet imports the step's devices (hp-00000 …) into forewarn's
// registry over the REST API.
func registerFleet(httpAddr, prefix string, devices int) error {
	var body bytes.Buffer
	body.WriteString("id,model\n")
	for d := range devices {
		fmt.Fprintf(&body, "hp-%05d,heatpump-a2\n", d)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/api/v1/devices:import", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer benchmark-admin-token")
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("register the fleet: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("register the fleet: %s: %s", resp.Status, b)
	}
	return nil
}
