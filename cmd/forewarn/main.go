// Command forewarn is the single Forewarn binary: serve, simulate, replay,
// config check and version. It only wires the packages together; main turns
// SIGINT/SIGTERM into a cancelled context and calls run, which tests call
// in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(mainCode()) }

// mainCode runs the command line and returns the process exit code, so
// deferred work (the CPU profile) completes before os.Exit.
func mainCode() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// FOREWARN_CPUPROFILE=FILE writes a CPU profile of the whole run, for
	// `go tool pprof` (docs/performance.md; benchingest -cpuprofile sets it).
	if path := os.Getenv("FOREWARN_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "forewarn: FOREWARN_CPUPROFILE:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "forewarn:", err)
		return 2
	default:
		fmt.Fprintln(os.Stderr, "forewarn:", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage: forewarn <command> [flags]

commands:
  serve          run Forewarn: ingest, detect, open tickets, serve the API
  simulate       publish telemetry of a virtual fleet to the broker
  replay         run the detectors over CSV history; score them on NAB or SKAB
  config check   validate a configuration and print it (secrets masked)
  version        print the version

Run "forewarn <command> --help" for a command's flags.`

// run executes the command line args; it returns when the command is done
// or ctx is cancelled.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(ctx, args[1:], stdout, stderr)
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			return usageError{`want "forewarn config check --config FILE"`}
		}
		return runConfigCheck(args[2:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "forewarn %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}
