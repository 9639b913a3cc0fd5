package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	logPath, truthPath, actorsPath := filepath.Join(dir, "access.log"), filepath.Join(dir, "truth.jsonl"), filepath.Join(dir, "actors.jsonl")
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-lines", "20000", "-seed", "3", "-format", "main", "-start", "2026-01-02T03:04:05+01:00",
		"-o", logPath, "-truth", truthPath, "-actors", actorsPath}, &bytes.Buffer{}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte("\n")); n != 20000 {
		t.Fatalf("log has %d lines, want 20000", n)
	}
	if !bytes.Contains(log[:200], []byte("[02/Jan/2026:03:04:05 +0100]")) {
		t.Fatalf("first line does not start at -start: %.200s", log)
	}
	truth, err := os.ReadFile(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(string(truth)), "\n") {
		var x struct{ Rule, Key string }
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			t.Fatalf("truth line %q: %v", line, err)
		}
		keys = append(keys, x.Rule+" "+x.Key)
	}
	if len(keys) < 5 || !slices.IsSorted(keys) {
		t.Fatalf("truth has %d lines, sorted %v", len(keys), slices.IsSorted(keys))
	}
	if !strings.Contains(stderr.String(), "lines=20000") {
		t.Fatalf("summary missing: %s", stderr.String())
	}
	if a, err := os.ReadFile(actorsPath); err != nil || !bytes.Contains(a, []byte(`"kind":"decoy"`)) {
		t.Fatalf("actors file: %v %.200s", err, a)
	}
}

func TestHelpAndErrors(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-help"}, &bytes.Buffer{}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v", err)
	}
	for _, f := range []string{"-lines", "-seed", "-format", "-o", "-truth", "-start", "-rate", "-follow", "-duration", "-scanners", "-decoys", "-allowlisted"} {
		if !strings.Contains(stderr.String(), "  "+f+" ") && !strings.Contains(stderr.String(), "  "+f+"\n") {
			t.Errorf("usage does not explain %s", f)
		}
	}
	for _, args := range [][]string{{"-format", "apache", "-o", os.DevNull}, {"-start", "yesterday"}, {"-lines", "0", "-o", os.DevNull}, {"extra"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: want an error", args)
		}
	}
}
