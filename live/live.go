package live

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/telemetry"
)

// ErrStopped is returned by calls made while the Engine is not running.
var ErrStopped = errors.New("detector engine is not running")

// A Handler receives findings. It is called from the goroutine that
// called Observe, ObserveEvent or ObserveStatus, or from Run's timer loop
// for findings the clock decides; never concurrently with itself.
type Handler func(ctx context.Context, fs []telemetry.Finding)

// Options configure an Engine.
type Options struct {
	Config   Config
	Profiles map[string]detectors.Profile
	Handle   Handler          // required
	Now      func() time.Time // the clock for ticks and eviction; default time.Now
	Logger   *slog.Logger     // default discards
}

// An Engine is a sharded detectors.Engine. Observe, ObserveEvent,
// ObserveStatus and Reload are safe for concurrent use; a device's
// readings are decided in the order Observe receives them.
type Engine struct {
	cfg    Config
	handle Handler
	now    func() time.Time
	log    *slog.Logger
	seed   maphash.Seed
	shards []*shard

	handleMu sync.Mutex // serializes handler calls
	mu       sync.Mutex // guards running, quit
	running  bool
	quit     chan struct{}
	started  chan struct{} // closed once Run's workers take work
}

// shard is one worker goroutine and the Engine it alone touches.
type shard struct {
	e    *detectors.Engine
	work chan func(*detectors.Engine)
}

// New validates the profiles and returns an Engine; Run starts it.
func New(o Options) (*Engine, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Handle == nil {
		return nil, errors.New("live: Options.Handle is required")
	}
	n := o.Config.Shards
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	e := &Engine{cfg: o.Config, handle: o.Handle, now: o.Now, log: o.Logger, seed: maphash.MakeSeed(), started: make(chan struct{})}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for range n {
		de, err := detectors.NewEngine(o.Profiles)
		if err != nil {
			return nil, err
		}
		e.shards = append(e.shards, &shard{e: de, work: make(chan func(*detectors.Engine), 64)})
	}
	return e, nil
}

// Started is closed once Run is ready to take readings.
func (e *Engine) Started() <-chan struct{} { return e.started }

// shardOf returns the index of the shard that owns device id.
func (e *Engine) shardOf(id telemetry.DeviceID) int {
	return int(maphash.String(e.seed, string(id)) % uint64(len(e.shards)))
}

// Run restores the snapshot (if configured), starts the shard workers and
// drives ticks, eviction and snapshots until ctx is done; then it writes a
// last snapshot, stops the workers and returns. Nothing is handled after
// it returns.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.restore(); err != nil {
		return err
	}
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("live: Run called twice")
	}
	e.running, e.quit = true, make(chan struct{})
	e.mu.Unlock()
	close(e.started)
	var wg sync.WaitGroup
	for _, s := range e.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case f := <-s.work:
					f(s.e)
				case <-e.quit:
					return
				}
			}
		}()
	}
	e.log.Info("detector engine started", "shards", len(e.shards))
	tick := time.NewTicker(e.cfg.TickInterval)
	defer tick.Stop()
	snap := time.NewTicker(e.cfg.SnapshotInterval)
	defer snap.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			e.Tick(ctx)
		case <-snap.C:
			if err := e.snapshot(); err != nil {
				e.log.Warn("detector snapshot failed, will retry", "err", err)
			}
		}
	}
	err = e.snapshot()
	e.mu.Lock()
	e.running = false
	close(e.quit)
	e.mu.Unlock()
	wg.Wait()
	return err
}

// each runs f on every shard's engine (in its worker) and waits.
func (e *Engine) each(f func(i int, de *detectors.Engine)) error {
	e.mu.Lock()
	quit, running := e.quit, e.running
	e.mu.Unlock()
	if !running {
		return ErrStopped
	}
	var wg sync.WaitGroup
	for i, s := range e.shards {
		wg.Add(1)
		select {
		case s.work <- func(de *detectors.Engine) { defer wg.Done(); f(i, de) }:
		case <-quit:
			wg.Done()
		}
	}
	wg.Wait()
	return nil
}

// Observe decides a batch of readings, each on its device's shard, in
// parallel across shards and in order within a device, and hands the
// findings to the Handler.
func (e *Engine) Observe(ctx context.Context, rs []telemetry.Reading) error {
	// Index, not copy, the readings per shard: one []int32 for the batch.
	owner := make([]int32, len(rs))
	counts := make([]int, len(e.shards)+1)
	for j, r := range rs {
		owner[j] = int32(e.shardOf(r.Device))
		counts[owner[j]+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	order := make([]int32, len(rs))
	next := append([]int(nil), counts[:len(e.shards)]...)
	for j := range rs {
		order[next[owner[j]]] = int32(j)
		next[owner[j]]++
	}
	out := make([][]telemetry.Finding, len(e.shards))
	err := e.each(func(i int, de *detectors.Engine) {
		for _, j := range order[counts[i]:counts[i+1]] {
			out[i] = append(out[i], de.Observe(rs[j])...)
		}
	})
	e.deliver(ctx, out)
	return err
}

// ObserveEvent decides a device event (event rules).
func (e *Engine) ObserveEvent(ctx context.Context, ev telemetry.DeviceEvent) error {
	return e.one(ctx, ev.Device, func(de *detectors.Engine) []telemetry.Finding { return de.ObserveEvent(ev) })
}

// ObserveStatus decides a status change (offline rules, Last Will).
func (e *Engine) ObserveStatus(ctx context.Context, s telemetry.StatusChange) error {
	return e.one(ctx, s.Device, func(de *detectors.Engine) []telemetry.Finding { return de.ObserveStatus(s) })
}

func (e *Engine) one(ctx context.Context, id telemetry.DeviceID, f func(*detectors.Engine) []telemetry.Finding) error {
	want := e.shardOf(id)
	out := make([][]telemetry.Finding, len(e.shards))
	err := e.each(func(i int, de *detectors.Engine) {
		if i == want {
			out[i] = f(de)
		}
	})
	e.deliver(ctx, out)
	return err
}

// Tick advances every shard's offline rules to the clock's now and evicts
// devices idle longer than idle_evict_after. Run calls it every
// tick_interval; tests call it with their clock.
func (e *Engine) Tick(ctx context.Context) {
	now := e.now()
	out := make([][]telemetry.Finding, len(e.shards))
	evicted := make([]int, len(e.shards))
	_ = e.each(func(i int, de *detectors.Engine) {
		out[i] = de.Tick(now)
		if e.cfg.IdleEvictAfter > 0 {
			evicted[i] = de.Evict(now, e.cfg.IdleEvictAfter)
		}
	})
	n := 0
	for _, v := range evicted {
		n += v
	}
	if n > 0 {
		e.log.Debug("evicted idle devices", "devices", n)
	}
	e.deliver(ctx, out)
}

// Reload replaces the profiles on every shard, keeping the state of
// unchanged rules (detectors.Engine.Reload). A bad profile set changes
// nothing.
func (e *Engine) Reload(profiles map[string]detectors.Profile) error {
	if err := detectors.ValidateProfiles(profiles); err != nil {
		return err
	}
	var errs []error
	var mu sync.Mutex
	if err := e.each(func(_ int, de *detectors.Engine) {
		if err := de.Reload(profiles); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// Devices returns the number of devices with state, over all shards.
func (e *Engine) Devices() int {
	counts := make([]int, len(e.shards))
	_ = e.each(func(i int, de *detectors.Engine) { counts[i] = de.Devices() })
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func (e *Engine) deliver(ctx context.Context, out [][]telemetry.Finding) {
	var fs []telemetry.Finding
	for _, o := range out {
		fs = append(fs, o...)
	}
	if len(fs) == 0 {
		return
	}
	e.handleMu.Lock()
	defer e.handleMu.Unlock()
	e.handle(ctx, fs)
}

// snapshotName is the file of shard i of n.
func snapshotName(i, n int) string { return fmt.Sprintf("detectors-%03d-of-%03d.jsonl", i, n) }

// snapshot writes each shard's state to its file in snapshot_dir (a
// temporary file renamed into place), then removes files of other shard
// counts.
func (e *Engine) snapshot() error {
	dir := e.cfg.SnapshotDir
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	n := len(e.shards)
	errs := make([]error, n)
	if err := e.each(func(i int, de *detectors.Engine) { errs[i] = writeSnapshot(filepath.Join(dir, snapshotName(i, n)), de) }); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "detectors-*-of-*.jsonl"))
	for _, p := range old {
		if !strings.HasSuffix(p, fmt.Sprintf("-of-%03d.jsonl", n)) {
			_ = os.Remove(p)
		}
	}
	return nil
}

func writeSnapshot(path string, de *detectors.Engine) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := de.Snapshot(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return nil
}

// restore loads every snapshot file in snapshot_dir (whatever shard count
// wrote it) into the shards that own its devices. It runs before the
// workers start, so it touches the shard engines directly. A damaged file
// is logged and skipped from the damage on.
func (e *Engine) restore() error {
	if e.cfg.SnapshotDir == "" {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(e.cfg.SnapshotDir, "detectors-*-of-*.jsonl"))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	sort.Strings(files)
	total := 0
	for _, p := range files {
		for i, s := range e.shards {
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			n, err := s.e.Restore(f, func(id telemetry.DeviceID) bool { return e.shardOf(id) == i })
			f.Close()
			total += n
			if err != nil {
				// A damaged snapshot must not keep Forewarn down: the rest of
				// the file's devices start afresh.
				e.log.Error("detector snapshot unreadable, its remaining devices start afresh", "file", p, "err", err)
				break
			}
		}
	}
	if len(files) > 0 {
		e.log.Info("restored detector state", "devices", total, "files", len(files))
	}
	return nil
}
