package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServeRefusesBrokenTemplates: a template that names a field that does
// not exist stops serve at start-up, naming the file and the field, before
// anything connects.
func TestServeRefusesBrokenTemplates(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "templates", "en")
	require.NoError(t, os.MkdirAll(tpl, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tpl, "overheating.txt"),
		[]byte(`{{define "subject"}}{{.Ticket.Temperature}}{{end}}{{define "text"}}x{{end}}`), 0o600))
	cfg := filepath.Join(dir, "forewarn.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Join([]string{
		"store: {dsn: \"sqlite:" + filepath.Join(dir, "f.db") + "\"}",
		"spool: {dir: \"" + filepath.Join(dir, "spool") + "\"}",
		"notify: {templates_dir: \"" + filepath.Join(dir, "templates") + "\"}",
	}, "\n")), 0o600))
	var stderr strings.Builder
	err := run(context.Background(), []string{"serve", "--config", cfg}, io.Discard, &stderr)
	require.Error(t, err)
	require.Contains(t, err.Error(), "en/overheating")
	require.Contains(t, err.Error(), "can't evaluate field Temperature")
}
