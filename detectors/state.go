package detectors

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// stateful is implemented by every detector: state returns pointers to its
// mutable state, in a fixed order, for snapshots. The compiled rule is not
// state: it comes from the configuration.
type stateful interface {
	state() []any
}

func (t *Threshold) state() []any { return []any{&t.clk, &t.run} }
func (d *Rate) state() []any      { return []any{&d.clk, &d.run, &d.anchorAt, &d.anchorV} }
func (d *Flatline) state() []any {
	return []any{&d.clk, &d.since, &d.min, &d.max, &d.samples, &d.raised}
}
func (d *Offline) state() []any  { return []any{&d.clk, &d.raised} }
func (d *Anomaly) state() []any  { return []any{&d.clk, &d.run, &d.base, &d.cycle, &d.lik, &d.z} }
func (d *Forecast) state() []any { return []any{&d.clk, &d.run, &d.tr} }
func (d *Event) state() []any    { return []any{&d.clk, &d.raised} }
func (d *Usage) state() []any    { return []any{&d.clk, &d.tr, &d.prev, &d.raised} }
func (d *Context) state() []any {
	return []any{&d.clk, &d.N, &d.Min, &d.Max, &d.Width, &d.Hist, &d.Known, &d.Quiet, &d.Raised, &d.Nov}
}

// ruleKey identifies a rule's configuration: two rules with the same key
// behave the same, so a detector's state can move from one to the other
// (reload, restore). offlineAfter matters to offline rules only.
func ruleKey(r Rule, offlineAfter time.Duration) string {
	b, err := json.Marshal(r)
	if err != nil {
		panic("detectors: rule key: " + err.Error()) // a validated Rule always marshals
	}
	if r.Detector == DetectorOffline && r.For == 0 {
		return string(b) + "|offline_after=" + offlineAfter.String()
	}
	return string(b)
}

// snapDevice is one line of a snapshot.
type snapDevice struct {
	Device   telemetry.DeviceID `json:"device"`
	Model    string             `json:"model"`
	LastSeen int64              `json:"last_seen"`
	Rules    []snapRule         `json:"rules"`
}

type snapRule struct {
	Key   string            `json:"key"`
	State []json.RawMessage `json:"state"`
}

// snapshotVersion heads every snapshot; Restore rejects other versions.
const snapshotVersion = `{"forewarn_detectors_snapshot":1}`

// Snapshot writes the state of every device as JSON lines to w: a version
// line, then one line per device with its model and, per rule, the rule's
// configuration key and the detector's state. Restore reads it back.
func (e *Engine) Snapshot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(snapshotVersion + "\n")
	enc := json.NewEncoder(bw)
	for id, d := range e.devices {
		sd := snapDevice{Device: id, Model: d.model, LastSeen: d.lastSeen, Rules: make([]snapRule, len(d.detectors))}
		for i, det := range d.detectors {
			sr := snapRule{Key: d.profile.keys[i]}
			for _, p := range det.(stateful).state() {
				b, err := json.Marshal(p)
				if err != nil {
					return fmt.Errorf("snapshot device %s rule %s: %w", id, d.profile.keys[i], err)
				}
				sr.State = append(sr.State, b)
			}
			sd.Rules[i] = sr
		}
		if err := enc.Encode(sd); err != nil {
			return fmt.Errorf("snapshot device %s: %w", id, err)
		}
	}
	return bw.Flush()
}

// Restore reads a snapshot written by Snapshot and replaces the state of
// the devices it holds for which keep returns true (keep nil keeps all:
// a sharded caller restores each shard from the same snapshots). A device
// whose model has no profile now is skipped; a rule whose configuration changed since the snapshot (its key
// is not in the snapshot) starts afresh, as do new rules. It returns the
// number of devices restored.
func (e *Engine) Restore(r io.Reader, keep func(telemetry.DeviceID) bool) (int, error) {
	br := bufio.NewReader(r)
	head, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	if strings.TrimSpace(head) != snapshotVersion {
		return 0, fmt.Errorf("read snapshot: not a detectors snapshot (version line %q)", strings.TrimSpace(head))
	}
	dec := json.NewDecoder(br)
	n := 0
	for {
		var sd snapDevice
		if err := dec.Decode(&sd); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("read snapshot device %d: %w", n+1, err)
		}
		p := e.profiles[strings.ToLower(sd.Model)]
		if p == nil || keep != nil && !keep(sd.Device) {
			continue
		}
		saved := make(map[string][]json.RawMessage, len(sd.Rules))
		for _, sr := range sd.Rules {
			saved[sr.Key] = sr.State
		}
		d := &device{model: sd.Model, profile: p, detectors: p.newDetectors(), lastSeen: sd.LastSeen}
		for i, det := range d.detectors {
			st, ok := saved[p.keys[i]]
			if !ok {
				continue
			}
			ptrs := det.(stateful).state()
			if len(st) != len(ptrs) {
				return n, fmt.Errorf("read snapshot device %s: rule %d has %d state values, want %d", sd.Device, i, len(st), len(ptrs))
			}
			for j, raw := range st {
				if err := json.Unmarshal(raw, ptrs[j]); err != nil {
					return n, fmt.Errorf("read snapshot device %s rule %d: %w", sd.Device, i, err)
				}
			}
			if a, ok := det.(*Anomaly); ok && a.rule.season > 0 && len(a.cycle) != a.rule.buckets {
				d.detectors[i] = p.rules[i].newDetector() // inconsistent: start afresh
			}
			if c, ok := det.(*Context); ok && !c.consistent() {
				d.detectors[i] = p.rules[i].newDetector()
			}
		}
		e.devices[sd.Device] = d
		n++
	}
}

// Reload replaces the Engine's profiles with profiles (validated as by
// NewEngine) and keeps each device's state for every rule whose
// configuration is unchanged (same key); changed and new rules start
// afresh, removed rules are dropped, and a device whose model no longer
// has a profile is dropped. On error the Engine is unchanged.
func (e *Engine) Reload(profiles map[string]Profile) error {
	next, err := NewEngine(profiles)
	if err != nil {
		return err
	}
	for id, d := range e.devices {
		p := next.profiles[strings.ToLower(d.model)]
		if p == nil {
			continue
		}
		old := make(map[string]Detector, len(d.detectors))
		for i, det := range d.detectors {
			old[d.profile.keys[i]] = det
		}
		dets := make([]Detector, len(p.rules))
		for i, r := range p.rules {
			if det, ok := old[p.keys[i]]; ok {
				dets[i] = det
			} else {
				dets[i] = r.newDetector()
			}
		}
		next.devices[id] = &device{model: d.model, profile: p, detectors: dets, lastSeen: d.lastSeen}
	}
	*e = *next
	return nil
}
