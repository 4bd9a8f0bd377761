package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/forewarn/forewarn/config"
	"github.com/forewarn/forewarn/simulator"
	"github.com/forewarn/forewarn/telemetry"
)

// simulateFlags are simulate's own flags, beside the config flags.
type simulateFlags struct {
	opts      simulator.Options
	kinds     []string
	speed     string
	qos       int
	conns     string
	clientID  string
	start     string
	truthFile string
	evaluate  bool
	report    string
	api       string
	token     string
	settle    time.Duration
	keepUp    bool
	window    int
	regFleet  bool
	regWork   int
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := newSimulateFlags()
	o := &sf.opts
	var interval time.Duration
	cfg, fs, err := parseConfigFlags("simulate", args, stderr, func(fs *pflag.FlagSet) { sf.register(fs, &interval) })
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := sf.resolve(cfg, fs, interval); err != nil {
		return usageError{err.Error()}
	}
	if sf.evaluate && sf.token == "" {
		return usageError{"--evaluate needs a token: set http.admin_token in the config or pass --token"}
	}
	if sf.regFleet && sf.token == "" {
		return usageError{"--register needs an admin token: set http.admin_token in the config or pass --token"}
	}
	if sf.regFleet {
		fleet := simulator.NewFleet(*o, o.Start)
		fmt.Fprintf(stdout, "registering the fleet's owners and devices at %s (%d at a time)\n", sf.api, sf.regWork)
		st, err := simulator.RegisterFleet(ctx, &http.Client{Timeout: 30 * time.Second}, sf.api, sf.token, fleet, sf.regWork)
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
		fmt.Fprintf(stdout, "registered %d customers (%d new) and %d devices (%d new) in %s\n",
			st.Customers, st.CustomersCreated, st.Devices, st.DevicesCreated, st.Elapsed.Round(time.Millisecond))
	}
	if sf.keepUp {
		o.Throttle = &simulator.MetricsThrottle{Client: &http.Client{Timeout: 10 * time.Second}, URL: sf.api + "/metrics", Token: sf.token, Window: sf.window}
	}
	var pub simulator.Publisher
	if sf.conns == "per-device" {
		dp, err := simulator.NewDevicePublisher(cfg.MQTT.URL, cfg.MQTT.Username, cfg.MQTT.Password, sf.clientID, o.Prefix, byte(sf.qos))
		if err != nil {
			return usageError{err.Error()}
		}
		defer dp.Close()
		pub = dp
	} else {
		if sf.clientID == "" {
			sf.clientID = fmt.Sprintf("forewarn-sim-%d", time.Now().UnixNano()%1e9)
		}
		mp, err := simulator.DialMQTT(ctx, cfg.MQTT.URL, sf.clientID, cfg.MQTT.Username, cfg.MQTT.Password)
		if err != nil {
			return err
		}
		defer mp.Close()
		if err := mp.SetQoS(byte(sf.qos)); err != nil {
			return usageError{err.Error()}
		}
		pub = mp
	}
	speed := "max"
	if o.Interval > 0 {
		speed = strconv.FormatFloat(float64(o.Step)/float64(o.Interval), 'g', 4, 64) + "x"
	}
	fmt.Fprintf(stdout, "simulating %d devices (%.0f%% faulty), a reading every %s of event time at speed %s, from %s, to %s under %s/\n",
		o.Devices, o.FaultyFraction*100, o.Step, speed, o.Start.Format(time.RFC3339), cfg.MQTT.URL, o.Prefix)
	prog := stdout
	if f, ok := stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			o.Progress, o.ProgressLive = time.Second, true
		}
	}
	rep, runErr := simulator.Run(ctx, *o, pub, prog)
	rep.Summary(stdout)
	if sf.truthFile != "" {
		if err := writeTruth(sf.truthFile, rep.Truth); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if runErr != nil || !sf.evaluate {
		return runErr
	}
	return sf.runEvaluate(ctx, rep, stdout)
}

func newSimulateFlags() *simulateFlags {
	sf := &simulateFlags{opts: simulator.DefaultOptions()}
	sf.opts.Kinds, sf.opts.Scenarios, sf.opts.FaultAfter = nil, []string{"all"}, 0
	return sf
}

// register adds simulate's flags to fs; --interval goes to interval.
func (sf *simulateFlags) register(fs *pflag.FlagSet, interval *time.Duration) {
	o := &sf.opts
	fs.IntVar(&o.Devices, "devices", o.Devices, "number of virtual devices")
	fs.StringSliceVar(&sf.kinds, "kinds", []string{"all"}, "product kinds, assigned round-robin: all, heatpump, waterheater, evcharger, waterpump")
	fs.StringSliceVar(&o.Scenarios, "scenarios", o.Scenarios, "fault scenarios to inject: all, or names ("+strings.Join(simulator.ScenarioNames(), ", ")+")")
	fs.Float64Var(&o.FaultyFraction, "faulty", o.FaultyFraction, "share of devices that get a fault (0..1)")
	fs.Float64Var(&o.RolloutShare, "rollout-share", o.RolloutShare, "share of EV chargers the bad firmware reaches (firmware_rollout)")
	fs.IntVar(&o.FaultAfter, "fault-after", 0, "start every fault after this many readings (default: onsets spread over 10-60% of the run)")
	fs.DurationVar(&o.Step, "step", time.Minute, "event time between two readings of a device")
	fs.StringVar(&sf.speed, "speed", "1", `event time per wall-clock time: 1 (real time), 60, or "max" (as fast as the broker takes it)`)
	fs.DurationVar(interval, "interval", 0, "wall-clock time between two readings of a device (sets --speed to step/interval; --step defaults to it)")
	fs.DurationVar(&o.SimDuration, "sim-duration", 0, "stop after this much event time (e.g. 720h)")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (wall clock)")
	fs.IntVar(&o.Count, "count", 0, "stop after this many messages in total")
	fs.Float64Var(&o.Rate, "rate", 0, "publish at most this many messages per second in total (0: no limit)")
	fs.IntVar(&sf.qos, "qos", 1, "MQTT QoS of telemetry and events: 0 or 1")
	fs.StringVar(&sf.conns, "connections", "shared", fmt.Sprintf("shared: one MQTT connection for the fleet (Last Will emulated); per-device: one per device with a real Last Will (at most %d devices)", simulator.MaxDeviceConnections))
	fs.BoolVar(&o.Status, "status", true, "publish retained online/offline to {prefix}/{id}/status (what each device's Last Will would say)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (same seed, start and flags: same messages)")
	fs.StringVar(&sf.start, "start", "", "event time of the first reading, RFC 3339 (default: now, or now - sim-duration when faster than real time)")
	fs.StringVar(&o.IDPrefix, "id-prefix", o.IDPrefix, "device id prefix")
	fs.StringVar(&sf.clientID, "client-id", "", "MQTT client id (default forewarn-sim-<n>); with per-device connections, a prefix of the device ids")
	fs.StringVar(&sf.truthFile, "truth", "", "write the ground truth of the injected faults to this file (JSON lines)")
	fs.BoolVar(&sf.evaluate, "evaluate", false, "after the run, read Forewarn's tickets over the REST API and score them against the ground truth")
	fs.StringVar(&sf.report, "report", "", "write the evaluation as JSON to this file (implies --evaluate)")
	fs.StringVar(&sf.api, "api", "", "Forewarn's base URL for --evaluate and --register (default http://<http.addr>)")
	fs.StringVar(&sf.token, "token", "", "bearer token for --evaluate and --register (an admin token; default http.admin_token)")
	fs.BoolVar(&sf.keepUp, "keep-up", false, "hold the run back until Forewarn's ingest (<api>/metrics) is at most --keep-up-window readings behind; on by default with --evaluate, since a broker drops what a slow subscriber cannot take")
	fs.IntVar(&sf.window, "keep-up-window", 500, "readings the simulator may be ahead of Forewarn with --keep-up (keep it under the broker's per-client queue, Mosquitto's max_queued_messages)")
	fs.BoolVar(&sf.regFleet, "register", false, "before publishing, create or replace every owner (PUT /api/v1/customers/{id}) and device (PUT /api/v1/devices/{id}) over the REST API (--api, --token); needed with registry.unknown_devices: reject")
	fs.IntVar(&sf.regWork, "register-workers", simulator.DefaultRegisterWorkers, "concurrent requests of --register")
	fs.DurationVar(&sf.settle, "settle", 2*time.Minute, "longest wait for Forewarn to catch up before evaluating")
}

// resolve turns the flags into Options: kinds, speed, start, API defaults.
func (sf *simulateFlags) resolve(cfg config.Config, fs *pflag.FlagSet, interval time.Duration) error {
	o := &sf.opts
	o.Prefix = cfg.MQTT.TopicPrefix
	o.Kinds = nil
	for _, k := range sf.kinds {
		if k == "all" {
			o.Kinds = append(o.Kinds, simulator.AllKinds()...)
			continue
		}
		kind, err := simulator.ParseKind(k)
		if err != nil {
			return fmt.Errorf("kinds: %w", err)
		}
		o.Kinds = append(o.Kinds, kind)
	}
	switch {
	case interval > 0:
		if !fs.Changed("step") {
			o.Step = interval
		}
		o.Interval = interval
	case sf.speed == "max":
		o.Interval = 0
	default:
		s, err := strconv.ParseFloat(sf.speed, 64)
		if err != nil || s <= 0 || math.IsInf(s, 0) {
			return fmt.Errorf(`speed: %q is not a positive number or "max"`, sf.speed)
		}
		o.Interval = time.Duration(float64(o.Step) / s)
	}
	switch sf.conns {
	case "shared":
	case "per-device":
		if o.Devices > simulator.MaxDeviceConnections {
			return fmt.Errorf("connections: per-device allows at most %d devices, not %d (use shared)", simulator.MaxDeviceConnections, o.Devices)
		}
	default:
		return fmt.Errorf("connections: %q is not shared or per-device", sf.conns)
	}
	if sf.qos != 0 && sf.qos != 1 {
		return fmt.Errorf("qos: %d is not 0 or 1", sf.qos)
	}
	if sf.start != "" {
		t, err := time.Parse(time.RFC3339, sf.start)
		if err != nil {
			return fmt.Errorf("start: %w", err)
		}
		o.Start = t
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Start.IsZero() {
		o.Start = simulator.DefaultStart(*o, time.Now())
	}
	if sf.report != "" {
		sf.evaluate = true
	}
	if sf.evaluate && !fs.Changed("keep-up") {
		sf.keepUp = true
	}
	if sf.regWork < 1 || sf.regWork > 256 {
		return fmt.Errorf("register-workers: %d is out of range 1..256", sf.regWork)
	}
	if sf.window < 1 {
		return fmt.Errorf("keep-up-window: %d must be positive", sf.window)
	}
	if sf.api == "" {
		sf.api = "http://" + cfg.HTTP.Addr
	}
	if sf.token == "" {
		sf.token = cfg.HTTP.AdminToken
	}
	return nil
}

func writeTruth(path string, truth []simulator.Truth) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write ground truth: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, tr := range truth {
		if err := enc.Encode(tr); err != nil {
			f.Close()
			return fmt.Errorf("write ground truth to %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write ground truth to %s: %w", path, err)
	}
	return nil
}

// runEvaluate waits until Forewarn's tickets stop changing (bounded by
// --settle), then scores them and writes the table and the JSON report.
func (sf *simulateFlags) runEvaluate(ctx context.Context, rep simulator.Report, stdout io.Writer) error {
	client := &http.Client{Timeout: 30 * time.Second}
	fmt.Fprintf(stdout, "waiting for Forewarn at %s to catch up (at most %s)\n", sf.api, sf.settle)
	tickets, err := settleTickets(ctx, client, sf.api, sf.token, sf.settle)
	if err != nil {
		return err
	}
	end := rep.LastAt.Add(sf.opts.Step)
	prefix := sf.opts.IDPrefix
	ev := simulator.Evaluate(simulator.EvalInput{
		Truth: rep.Truth, Tickets: tickets, Start: rep.FirstAt, End: end, DeviceDays: rep.DeviceDays,
		InFleet: func(id telemetry.DeviceID) bool { return fleetDevice(string(id), prefix, sf.opts.Devices) },
	})
	ev.Table(stdout)
	if sf.report == "" {
		return nil
	}
	out := struct {
		simulator.Evaluation
		Run runInfo `json:"run"`
	}{ev, runInfo{
		Devices: sf.opts.Devices, Seed: sf.opts.Seed, Start: rep.FirstAt, End: end, Step: sf.opts.Step.String(),
		Scenarios: sf.opts.Scenarios, FaultyFraction: sf.opts.FaultyFraction, Messages: rep.Sent, Readings: rep.Readings,
		Elapsed: rep.Elapsed.Seconds(),
	}}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(sf.report, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

type runInfo struct {
	Devices        int       `json:"devices"`
	Seed           uint64    `json:"seed"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	Step           string    `json:"step"`
	Scenarios      []string  `json:"scenarios"`
	FaultyFraction float64   `json:"faulty_fraction"`
	Messages       int       `json:"messages"`
	Readings       int       `json:"readings"`
	Elapsed        float64   `json:"elapsed_s"`
}

// fleetDevice reports whether id is one of the run's device ids: prefix
// and a number below n.
func fleetDevice(id, prefix string, n int) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(rest)
	return err == nil && i >= 0 && i < n
}

// settleTickets polls the tickets until the list is unchanged for five
// seconds in a row, or max passed, and returns the last list.
func settleTickets(ctx context.Context, client *http.Client, api, token string, max time.Duration) ([]simulator.Ticket, error) {
	deadline := time.Now().Add(max)
	var last []simulator.Ticket
	stable := -1 // the first poll has nothing to compare with
	for {
		tickets, err := simulator.FetchTickets(ctx, client, api, token)
		if err != nil {
			return nil, err
		}
		switch {
		case stable < 0:
			stable = 0
		case sameTickets(tickets, last):
			stable++
		default:
			stable = 0
		}
		last = tickets
		if stable >= 5 || time.Now().After(deadline) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func sameTickets(a, b []simulator.Ticket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
