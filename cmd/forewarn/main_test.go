package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("mqtt:\n  password: hunter2\nhttp:\n  admin_token: very-secret-token-123\ninflux:\n  token: influx-secret\n"), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("influx:\n  batch_size: -1\nmqtt:\n  urll: x\n"), 0o600))

	tests := []struct {
		name    string
		args    []string
		wantOut []string
		notOut  []string
		wantErr string
	}{
		{
			name:    "example config",
			args:    []string{"config", "check", "--config", "../../examples/forewarn.yaml"},
			wantOut: []string{"effective configuration", "heatpump-a2", "overheating", "keep_alive: 30s"},
		},
		{
			name:    "secrets masked",
			args:    []string{"config", "check", "--config", good},
			wantOut: []string{"password: '*****'", "admin_token: '*****'", "token: '*****'"},
			notOut:  []string{"hunter2", "very-secret-token-123", "influx-secret"},
		},
		{
			name:    "flag overrides file",
			args:    []string{"config", "check", "--config", good, "--mqtt.url", "tcp://10.1.2.3:1883"},
			wantOut: []string{"url: tcp://10.1.2.3:1883"},
		},
		{name: "unknown key named", args: []string{"config", "check", "--config", bad}, wantErr: "unknown key mqtt.urll"},
		{name: "missing file", args: []string{"config", "check", "--config", filepath.Join(dir, "nope.yaml")}, wantErr: "read config file"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{name: "no command", args: nil, wantErr: "no command given"},
		{name: "config without check", args: []string{"config"}, wantErr: "forewarn config check"},
		{name: "version", args: []string{"version"}, wantOut: []string{"forewarn dev go1."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			if tt.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err, stderr.String())
			for _, s := range tt.wantOut {
				require.Contains(t, stdout.String(), s)
			}
			for _, s := range tt.notOut {
				require.NotContains(t, stdout.String()+stderr.String(), s)
			}
		})
	}
}

func TestBadConfigNamesEveryKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("influx:\n  batch_size: -1\nhttp:\n  addr: nowhere\n"), 0o600))
	err := run(t.Context(), []string{"serve", "--config", path}, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "influx.batch_size")
	require.Contains(t, err.Error(), "http.addr")
}
