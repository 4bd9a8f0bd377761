package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/forewarn/forewarn/config"
)

// parseConfigFlags parses args into a flag set with the config flags plus
// whatever extra adds, and loads the configuration.
func parseConfigFlags(name string, args []string, stderr io.Writer, extra func(*pflag.FlagSet)) (config.Config, *pflag.FlagSet, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	config.RegisterFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return config.Config{}, nil, err
		}
		return config.Config{}, nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return config.Config{}, nil, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	file, _ := fs.GetString("config")
	cfg, err := config.Load(config.Options{File: file, Flags: fs})
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, fs, nil
}

func runConfigCheck(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := parseConfigFlags("config check", args, stderr, nil)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := cfg.Masked()
	if err != nil {
		return fmt.Errorf("render configuration: %w", err)
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return fmt.Errorf("render configuration: %w", err)
	}
	fmt.Fprintln(stdout, "# effective configuration (secrets masked)")
	_, err = stdout.Write(out)
	fmt.Fprintln(stderr, "configuration OK")
	return err
}
