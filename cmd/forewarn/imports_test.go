package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportDirection keeps imports pointing down the flow (docs/architecture.md):
// each package may depend only on the project packages listed for it.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/forewarn/forewarn/"
	allowed := map[string][]string{
		"telemetry": {},
		"detectors": {"telemetry"},
		"ingest":    {"telemetry"},
		"ticketing": {"telemetry"},
		"httpapi":   {"telemetry", "ticketing"},
		"simulator": {"telemetry", "ticketing"},
		"scoring":   {},
		"replay":    {"telemetry", "detectors"},
		"live":      {"telemetry", "detectors"},
		"notify":    {"telemetry", "ticketing"},
		"config":    {"telemetry", "detectors", "ingest", "ticketing", "httpapi", "live", "notify"},
	}
	for pkg, ok := range allowed {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, dep := range strings.Fields(string(out)) {
				name, isOurs := strings.CutPrefix(dep, mod)
				if !isOurs || name == pkg {
					continue
				}
				require.Contains(t, ok, name, "%s must not import %s", pkg, name)
			}
		})
	}
}
