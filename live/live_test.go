package live

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/telemetry"
)

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func f64(v float64) *float64 { return &v }

// profiles: hot raises above 65 after 10m; offline after 30m of silence.
func profiles() map[string]detectors.Profile {
	return map[string]detectors.Profile{"hp": {OfflineAfter: 30 * time.Minute, Rules: []detectors.Rule{
		{Name: "hot", Metric: "t", Detector: "threshold", Above: f64(65), For: 10 * time.Minute, Fault: "hot", Severity: telemetry.SeverityMajor},
	}}}
}

// recorder is a Handler that keeps what it gets.
type recorder struct {
	mu sync.Mutex
	fs []telemetry.Finding
}

func (r *recorder) handle(_ context.Context, fs []telemetry.Finding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fs = append(r.fs, fs...)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, f := range r.fs {
		out = append(out, fmt.Sprintf("%s %s %s %s", f.At.Sub(t0), f.Device, f.Fault, f.State))
	}
	sort.Strings(out)
	return out
}

// start runs an Engine until the test ends and returns it with its
// recorder, its cancel and a function that waits for Run's result.
func start(t *testing.T, cfg Config, now func() time.Time) (*Engine, *recorder, context.CancelFunc, func() error) {
	t.Helper()
	rec := &recorder{}
	e, err := New(Options{Config: cfg, Profiles: profiles(), Handle: rec.handle, Now: now,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var runErr error
	go func() { runErr = e.Run(ctx); close(finished) }()
	wait := func() error { <-finished; return runErr }
	t.Cleanup(func() { cancel(); _ = wait() })
	require.Eventually(t, func() bool { return e.Observe(ctx, nil) == nil }, 5*time.Second, time.Millisecond)
	return e, rec, cancel, wait
}

func reading(dev string, min int, v float64) telemetry.Reading {
	return telemetry.Reading{Device: telemetry.DeviceID(dev), Model: "hp", At: t0.Add(time.Duration(min) * time.Minute),
		Fields: []telemetry.Field{{Name: "t", Value: v}}}
}

// TestShardedMatchesSingle: sharding changes nothing about the findings.
func TestShardedMatchesSingle(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 4
	e, rec, _, _ := start(t, cfg, nil)
	single, err := detectors.NewEngine(profiles())
	require.NoError(t, err)
	var want []string
	ctx := context.Background()
	for min := range 60 {
		var batch []telemetry.Reading
		for d := range 50 {
			v := 60.0
			if (min/15+d)%3 == 0 {
				v = 70
			}
			if d%10 == 7 && min > 20 && min < 55 { // silent for a while
				continue
			}
			r := reading(fmt.Sprintf("dev-%02d", d), min, v)
			batch = append(batch, r)
			for _, f := range single.Observe(r) {
				want = append(want, fmt.Sprintf("%s %s %s %s", f.At.Sub(t0), f.Device, f.Fault, f.State))
			}
		}
		require.NoError(t, e.Observe(ctx, batch))
	}
	sort.Strings(want)
	require.NotEmpty(t, want)
	require.Equal(t, want, rec.lines())
	require.Equal(t, 50, e.Devices())
}

// TestTickClock: offline rules fire from the injected clock, at last+for.
func TestTickClock(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := DefaultConfig()
	cfg.Shards, cfg.TickInterval, cfg.IdleEvictAfter = 2, time.Hour, 2*time.Hour // ticks only when the test calls Tick
	e, rec, _, _ := start(t, cfg, clock)
	ctx := context.Background()
	require.NoError(t, e.Observe(ctx, []telemetry.Reading{reading("a", 0, 20), reading("b", 10, 20)}))
	mu.Lock()
	now = t0.Add(35 * time.Minute)
	mu.Unlock()
	e.Tick(ctx)
	require.Equal(t, []string{"30m0s a offline raised"}, rec.lines())
	// The Last Will of b raises at once; its next reading clears it.
	require.NoError(t, e.ObserveStatus(ctx, telemetry.StatusChange{Device: "b", At: t0.Add(36 * time.Minute)}))
	require.NoError(t, e.Observe(ctx, []telemetry.Reading{reading("b", 37, 20)}))
	require.Equal(t, []string{"30m0s a offline raised", "36m0s b offline raised", "37m0s b offline cleared"}, rec.lines())
	// Idle eviction at now-2h: a (last seen 0m) goes, b (37m) stays.
	mu.Lock()
	now = t0.Add(2*time.Hour + 10*time.Minute)
	mu.Unlock()
	e.Tick(ctx)
	require.Equal(t, 1, e.Devices())
}

// TestSnapshotSurvivesRestart: a restart (with another shard count) keeps
// a half-done raise run and does not raise an open fault again.
func TestSnapshotSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Shards, cfg.SnapshotDir = 3, dir
	e, rec, cancel, done := start(t, cfg, nil)
	ctx := context.Background()
	// a: raised at 10m. b: hot since 10m, not yet for 10m.
	for _, min := range []int{0, 5, 10} {
		require.NoError(t, e.Observe(ctx, []telemetry.Reading{reading("a", min, 70)}))
	}
	require.NoError(t, e.Observe(ctx, []telemetry.Reading{reading("b", 10, 70), reading("b", 15, 70)}))
	require.Equal(t, []string{"10m0s a hot raised"}, rec.lines())
	cancel()
	require.NoError(t, done())
	files, err := filepath.Glob(filepath.Join(dir, "detectors-*-of-003.jsonl"))
	require.NoError(t, err)
	require.Len(t, files, 3)

	cfg.Shards = 2
	e2, rec2, cancel2, done2 := start(t, cfg, nil)
	require.Equal(t, 2, e2.Devices())
	require.NoError(t, e2.Observe(ctx, []telemetry.Reading{reading("a", 20, 70), reading("b", 20, 70)}))
	// a stays raised (no second raise); b completes its 10m run at 20m.
	require.Equal(t, []string{"20m0s b hot raised"}, rec2.lines())
	cancel2()
	require.NoError(t, done2())
	files, err = filepath.Glob(filepath.Join(dir, "detectors-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, files, 2, "the 3-shard files are replaced")

	// A damaged snapshot is logged and skipped, not fatal.
	require.NoError(t, os.WriteFile(files[0], []byte("garbage\n"), 0o644))
	_, _, cancel3, done3 := start(t, cfg, nil)
	cancel3()
	require.NoError(t, done3())
}

func TestReloadAndStopped(t *testing.T) {
	e, err := New(Options{Config: DefaultConfig(), Profiles: profiles(), Handle: func(context.Context, []telemetry.Finding) {}})
	require.NoError(t, err)
	require.ErrorIs(t, e.Observe(context.Background(), []telemetry.Reading{reading("a", 0, 1)}), ErrStopped)

	e2, rec, _, _ := start(t, DefaultConfig(), nil)
	ctx := context.Background()
	require.NoError(t, e2.Observe(ctx, []telemetry.Reading{reading("a", 0, 70)}))
	p := profiles()
	bad := p["hp"]
	bad.Rules = append(bad.Rules, detectors.Rule{Detector: "nope"})
	require.Error(t, e2.Reload(map[string]detectors.Profile{"hp": bad}))
	require.NoError(t, e2.Reload(profiles())) // unchanged rule keeps its run
	require.NoError(t, e2.Observe(ctx, []telemetry.Reading{reading("a", 10, 70)}))
	require.Equal(t, []string{"10m0s a hot raised"}, rec.lines())
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	c.Shards, c.TickInterval, c.IdleEvictAfter, c.SnapshotInterval = -1, 0, -1, 0
	require.EqualError(t, c.Validate(), "shards: must be between 0 (one per CPU) and 1024\ntick_interval: must be positive\n"+
		"idle_evict_after: must not be negative (0 = never)\nsnapshot_interval: must be positive")
}
