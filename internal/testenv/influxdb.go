package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// influxReady bounds the wait for /health: a cold start of the 60 MB
	// influxd on a busy 2-core machine running -race tests took 29 s once
	// (load average 8); the wait is polled, so a fast start costs nothing.
	influxReady = 90 * time.Second

	// influxDatabase is the database InfluxDB creates.
	influxDatabase = "forewarn"
)

// An Influx is an influxd 1.8 process started for one test by InfluxDB, with
// auth disabled and Flux enabled, so both the 1.x API and the 2.x
// compatibility API (/api/v2/write, /api/v2/query with Bucket) work.
// Its fields are fixed for the life of the test; Stop and Start keep them.
type Influx struct {
	URL      string // "http://127.0.0.1:PORT"
	Database string // "forewarn", created by InfluxDB
	Bucket   string // Database + "/autogen": the v2 compat API's bucket
	Org      string // "forewarn"; influxd 1.8 ignores it, clients want it
	Token    string // "": auth is disabled

	bin  string // influxd binary
	dir  string // t.TempDir(): conf, log, meta, data, wal
	conf string // generated influxd.toml
	log  string // influxd's stdout and stderr

	client *http.Client

	mu   sync.Mutex
	proc *process // nil when stopped
}

// InfluxDB starts influxd 1.8.10 on free ports of 127.0.0.1 (HTTP, and the
// RPC port which otherwise defaults to 8088) with fresh meta, data and WAL
// directories in t.TempDir(), waits until /health passes, creates the
// database, and stops influxd in t.Cleanup.
//
// The binary is $FOREWARN_INFLUXD, else bin/influxd under RepoRoot, else
// influxd in $PATH. If none exists the test fails. It must be a 1.8 influxd:
// 2.x has no "run -config".
func InfluxDB(t testing.TB) *Influx {
	t.Helper()
	repoBin := filepath.Join(RepoRoot(t), "bin", "influxd")
	bin, err := findBinary("FOREWARN_INFLUXD", repoBin, "influxd")
	if errors.Is(err, errNotFound) {
		t.Fatalf("testenv: influxd not found at %s or in $PATH: run `make deps` "+
			"(GOBIN=$PWD/bin go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)", repoBin)
	}
	if err != nil {
		t.Fatalf("testenv: influxd: %v", err)
	}
	dir := t.TempDir()
	db := &Influx{
		Database: influxDatabase,
		Bucket:   influxDatabase + "/autogen",
		Org:      "forewarn",
		bin:      bin,
		dir:      dir,
		conf:     filepath.Join(dir, "influxd.toml"),
		log:      filepath.Join(dir, "influxd.log"),
		// No keep-alives: no idle connections, so no transport goroutines
		// outlive the test.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() { db.Stop(t) })

	db.mu.Lock()
	defer db.mu.Unlock()
	for attempt := 1; ; attempt++ {
		httpPort, rpcPort := FreePort(t), FreePort(t)
		for rpcPort == httpPort {
			rpcPort = FreePort(t)
		}
		db.URL = "http://" + hostPort(httpPort)
		if err := db.writeConf(httpPort, rpcPort); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		start := time.Now()
		err := db.start()
		if err == nil {
			t.Logf("testenv: influxd (pid %d) ready at %s in %s; dir %s", db.proc.cmd.Process.Pid, db.URL, time.Since(start).Round(time.Millisecond), dir)
			break
		}
		if attempt == 1 && addrInUse(err, db.log) {
			t.Logf("testenv: influxd port %d or %d was taken; retrying on others", httpPort, rpcPort)
			continue
		}
		t.Fatalf("testenv: %v%s", err, logTails(db.log))
	}
	if err := db.createDatabase(); err != nil {
		t.Fatalf("testenv: %v%s", err, logTails(db.log))
	}
	return db
}

// Stop stops influxd now: SIGTERM, which closes its stores cleanly, then
// SIGKILL if it has not exited after a few seconds. Stopping a stopped
// influxd does nothing.
func (db *Influx) Stop(t testing.TB) {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.proc == nil {
		return
	}
	start := time.Now()
	if db.proc.stop(t) {
		t.Logf("testenv: influxd at %s had exited by itself: %v%s", db.URL, db.proc.err, logTails(db.log))
	} else {
		t.Logf("testenv: influxd (pid %d) stopped in %s", db.proc.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	}
	db.proc = nil
}

// Start starts influxd again on the same ports with the same meta, data and
// WAL directories, so written points survive, and waits for /health.
// Starting a running influxd does nothing.
func (db *Influx) Start(t testing.TB) {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.proc != nil && !db.proc.exited() {
		return
	}
	db.proc = nil
	start := time.Now()
	if err := db.start(); err != nil {
		t.Fatalf("testenv: restart: %v%s", err, logTails(db.log))
	}
	t.Logf("testenv: influxd (pid %d) ready again at %s in %s", db.proc.cmd.Process.Pid, db.URL, time.Since(start).Round(time.Millisecond))
}

// start runs influxd and waits for /health; db.mu is held. On error the
// process, if still running, stays in db.proc for Stop to end.
func (db *Influx) start() error {
	// influxd reads INFLUXDB_* variables as config overrides; drop them so
	// the generated file is all that counts.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INFLUXDB_") {
			env = append(env, kv)
		}
	}
	p, err := startProcess("influxd", db.bin, []string{"run", "-config", db.conf}, env, db.log)
	if err != nil {
		return err
	}
	db.proc = p
	defer func() {
		if db.proc.exited() {
			db.proc = nil // nothing left for Stop to do or report
		}
	}()
	return p.waitReady(influxReady, db.health)
}

// health is one GET /health; influxd answers 200 once it serves queries.
func (db *Influx) health() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, db.URL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := db.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET /health: %s", resp.Status)
	}
	// Only influxd sets this, so a squatter on our port does not pass.
	if resp.Header.Get("X-Influxdb-Version") == "" {
		return fmt.Errorf("GET /health: %s without X-Influxdb-Version: not influxd", resp.Status)
	}
	return nil
}

// createDatabase runs CREATE DATABASE through the 1.x /query endpoint.
func (db *Influx) createDatabase() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	form := url.Values{"q": {fmt.Sprintf("CREATE DATABASE %q", db.Database)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, db.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := db.client.Do(req)
	if err != nil {
		return fmt.Errorf("create database %s: %w", db.Database, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("create database %s: read response: %w", db.Database, err)
	}
	var r struct {
		Error   string `json:"error"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if resp.StatusCode/100 != 2 || json.Unmarshal(body, &r) != nil {
		return fmt.Errorf("create database %s: %s: %s", db.Database, resp.Status, body)
	}
	if r.Error != "" {
		return fmt.Errorf("create database %s: %s", db.Database, r.Error)
	}
	for _, res := range r.Results {
		if res.Error != "" {
			return fmt.Errorf("create database %s: %s", db.Database, res.Error)
		}
	}
	return nil
}

func (db *Influx) writeConf(httpPort, rpcPort int) error {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	conf := fmt.Sprintf(`# Written by internal/testenv for one test.
reporting-disabled = true
bind-address = %s

[meta]
  dir = %s

[data]
  dir = %s
  wal-dir = %s
  query-log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = %s
  auth-enabled = false
  flux-enabled = true
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
`, q(hostPort(rpcPort)), q(filepath.Join(db.dir, "meta")), q(filepath.Join(db.dir, "data")),
		q(filepath.Join(db.dir, "wal")), q(hostPort(httpPort)))
	if err := os.WriteFile(db.conf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write influxd conf: %w", err)
	}
	return nil
}
