package main

import (
	"strings"
	"testing"
)

// TestSwitchFlags: a switch takes a bare flag or --flag=value; a value
// given apart is refused, not read as a switch plus silently dropped flags.
func TestSwitchFlags(t *testing.T) {
	if err := cmdConfig([]string{"--dry-run", "--log-level", "debug"}); err != nil {
		t.Fatalf("--dry-run: %v", err)
	}
	if err := cmdConfig([]string{"--dry-run=false"}); err != nil {
		t.Fatalf("--dry-run=false: %v", err)
	}
	err := cmdConfig([]string{"--dry-run", "false", "--log-level", "debug"})
	if err == nil || !strings.Contains(err.Error(), "--dry-run=false") {
		t.Fatalf("--dry-run false: %v, want an error showing --dry-run=false", err)
	}
	if err := cmdConfig([]string{"--pprof", "--admin", "0.0.0.0:9464"}); err == nil || !strings.Contains(err.Error(), "pprof") {
		t.Fatalf("--pprof on a public admin address without a token: %v", err)
	}
}
