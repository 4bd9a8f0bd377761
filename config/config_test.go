package config

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

// wantOf reads the "# want: …" first line of a bad fixture.
func wantOf(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	require.True(t, sc.Scan(), "%s is empty", path)
	want, ok := strings.CutPrefix(sc.Text(), "# want: ")
	require.True(t, ok, "%s must start with '# want: <message fragment>'", path)
	return want
}

func TestLoadFixtures(t *testing.T) {
	good, err := filepath.Glob("testdata/good-*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, good)
	for _, path := range good {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, err := Load(Options{File: path})
			require.NoError(t, err)
		})
	}
	bad, err := filepath.Glob("testdata/bad-*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, bad)
	for _, path := range bad {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := wantOf(t, path)
			_, err := Load(Options{File: path})
			require.Error(t, err)
			require.Contains(t, err.Error(), want)
		})
	}
}

// TestExampleConfig loads the shipped example so it cannot drift from the code.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "examples", "forewarn.yaml")
	c, err := Load(Options{File: path})
	require.NoError(t, err)
	require.Equal(t, "forewarn/autogen", c.Influx.Bucket)
	require.Equal(t, "forewarn-demo", c.MQTT.ClientID)
	p, ok := c.Profiles["heatpump-a2"]
	require.True(t, ok)
	require.NotEmpty(t, p.Rules)
	r := p.Rules[0]
	// The simulated products (forewarn simulate) each have a profile.
	for _, model := range []string{"heatpump-a2", "waterheater-w1", "evcharger-e1", "waterpump-p1"} {
		require.NotEmpty(t, c.Profiles[model].Rules, "profile %s", model)
	}
	require.Equal(t, "overheating", r.Fault)
	require.Equal(t, telemetry.SeverityMajor, r.Severity)
	require.Equal(t, time.Minute, r.For)
	require.NotNil(t, r.Above)
	require.InDelta(t, 60, *r.Above, 0)

	// Every key the code knows is documented in the example.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, key := range Keys() {
		if key == "profiles" {
			continue
		}
		leaf := key[strings.LastIndex(key, ".")+1:]
		require.Contains(t, string(raw), leaf+":", "examples/forewarn.yaml does not document %s", key)
	}
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	c, err := Load(Options{})
	require.NoError(t, err)
	require.Equal(t, Default().MQTT.URL, c.MQTT.URL)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
}

// TestLoadEnvOnly sets keys only in the environment: viper must still see
// them (spf13/viper#761), nested and with underscores in the key.
func TestLoadEnvOnly(t *testing.T) {
	t.Setenv("FOREWARN_MQTT_URL", "tcp://10.0.0.1:1884")
	t.Setenv("FOREWARN_MQTT_CLIENT_ID", "from-env")
	t.Setenv("FOREWARN_INFLUX_BATCH_SIZE", "123")
	t.Setenv("FOREWARN_SHUTDOWN_TIMEOUT", "5s")
	t.Setenv("FOREWARN_HTTP_ADMIN_TOKEN", "env-token-0123456789")
	t.Setenv("FOREWARN_NOTIFY_SMTP_PASSWORD", "smtp-secret")
	t.Setenv("FOREWARN_NOTIFY_TIER_RULES_PREMIUM_DAILY_CAP", "3")
	c, err := Load(Options{})
	require.NoError(t, err)
	require.Equal(t, "tcp://10.0.0.1:1884", c.MQTT.URL)
	require.Equal(t, "from-env", c.MQTT.ClientID)
	require.Equal(t, 123, c.Influx.BatchSize)
	require.Equal(t, 5*time.Second, c.ShutdownTimeout)
	require.Equal(t, "env-token-0123456789", c.HTTP.AdminToken)
	require.Equal(t, "smtp-secret", c.Notify.SMTP.Password)
	require.Equal(t, 3, c.Notify.TierRules.Premium.DailyCap)
}

func TestLoadBadEnvNamesKey(t *testing.T) {
	t.Setenv("FOREWARN_INFLUX_FLUSH_INTERVAL", "soon")
	_, err := Load(Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "influx.flush_interval")
}

func TestLoadPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.yaml")
	require.NoError(t, os.WriteFile(file, []byte("mqtt:\n  url: tcp://file:1883\n  topic_prefix: fromfile\nhttp:\n  addr: 127.0.0.1:9000\n"), 0o600))
	t.Setenv("FOREWARN_MQTT_URL", "tcp://env:1883")
	t.Setenv("FOREWARN_HTTP_ADDR", "127.0.0.1:9001")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--mqtt.url", "tcp://flag:1883"}))
	c, err := Load(Options{File: file, Flags: fs})
	require.NoError(t, err)
	require.Equal(t, "tcp://flag:1883", c.MQTT.URL, "flag beats env and file")
	require.Equal(t, "127.0.0.1:9001", c.HTTP.Addr, "env beats file")
	require.Equal(t, "fromfile", c.MQTT.TopicPrefix, "file beats default")
	require.Equal(t, Default().Influx.URL, c.Influx.URL, "default when unset")
}

func TestLoadReportsEveryProblem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.yaml")
	require.NoError(t, os.WriteFile(file, []byte("mqtt:\n  url: ''\ninflux:\n  org: ''\nlog:\n  format: xml\n"), 0o600))
	_, err := Load(Options{File: file})
	require.Error(t, err)
	for _, want := range []string{"mqtt.url: required", "influx.org: required", `log.format: "xml"`} {
		require.Contains(t, err.Error(), want)
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	c, err := Load(Options{File: "testdata/good-influx2.yaml"})
	require.NoError(t, err)
	m, err := c.Masked()
	require.NoError(t, err)
	require.Equal(t, "*****", m["mqtt"].(map[string]any)["password"])
	require.Equal(t, "*****", m["influx"].(map[string]any)["token"])
	require.Equal(t, "*****", m["http"].(map[string]any)["admin_token"])
	require.Equal(t, "*****", m["notify"].(map[string]any)["smtp"].(map[string]any)["password"])
	require.Equal(t, "mail.example.com", m["notify"].(map[string]any)["smtp"].(map[string]any)["host"])
	require.Equal(t, "forewarn", m["mqtt"].(map[string]any)["username"])
	require.Equal(t, "30s", m["shutdown_timeout"])
	rules := m["profiles"].(map[string]any)["waterheater-x"].(map[string]any)["rules"].([]any)
	require.Equal(t, "critical", rules[0].(map[string]any)["severity"])

	c, err = Load(Options{File: "testdata/good-postgres.yaml"})
	require.NoError(t, err)
	m, err = c.Masked()
	require.NoError(t, err)
	require.Equal(t, "postgres://forewarn:xxxxx@127.0.0.1:5432/forewarn?sslmode=disable", m["store"].(map[string]any)["dsn"])
}

func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	files = append(files, filepath.Join("..", "examples", "forewarn.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		c, err := Load(Options{File: path})
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.NoError(t, c.Validate(), "Load returned a config that does not validate")
	})
}

// TestREADMEDocumentsEveryKey keeps the README's configuration reference true.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	for _, key := range Keys() {
		require.Contains(t, string(raw), "| `"+key+"` |", "README.md's configuration table does not list %s", key)
	}
}

// TestDetectorsExample loads examples/detectors.yaml, the reference of one
// rule of every detector, so it cannot drift from the code.
func TestDetectorsExample(t *testing.T) {
	c, err := Load(Options{File: filepath.Join("..", "examples", "detectors.yaml")})
	require.NoError(t, err)
	p, ok := c.Profiles["heatpump-a2"]
	require.True(t, ok)
	var detectorsUsed []string
	for _, r := range p.Rules {
		detectorsUsed = append(detectorsUsed, r.Detector)
	}
	require.Equal(t, []string{"threshold", "rate", "flatline", "offline", "anomaly", "forecast", "event", "usage", "context"}, detectorsUsed)
	require.Equal(t, []string{"E42", "E43"}, p.Rules[6].Codes)
	require.Equal(t, 72*time.Hour, p.Rules[5].Horizon)
}
