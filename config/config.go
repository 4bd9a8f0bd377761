package config

import (
	"encoding"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/forewarn/forewarn/detectors"
	"github.com/forewarn/forewarn/httpapi"
	"github.com/forewarn/forewarn/ingest"
	"github.com/forewarn/forewarn/live"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/ticketing"
)

// EnvPrefix prefixes every environment variable: FOREWARN_MQTT_URL sets mqtt.url.
const EnvPrefix = "FOREWARN"

// Config is the whole configuration of `forewarn serve`.
type Config struct {
	Log             LogConfig                    `mapstructure:"log"`
	MQTT            ingest.MQTTConfig            `mapstructure:"mqtt"`
	Influx          ingest.InfluxConfig          `mapstructure:"influx"`
	Ingest          ingest.Limits                `mapstructure:"ingest"`
	Spool           ingest.SpoolConfig           `mapstructure:"spool"`
	Store           ticketing.Config             `mapstructure:"store"`
	Tickets         ticketing.TicketsConfig      `mapstructure:"tickets"`
	Registry        ticketing.RegistryConfig     `mapstructure:"registry"`
	HTTP            httpapi.Config               `mapstructure:"http"`
	Notify          notify.Config                `mapstructure:"notify"`           // customer and staff notifications
	ShutdownTimeout time.Duration                `mapstructure:"shutdown_timeout"` // bound on draining at shutdown
	Detectors       live.Config                  `mapstructure:"detectors"`        // how the detector engine runs
	Profiles        map[string]detectors.Profile `mapstructure:"profiles"`         // detector profiles by device model (lower case)
}

// LogConfig is the `log` section.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text, json
}

// Default returns the configuration used for every key that is not set.
func Default() Config {
	return Config{
		Log:             LogConfig{Level: "info", Format: "text"},
		MQTT:            ingest.DefaultMQTTConfig(),
		Influx:          ingest.DefaultInfluxConfig(),
		Ingest:          ingest.DefaultLimits(),
		Spool:           ingest.DefaultSpoolConfig(),
		Store:           ticketing.DefaultConfig(),
		Tickets:         ticketing.DefaultTicketsConfig(),
		Registry:        ticketing.DefaultRegistryConfig(),
		HTTP:            httpapi.DefaultConfig(),
		Notify:          notify.DefaultConfig(),
		ShutdownTimeout: 30 * time.Second,
		Detectors:       live.DefaultConfig(),
		Profiles:        map[string]detectors.Profile{},
	}
}

// SlogLevel returns the slog level of l.Level.
func (l LogConfig) SlogLevel() slog.Level {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level)) // validated by Validate
	return lv
}

// Validate checks every section and returns all problems, each prefixed
// with its key path ("mqtt.url: required").
func (c Config) Validate() error {
	var errs []error
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout: must be positive"))
	}
	errs = append(errs, prefixed("mqtt", c.MQTT.Validate())...)
	errs = append(errs, prefixed("influx", c.Influx.Validate())...)
	errs = append(errs, prefixed("ingest", c.Ingest.Validate())...)
	errs = append(errs, prefixed("spool", c.Spool.Validate())...)
	errs = append(errs, prefixed("store", c.Store.Validate())...)
	errs = append(errs, prefixed("tickets", c.Tickets.Validate())...)
	errs = append(errs, prefixed("registry", c.Registry.Validate())...)
	errs = append(errs, prefixed("http", c.HTTP.Validate())...)
	errs = append(errs, prefixed("notify", c.Notify.Validate())...)
	errs = append(errs, prefixed("detectors", c.Detectors.Validate())...)
	if err := detectors.ValidateProfiles(c.Profiles); err != nil { // its messages carry the full path
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// prefixed splits a joined error into its parts and prefixes each with section.
func prefixed(section string, err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, prefixed(section, e)...)
		}
		return out
	}
	return []error{fmt.Errorf("%s.%w", section, err)}
}

// Options say where Load looks besides the defaults.
type Options struct {
	File  string         // YAML file; empty means none
	Flags *pflag.FlagSet // flags registered with RegisterFlags; nil means none
}

// flagKeys are the keys that have a command-line flag of the same name
// (--mqtt.url). Every key can be set in the file or the environment.
var flagKeys = []struct{ key, usage string }{
	{"mqtt.url", "MQTT broker URL"},
	{"mqtt.client_id", "MQTT client id (names the persistent session)"},
	{"mqtt.topic_prefix", "MQTT topic prefix"},
	{"mqtt.shared_group", "MQTT shared subscription group"},
	{"influx.url", "InfluxDB URL"},
	{"influx.org", "InfluxDB organization"},
	{"influx.bucket", "InfluxDB bucket (db/rp for 1.8)"},
	{"store.dsn", "ticket store (sqlite:PATH or postgres://...)"},
	{"spool.dir", "spool directory (durable buffer before InfluxDB)"},
	{"http.addr", "HTTP listen address"},
	{"log.level", "log level: debug, info, warn, error"},
	{"log.format", "log format: text, json"},
}

// RegisterFlags adds --config and a flag per common key to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (YAML)")
	for _, k := range flagKeys {
		fs.String(k.key, "", k.usage)
	}
}

// Load builds the configuration from the defaults, the file, the
// environment (FOREWARN_ + the key in upper case with '.' as '_') and the
// flags that were set, in rising precedence. An unknown key, a value of the
// wrong form, or a failed validation is an error naming the key. Load does
// no network I/O.
func Load(opts Options) (Config, error) {
	v := viper.New()
	defaults, err := toMap(reflect.ValueOf(Default()))
	if err != nil {
		return Config{}, fmt.Errorf("flatten defaults: %w", err)
	}
	for key, val := range flatten("", defaults.(map[string]any)) {
		v.SetDefault(key, val) // every key known, so AutomaticEnv sees it (spf13/viper#761)
	}
	if opts.File != "" {
		v.SetConfigFile(opts.File)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", opts.File, err)
		}
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if opts.Flags != nil {
		for _, k := range flagKeys {
			if f := opts.Flags.Lookup(k.key); f != nil && f.Changed {
				if err := v.BindPFlag(k.key, f); err != nil {
					return Config{}, fmt.Errorf("bind flag --%s: %w", k.key, err)
				}
			}
		}
	}

	var c Config
	err = v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.TextUnmarshallerHookFunc(),
	)))
	if err != nil {
		return Config{}, decodeError(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeError rewrites mapstructure's messages so each names its key:
// "unknown key mqtt.urll" and "mqtt.keep_alive: cannot parse …".
func decodeError(err error) error {
	var out []error
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "* "))
		if line == "" || strings.HasPrefix(line, "decoding failed due to") || strings.HasSuffix(line, "error(s) decoding:") {
			continue
		}
		if key, rest, ok := strings.Cut(line, "' has invalid keys: "); ok {
			key = normalizeKey(strings.TrimPrefix(key, "'"))
			for _, k := range strings.Split(rest, ", ") {
				full := k
				if key != "" {
					full = key + "." + k
				}
				out = append(out, fmt.Errorf("unknown key %s", full))
			}
			continue
		}
		// "'mqtt.keep_alive' time: invalid duration "x"" or "decoding 'x': …".
		if strings.HasPrefix(line, "'") {
			if key, rest, ok := strings.Cut(line[1:], "' "); ok {
				if strings.Contains(rest, "invalid duration") {
					rest += " (want a duration such as 30s, 10m or 1h30m)"
				}
				out = append(out, fmt.Errorf("%s: %s", normalizeKey(key), rest))
				continue
			}
		}
		if _, after, ok := strings.Cut(line, "error decoding '"); ok {
			if key, rest, ok := strings.Cut(after, "': "); ok {
				out = append(out, fmt.Errorf("%s: %s", key, rest))
				continue
			}
		}
		out = append(out, errors.New(line))
	}
	if len(out) == 0 {
		return fmt.Errorf("decode config: %w", err)
	}
	return errors.Join(out...)
}

// normalizeKey turns mapstructure's key paths into the dotted form the
// rest of Forewarn prints: the root struct's name becomes "", and map
// indexes become dotted keys ("profiles[hp].rules[0]" -> "profiles.hp.rules[0]").
func normalizeKey(key string) string {
	if key == reflect.TypeFor[Config]().String() {
		return ""
	}
	var b strings.Builder
	for {
		i := strings.Index(key, "[")
		if i < 0 {
			b.WriteString(key)
			return b.String()
		}
		j := strings.Index(key[i:], "]")
		if j < 0 {
			b.WriteString(key)
			return b.String()
		}
		idx := key[i+1 : i+j]
		b.WriteString(key[:i])
		if _, err := strconv.Atoi(idx); err == nil {
			b.WriteString("[" + idx + "]") // a list index stays
		} else {
			b.WriteString("." + idx)
		}
		key = key[i+j+1:]
	}
}

// toMap turns a config value into plain maps, slices and scalars keyed by
// mapstructure tags: durations become strings ("10m0s"), TextMarshalers
// their text, nil pointers are left out. It feeds SetDefault and `config check`.
func toMap(v reflect.Value) (any, error) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, nil
		}
		v = v.Elem()
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return time.Duration(v.Int()).String(), nil
	}
	if tm, ok := v.Interface().(encoding.TextMarshaler); ok && v.Kind() != reflect.Struct {
		b, err := tm.MarshalText()
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
	switch v.Kind() {
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			tag := f.Tag.Get("mapstructure")
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			val, err := toMap(v.Field(i))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", tag, err)
			}
			if val != nil {
				m[tag] = val
			}
		}
		return m, nil
	case reflect.Map:
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			val, err := toMap(v.MapIndex(k))
			if err != nil {
				return nil, fmt.Errorf("%v: %w", k, err)
			}
			m[fmt.Sprint(k.Interface())] = val
		}
		return m, nil
	case reflect.Slice:
		if v.IsNil() {
			return nil, nil
		}
		s := make([]any, v.Len())
		for i := range s {
			val, err := toMap(v.Index(i))
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s[i] = val
		}
		return s, nil
	}
	return v.Interface(), nil
}

// flatten turns nested maps into dotted keys; the empty profiles map stays a map.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, val := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := val.(map[string]any); ok && len(sub) > 0 && key != "profiles" {
			for sk, sv := range flatten(key, sub) {
				out[sk] = sv
			}
			continue
		}
		out[key] = val
	}
	return out
}

// Keys returns every configuration key, sorted: the reference README lists.
func Keys() []string {
	m, _ := toMap(reflect.ValueOf(Default()))
	keys := make([]string, 0)
	for k := range flatten("", m.(map[string]any)) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// secretKeys are masked by Masked.
var secretKeys = []string{"mqtt.password", "influx.token", "http.admin_token", "notify.smtp.password"}

// Masked returns c as nested maps with secrets replaced by "*****" (set) or
// "" (unset): what `forewarn config check` prints.
func (c Config) Masked() (map[string]any, error) {
	m, err := toMap(reflect.ValueOf(c))
	if err != nil {
		return nil, err
	}
	root := m.(map[string]any)
	for _, key := range secretKeys {
		parts := strings.Split(key, ".")
		sec, name := root, parts[len(parts)-1]
		for _, p := range parts[:len(parts)-1] {
			sec, _ = sec[p].(map[string]any)
		}
		if sec != nil {
			if s, _ := sec[name].(string); s != "" {
				sec[name] = "*****"
			}
		}
	}
	// A PostgreSQL DSN may carry a password: keep the rest, it says where.
	if sec, ok := root["store"].(map[string]any); ok {
		if dsn, _ := sec["dsn"].(string); strings.HasPrefix(dsn, "postgres") {
			if u, err := url.Parse(dsn); err == nil {
				sec["dsn"] = u.Redacted()
			} else {
				sec["dsn"] = "*****"
			}
		}
	}
	return root, nil
}
