package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func scanLog(ip string, start time.Time, first, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s - - [%s] \"GET /probe/%d HTTP/1.1\" 404 153 \"-\" \"x\"\n",
			ip, start.Add(time.Duration(i)*time.Second/2).Format("02/Jan/2006:15:04:05 -0700"), first+i)
	}
	return b.String()
}

// TestReplayCommand runs `vigil replay --json` over a rotated, gzipped log
// and the current one given newest first (as access.log* expands): the scan
// split by the rotation is found, an allow-listed scanner is reported as
// such, and every object carries the documented fields.
func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprint(zw, scanLog("203.0.113.7", t0, 0, 30)+scanLog("10.0.0.5", t0, 0, 50))
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "access.log.1.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "access.log"), []byte(scanLog("203.0.113.7", t0.Add(15*time.Second), 30, 20)+"\x16\x03\x01junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := runCLI(t, nil, "replay", "--json", filepath.Join(dir, "access.log"), filepath.Join(dir, "access.log.1.gz"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "reading oldest first: "+filepath.Join(dir, "access.log.1.gz")+" "+filepath.Join(dir, "access.log")) {
		t.Errorf("stderr does not say the files were reordered: %q", errOut)
	}
	type detection struct {
		Rule        string    `json:"rule"`
		Key         string    `json:"key"`
		At          time.Time `json:"at"`
		Count       int       `json:"count"`
		Allowlisted *bool     `json:"allowlisted"`
	}
	var got []detection
	for line := range strings.Lines(out) {
		var d detection
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if d.Rule == "" || d.Key == "" || d.At.IsZero() || d.Count == 0 || d.Allowlisted == nil {
			t.Errorf("a field is missing: %s", line)
		}
		got = append(got, d)
	}
	if len(got) != 2 {
		t.Fatalf("%d detections, want 2:\n%s", len(got), out)
	}
	byKey := map[string]detection{got[0].Key: got[0], got[1].Key: got[1]}
	scan, ok := byKey["203.0.113.7"]
	if !ok || scan.Rule != "http-404-scan" || *scan.Allowlisted || scan.Count != 50 || !scan.At.Equal(t0.Add(15*time.Second+19*time.Second/2).Truncate(time.Second)) {
		t.Errorf("the split scan: %+v", scan)
	}
	if local, ok := byKey["10.0.0.5"]; !ok || !*local.Allowlisted {
		t.Errorf("the allow-listed scanner: %+v", local)
	}

	// stdin, and the text output.
	cmd := exec.Command(cmdPath(), "replay", "-")
	cmd.Env = append(cmd.Environ(), "VIGIL_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader(scanLog("198.51.100.3", t0, 0, 60))
	text, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "http-404-scan") || !strings.Contains(string(text), "198.51.100.3") {
		t.Errorf("text output: %q", text)
	}

	// A file that cannot be read is named, and nothing else is done.
	_, errOut, code = runCLI(t, nil, "replay", filepath.Join(dir, "missing.log"))
	if code == 0 || !strings.Contains(errOut, "missing.log") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}
