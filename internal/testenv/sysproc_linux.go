package testenv

import "syscall"

// sysProcAttr puts the service in its own process group, so a Ctrl-C aimed
// at go test does not race our orderly stop, and asks the kernel to SIGKILL
// it if the test binary dies without running its cleanups (a panic, a -timeout
// or a SIGKILL), so no broker or influxd outlives the test.
//
// Pdeathsig fires when the OS thread that forked the child exits; the Go
// runtime only retires threads of goroutines that exit while locked with
// runtime.LockOSThread, which nothing in a test does around these calls.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
