//go:build !linux

package estest

import "syscall"

// sysProcAttr puts the node in a process group of its own, so it is stopped
// as a whole. Only Linux can tie the node's life to the test binary's.
func sysProcAttr() (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{Setpgid: true}, nil
}

// chownForNode does nothing: outside Linux the tests must not run as root.
func chownForNode(string) error { return nil }
