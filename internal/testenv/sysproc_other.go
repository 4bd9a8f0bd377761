//go:build !linux

package testenv

import "syscall"

// sysProcAttr has no portable parent-death signal outside Linux; the
// service is stopped by t.Cleanup only.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
