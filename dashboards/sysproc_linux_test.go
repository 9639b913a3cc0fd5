//go:build linux

package dashboards

import "syscall"

// sysProcAttr makes the kernel kill a child (vigil, prometheus) if the test
// binary dies without running its cleanups, so none is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
