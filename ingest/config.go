package ingest

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"time"
)

// MQTTConfig is the `mqtt` section of the configuration.
type MQTTConfig struct {
	URL            string        `mapstructure:"url"`             // tcp://host:1883, ssl://host:8883, ws://…
	ClientID       string        `mapstructure:"client_id"`       // stable across restarts: it names the persistent session
	Username       string        `mapstructure:"username"`        // optional
	Password       string        `mapstructure:"password"`        // optional; masked by `config check`
	TopicPrefix    string        `mapstructure:"topic_prefix"`    // devices publish to {prefix}/{device_id}/telemetry
	SharedGroup    string        `mapstructure:"shared_group"`    // optional: subscribe as $share/{group}/… so instances split the load
	KeepAlive      time.Duration `mapstructure:"keep_alive"`      // MQTT keep-alive interval
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"` // per connection attempt
}

// DefaultMQTTConfig returns the defaults: a local broker and the "devices" prefix.
func DefaultMQTTConfig() MQTTConfig {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "local"
	}
	return MQTTConfig{
		URL:            "tcp://127.0.0.1:1883",
		ClientID:       "forewarn-" + host,
		TopicPrefix:    "devices",
		KeepAlive:      30 * time.Second,
		ConnectTimeout: 10 * time.Second,
	}
}

// Validate checks the section without connecting. Each error names its key.
func (c MQTTConfig) Validate() error {
	var errs []error
	if err := validateURL(c.URL, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if c.ClientID == "" || len(c.ClientID) > 128 {
		errs = append(errs, errors.New("client_id: must be 1 to 128 characters"))
	}
	if err := validateTopicLevel(c.TopicPrefix, true); err != nil {
		errs = append(errs, fmt.Errorf("topic_prefix: %w", err))
	}
	if c.SharedGroup != "" {
		if err := validateTopicLevel(c.SharedGroup, false); err != nil {
			errs = append(errs, fmt.Errorf("shared_group: %w", err))
		}
	}
	if c.KeepAlive < time.Second {
		errs = append(errs, fmt.Errorf("keep_alive: %s is too short, want at least 1s", c.KeepAlive))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("connect_timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// validateTopicLevel rejects wildcards and, unless multi, level separators.
func validateTopicLevel(s string, multi bool) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	for _, c := range s {
		switch {
		case c == '+' || c == '#':
			return fmt.Errorf("%q must not contain MQTT wildcards", s)
		case c == '/' && !multi:
			return fmt.Errorf("%q must not contain '/'", s)
		case c == 0:
			return fmt.Errorf("%q must not contain NUL", s)
		}
	}
	if s[0] == '/' || s[len(s)-1] == '/' || s[0] == '$' {
		return fmt.Errorf("%q must not start or end with '/' or start with '$'", s)
	}
	return nil
}

func validateURL(raw string, schemes ...string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return fmt.Errorf("%q has no host", raw)
			}
			return nil
		}
	}
	return fmt.Errorf("%q: scheme must be one of %v", raw, schemes)
}

// InfluxConfig is the `influx` section: where telemetry is written.
// For InfluxDB 1.8+ through its v2 compatibility API, bucket is "db/rp"
// (e.g. "forewarn/autogen"), token is "user:password" or empty, and org is
// ignored by the server.
type InfluxConfig struct {
	URL           string        `mapstructure:"url"`
	Token         string        `mapstructure:"token"` // masked by `config check`
	Org           string        `mapstructure:"org"`
	Bucket        string        `mapstructure:"bucket"`
	BatchSize     int           `mapstructure:"batch_size"`     // points per write request
	FlushInterval time.Duration `mapstructure:"flush_interval"` // longest a point waits for a batch to fill
	Timeout       time.Duration `mapstructure:"timeout"`        // per write request
}

// DefaultInfluxConfig returns the defaults for a local InfluxDB.
func DefaultInfluxConfig() InfluxConfig {
	return InfluxConfig{
		URL:           "http://127.0.0.1:8086",
		Org:           "forewarn",
		Bucket:        "forewarn",
		BatchSize:     5000,
		FlushInterval: time.Second,
		Timeout:       10 * time.Second,
	}
}

// Validate checks the section without connecting.
func (c InfluxConfig) Validate() error {
	var errs []error
	if err := validateURL(c.URL, "http", "https"); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if c.Org == "" {
		errs = append(errs, errors.New("org: required (any name for InfluxDB 1.8)"))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket: required (\"db/rp\" for InfluxDB 1.8)"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch_size: %d is out of range 1..100000", c.BatchSize))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, errors.New("flush_interval: must be positive"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// Limits bound what one message may carry, and say how to read it: the
// `ingest` section.
type Limits struct {
	Format          Format        `mapstructure:"format"`            // payload format of {prefix}/{id}/telemetry; a last topic level overrides it
	DeadLetterTopic string        `mapstructure:"dead_letter_topic"` // republish rejected messages here with the reason; empty = off
	MaxPayloadBytes int           `mapstructure:"max_payload_bytes"` // larger messages are rejected unread
	MaxMetrics      int           `mapstructure:"max_metrics"`       // metrics per message
	MaxAbsValue     float64       `mapstructure:"max_abs_value"`     // largest magnitude a numeric metric may have; 0 = any finite value
	MaxFutureSkew   time.Duration `mapstructure:"max_future_skew"`   // how far ts may lie ahead of the receive time
	MaxAge          time.Duration `mapstructure:"max_age"`           // how far ts may lie behind it; 0 = no limit
}

// DefaultLimits suit devices that send a reading every few seconds to minutes.
func DefaultLimits() Limits {
	return Limits{
		Format:          FormatJSON,
		MaxPayloadBytes: 64 << 10,
		MaxMetrics:      256,
		MaxAbsValue:     1e15,
		MaxFutureSkew:   10 * time.Minute,
		MaxAge:          0,
	}
}

// Validate checks the limits.
func (l Limits) Validate() error {
	var errs []error
	if _, err := ParseFormat(string(l.Format)); err != nil {
		errs = append(errs, fmt.Errorf("format: %w", err))
	}
	if l.DeadLetterTopic != "" {
		if err := validateTopicLevel(l.DeadLetterTopic, true); err != nil {
			errs = append(errs, fmt.Errorf("dead_letter_topic: %w", err))
		}
	}
	if l.MaxPayloadBytes < 64 || l.MaxPayloadBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("max_payload_bytes: %d is out of range 64..16777216", l.MaxPayloadBytes))
	}
	if l.MaxMetrics < 1 || l.MaxMetrics > 10000 {
		errs = append(errs, fmt.Errorf("max_metrics: %d is out of range 1..10000", l.MaxMetrics))
	}
	if l.MaxAbsValue < 0 || math.IsNaN(l.MaxAbsValue) || math.IsInf(l.MaxAbsValue, 0) {
		errs = append(errs, errors.New("max_abs_value: must be a finite number, at least 0 (0 = no limit)"))
	}
	if l.MaxFutureSkew < 0 {
		errs = append(errs, errors.New("max_future_skew: must not be negative"))
	}
	if l.MaxAge < 0 {
		errs = append(errs, errors.New("max_age: must not be negative (0 = no limit)"))
	}
	return errors.Join(errs...)
}

// SpoolConfig is the `spool` section: the on-disk write-ahead log that makes
// a reading durable before its MQTT message is acknowledged.
type SpoolConfig struct {
	Dir      string `mapstructure:"dir"`       // created if missing; one directory per instance
	MaxBytes int64  `mapstructure:"max_bytes"` // beyond it ingest stops acknowledging and the broker holds messages
}

// DefaultSpoolConfig returns the defaults: ./forewarn-spool, 1 GiB.
func DefaultSpoolConfig() SpoolConfig {
	return SpoolConfig{Dir: "forewarn-spool", MaxBytes: 1 << 30}
}

// Validate checks the section without touching the disk.
func (c SpoolConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: required"))
	}
	if c.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("max_bytes: %d is below the minimum 1048576 (1 MiB)", c.MaxBytes))
	}
	return errors.Join(errs...)
}

// SegmentBytes is the size of one spool segment file: a sixteenth of
// max_bytes, between 256 KiB and 64 MiB. Space is freed a segment at a time.
func (c SpoolConfig) SegmentBytes() int64 {
	return min(max(c.MaxBytes/16, 256<<10), 64<<20)
}
