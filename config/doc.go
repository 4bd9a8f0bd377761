// Package config loads Forewarn's configuration: defaults, then the YAML
// file, then FOREWARN_* environment variables, then command-line flags, via
// viper. It is the only package that imports viper; every other package
// owns its section's Config type with DefaultConfig and Validate, and this
// package composes them, rejects unknown keys, and prefixes each validation
// error with its key path.
package config
