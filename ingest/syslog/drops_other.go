//go:build !linux

package syslog

import "net"

// countDrops is Linux only (SO_RXQ_OVFL): elsewhere drops are not counted.
func countDrops(*net.UDPConn) bool { return false }

func dropCount([]byte) (uint32, bool) { return 0, false }
