package testenv

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of the Chromium binary: $FOREWARN_CHROMIUM, or
// chromium (Debian's package), chromium-browser or google-chrome on $PATH.
// A missing browser fails the test: install it with `make deps`.
func Chromium(t testing.TB) string {
	t.Helper()
	bin, err := findBinary("FOREWARN_CHROMIUM", "chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome")
	if err != nil {
		t.Fatalf("testenv: chromium %v: install it with `make deps` (apt-get install chromium), or set $FOREWARN_CHROMIUM", err)
	}
	return bin
}

// Browser starts a headless Chromium for t, driven by chromedp, with a
// fresh profile in t.TempDir(), and returns the context of its first tab.
// t.Cleanup closes the browser and kills any process of it still running
// (found by its unique profile directory), so a test leaves none behind.
func Browser(t testing.TB) context.Context {
	t.Helper()
	return BrowserWithProfile(t, t.TempDir())
}

// BrowserWithProfile is Browser with the profile (user data) directory
// profile, which must be empty and unique to this browser.
func BrowserWithProfile(t testing.TB, profile string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-proxy-server", true), // loopback only
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and waits for it
		if n := killProfileProcesses(profile); n > 0 {
			t.Logf("testenv: killed %d leftover chromium processes", n)
		}
	})
	// Start the browser now, so a broken install fails here with its error.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("testenv: start chromium: %v", err)
	}
	return ctx
}

// killProfileProcesses kills the processes started with --user-data-dir=dir
// (Chromium passes it to every child), until none is left for a few
// looks in a row; it returns how many it killed.
func killProfileProcesses(dir string) int {
	want := []byte("--user-data-dir=" + dir)
	total, quiet := 0, 0
	for deadline := time.Now().Add(2 * time.Second); quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := 0
		for _, pid := range profilePIDs(want) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
		if n == 0 {
			quiet++
		} else {
			quiet, total = 0, total+n
		}
	}
	return total
}

// ProfileProcesses returns the PIDs of processes still running with the
// Chromium profile directory dir; tests use it to check cleanup.
func ProfileProcesses(dir string) []int { return profilePIDs([]byte("--user-data-dir=" + dir)) }

func profilePIDs(want []byte) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// ArtifactDir returns where a test writes its artifacts (screenshots):
// $FOREWARN_TEST_ARTIFACTS/<test name> when set, else a t.TempDir().
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("FOREWARN_TEST_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, filepath.FromSlash(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testenv: artifact directory: %v", err)
	}
	return dir
}
