package live

import (
	"errors"
	"time"
)

// Config is the detectors section of forewarn.yaml: how the engine runs.
// The rules themselves are the profiles section.
type Config struct {
	Shards           int           `mapstructure:"shards"`            // worker goroutines; 0 = GOMAXPROCS
	TickInterval     time.Duration `mapstructure:"tick_interval"`     // how often offline rules look at the clock
	IdleEvictAfter   time.Duration `mapstructure:"idle_evict_after"`  // drop devices silent this long; 0 = never
	SnapshotDir      string        `mapstructure:"snapshot_dir"`      // where the state is kept; empty = not kept
	SnapshotInterval time.Duration `mapstructure:"snapshot_interval"` // how often it is written (and at shutdown)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{TickInterval: 10 * time.Second, IdleEvictAfter: 30 * 24 * time.Hour, SnapshotInterval: 5 * time.Minute}
}

// Validate checks c without touching the disk.
func (c Config) Validate() error {
	var errs []error
	if c.Shards < 0 || c.Shards > 1024 {
		errs = append(errs, errors.New("shards: must be between 0 (one per CPU) and 1024"))
	}
	if c.TickInterval <= 0 {
		errs = append(errs, errors.New("tick_interval: must be positive"))
	}
	if c.IdleEvictAfter < 0 {
		errs = append(errs, errors.New("idle_evict_after: must not be negative (0 = never)"))
	}
	if c.SnapshotInterval <= 0 {
		errs = append(errs, errors.New("snapshot_interval: must be positive"))
	}
	return errors.Join(errs...)
}
