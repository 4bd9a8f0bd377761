package httpapi

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config is the `http` section.
type Config struct {
	Addr string `mapstructure:"addr"` // listen address, host:port
	// AdminToken is the bearer token of the built-in admin. Empty means
	// `forewarn serve` generates one at start-up and logs it once.
	AdminToken string `mapstructure:"admin_token"`
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// MaxImportBytes bounds the body of a bulk import (POST /devices:import).
	MaxImportBytes int64 `mapstructure:"max_import_bytes"`
	// ConsoleEnabled serves the support console under /console.
	ConsoleEnabled bool `mapstructure:"console_enabled"`
	// SessionKey signs console session cookies (HMAC-SHA256). Empty means a
	// random key per process: sessions end at a restart, and instances
	// behind one load balancer need the same configured key.
	SessionKey string `mapstructure:"session_key"`
	// SessionTTL is how long a console sign-in lasts.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
}

// DefaultConfig listens on loopback only.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", MaxBodyBytes: 1 << 20, MaxImportBytes: 32 << 20,
		ConsoleEnabled: true, SessionTTL: 12 * time.Hour}
}

// MinTokenLen is the shortest admin token accepted.
const MinTokenLen = 16

// MinSessionKeyLen is the shortest session key accepted.
const MinSessionKeyLen = 32

// Validate checks the section without listening.
func (c Config) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("addr: %q is not host:port", c.Addr))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("addr: port %q is not 0..65535", port))
	} else if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		errs = append(errs, fmt.Errorf("addr: host %q must be an IP address, localhost or empty", host))
	}
	if c.AdminToken != "" && len(c.AdminToken) < MinTokenLen {
		errs = append(errs, fmt.Errorf("admin_token: %d characters is too short, want at least %d (or leave it empty to generate one)", len(c.AdminToken), MinTokenLen))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("max_body_bytes: %d is out of range 1024..1073741824", c.MaxBodyBytes))
	}
	if c.MaxImportBytes < c.MaxBodyBytes || c.MaxImportBytes > 1<<32 {
		errs = append(errs, fmt.Errorf("max_import_bytes: %d is out of range max_body_bytes..4294967296", c.MaxImportBytes))
	}
	if c.SessionKey != "" && len(c.SessionKey) < MinSessionKeyLen {
		errs = append(errs, fmt.Errorf("session_key: %d characters is too short, want at least %d (or leave it empty for a random key per process)", len(c.SessionKey), MinSessionKeyLen))
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("session_ttl: %s is out of range 1m..720h", c.SessionTTL))
	}
	return errors.Join(errs...)
}
