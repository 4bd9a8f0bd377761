// Package testenv starts real services for integration tests: Debian
// mosquitto 2 (Mosquitto) and influxd 1.8.10 (InfluxDB). It never mocks them.
//
// Each call starts its own child process on a free loopback port, with its
// config, data and logs in t.TempDir(), and returns once the service answers.
// t.Cleanup stops the process by its PID (SIGTERM, then SIGKILL after a grace
// period), so tests may use t.Parallel(): nothing is shared between calls.
// Stop and Start let a test take a service away and bring it back on the same
// port with the same data, to exercise reconnects and persistence.
//
// A missing binary fails the test with a hint on how to install it; it never
// skips. Tests that use this package end in Integration and skip themselves
// under testing.Short() (STYLE.md section 10). The binaries are found through
// $FOREWARN_MOSQUITTO and $FOREWARN_INFLUXD first; see Mosquitto and InfluxDB.
package testenv
