package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
)

// Config is the `notify` section.
type Config struct {
	// Enabled runs the dispatcher in `forewarn serve`. Off, outbox rows
	// are still written (and wait).
	Enabled bool `mapstructure:"enabled"`
	// MaxAttempts is the number of delivery attempts before a row goes to
	// dead-letter (status dead, retried by POST /notifications/{id}/retry).
	MaxAttempts int `mapstructure:"max_attempts"`
	// BackoffInitial and BackoffMax bound the exponential backoff between
	// attempts (with jitter: each wait is between half and all of
	// min(max, initial * 2^(attempt-1))). A Retry-After answer waits longer
	// when it asks to.
	BackoffInitial time.Duration `mapstructure:"backoff_initial"`
	BackoffMax     time.Duration `mapstructure:"backoff_max"`
	// PollInterval is how often an idle dispatcher looks for due rows.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// Lease is how long a claimed row is held: a process killed
	// mid-delivery loses its rows after this, and another delivers them.
	Lease time.Duration `mapstructure:"lease"`
	// GroupWait holds a new row this long before it is sent, so a storm's
	// tickets are grouped into their incident first (one message per
	// customer and incident).
	GroupWait time.Duration `mapstructure:"group_wait"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `mapstructure:"timeout"`
	// Workers deliver in parallel; BatchSize rows are claimed at a time.
	Workers   int `mapstructure:"workers"`
	BatchSize int `mapstructure:"batch_size"`
	// SMTP is the mail server of the email channel.
	SMTP SMTPConfig `mapstructure:"smtp"`
	// StaffWebhookURL receives new critical tickets and new incidents as
	// Slack-compatible JSON ({"text": "..."}); empty = no staff channel.
	StaffWebhookURL string `mapstructure:"staff_webhook_url"`
	// MQTTTopic is the MQTT push topic; {customer_id} is replaced.
	MQTTTopic string `mapstructure:"mqtt_topic"`
	// TemplatesDir, when set, overrides the embedded templates: files there
	// (same layout, LANG/NAME.txt and LANG/NAME.html) replace or add to them.
	TemplatesDir string `mapstructure:"templates_dir"`
	// TierRules are per customer tier.
	TierRules TierRules `mapstructure:"tier_rules"`
}

// SMTPConfig is `notify.smtp`.
type SMTPConfig struct {
	Host     string `mapstructure:"host"` // empty: no email channel
	Port     int    `mapstructure:"port"`
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"` // secret
	From     string `mapstructure:"from"`
	// TLS is starttls (required), tls (implicit, port 465) or none
	// (loopback relays only).
	TLS string `mapstructure:"tls"`
	// CAFile is a PEM file of CA certificates trusted besides the system's
	// (a private mail relay); empty = the system roots only.
	CAFile string `mapstructure:"ca_file"`
}

// TierRules are the segment rules of each customer tier.
type TierRules struct {
	Standard TierRule `mapstructure:"standard"`
	Premium  TierRule `mapstructure:"premium"`
}

// A TierRule is what one tier gets.
type TierRule struct {
	// DailyCap is how many non-critical messages a customer gets per local
	// day; later ones wait for one digest the next morning. 0 = no cap.
	DailyCap int `mapstructure:"daily_cap"`
	// Callback makes a staff call-back task on each customer-visible
	// ticket that opens for the tier's customers.
	Callback bool `mapstructure:"callback"`
}

// Rule returns the rule of tier ("standard" when unknown).
func (t TierRules) Rule(tier string) TierRule {
	if tier == "premium" {
		return t.Premium
	}
	return t.Standard
}

// TLS modes of SMTPConfig.TLS.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:        true,
		MaxAttempts:    8,
		BackoffInitial: 30 * time.Second,
		BackoffMax:     time.Hour,
		PollInterval:   2 * time.Second,
		Lease:          2 * time.Minute,
		GroupWait:      30 * time.Second,
		Timeout:        15 * time.Second,
		Workers:        4,
		BatchSize:      32,
		SMTP:           SMTPConfig{Port: 587, From: "Forewarn <noreply@forewarn.invalid>", TLS: TLSStartTLS},
		MQTTTopic:      "customers/{customer_id}/notifications",
		TierRules: TierRules{
			Standard: TierRule{DailyCap: 5},
			Premium:  TierRule{DailyCap: 10, Callback: true},
		},
	}
}

// Validate checks the section; messages name the key within it.
func (c Config) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("max_attempts: %d is out of range 1..100", c.MaxAttempts))
	}
	if c.BackoffInitial <= 0 {
		errs = append(errs, errors.New("backoff_initial: must be positive"))
	}
	if c.BackoffMax < c.BackoffInitial {
		errs = append(errs, errors.New("backoff_max: must be at least backoff_initial"))
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("poll_interval: must be at least 10ms"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	if c.Lease < 2*c.Timeout {
		errs = append(errs, fmt.Errorf("lease: %s is too short, want at least twice timeout (%s)", c.Lease, 2*c.Timeout))
	}
	if c.GroupWait < 0 {
		errs = append(errs, errors.New("group_wait: must not be negative"))
	}
	if c.Workers < 1 || c.Workers > 256 {
		errs = append(errs, fmt.Errorf("workers: %d is out of range 1..256", c.Workers))
	}
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		errs = append(errs, fmt.Errorf("batch_size: %d is out of range 1..1000", c.BatchSize))
	}
	switch c.SMTP.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		errs = append(errs, fmt.Errorf("smtp.tls: %q is not one of starttls, tls, none", c.SMTP.TLS))
	}
	if c.SMTP.Host != "" {
		if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
			errs = append(errs, fmt.Errorf("smtp.port: %d is out of range 1..65535", c.SMTP.Port))
		}
		if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
			errs = append(errs, fmt.Errorf("smtp.from: %q is not an address such as \"Forewarn <noreply@example.com>\"", c.SMTP.From))
		}
	}
	if c.StaffWebhookURL != "" {
		if u, err := url.Parse(c.StaffWebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("staff_webhook_url: want an http:// or https:// URL"))
		}
	}
	if !strings.Contains(c.MQTTTopic, "{customer_id}") || strings.ContainsAny(c.MQTTTopic, "+#") {
		errs = append(errs, fmt.Errorf("mqtt_topic: %q must contain {customer_id} and no wildcards", c.MQTTTopic))
	}
	for name, r := range map[string]TierRule{"standard": c.TierRules.Standard, "premium": c.TierRules.Premium} {
		if r.DailyCap < 0 {
			errs = append(errs, fmt.Errorf("tier_rules.%s.daily_cap: must not be negative (0 = no cap)", name))
		}
	}
	return errors.Join(errs...)
}
