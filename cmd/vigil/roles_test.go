package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/internal/redistest"
)

// TestKilledDetectorStandbyTakesOver runs the roles as real processes (an
// ingest and respond process serving the embedded NATS, two detect
// processes), kills the active detector with SIGKILL in the middle of a
// scan, and checks that the standby takes over once the dead one's pin
// lapses and catches the scan, which straddles the kill.
func TestKilledDetectorStandbyTakesOver(t *testing.T) {
	rs := redistest.Start(t)
	rc := rs.Client(t)
	logs := t.TempDir()
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	start := func(args ...string) *os.Process {
		t.Helper()
		cmd := vigilCmd(t, append([]string{"run", "--redis", rs.URL, "--redis-prefix", rs.Prefix, "--data-dir", t.TempDir(), "--listen", "", "--log-level", "debug"}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
		return cmd.Process
	}
	readyz := func(admin string) string {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	banned := func(ip string) bool {
		n, err := rc.Exists(context.Background(), rs.Prefix+"ban:ip:"+ip).Result()
		return err == nil && n == 1
	}
	logFile := filepath.Join(logs, "access.log")
	scan := func(ip string, from, to int) {
		t.Helper()
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		now := time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700")
		for i := from; i < to; i++ {
			fmt.Fprintf(f, "%s - - [%s] \"GET /probe/%d HTTP/1.1\" 404 153 \"-\" \"test\"\n", ip, now, i)
		}
	}

	adminA := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	start("--roles", "ingest,respond", "--nats-listen", strings.TrimPrefix(natsURL, "nats://"), "--admin", adminA,
		"--access-log", filepath.Join(logs, "*.log"))
	waitFor(30*time.Second, "the ingest process ready", func() bool { return strings.Contains(readyz(adminA), `"ready":true`) })
	admins := map[string]*os.Process{}
	for range 2 {
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		admins[admin] = start("--roles", "detect", "--nats", natsURL, "--admin", admin)
		waitFor(30*time.Second, "the detect process ready", func() bool { return strings.Contains(readyz(admin), `"ready":true`) })
	}

	scan("203.0.113.201", 0, 60)
	waitFor(20*time.Second, "ban of 203.0.113.201", func() bool { return banned("203.0.113.201") })
	var active, standby string
	waitFor(10*time.Second, "one active detector and one standby", func() bool {
		active, standby = "", ""
		for admin := range admins {
			switch r := readyz(admin); {
			case strings.Contains(r, `"detector":"active"`):
				active = admin
			case strings.Contains(r, `"detector":"standby"`):
				standby = admin
			}
		}
		return active != "" && standby != ""
	})

	scan("203.0.113.202", 0, 25)
	time.Sleep(500 * time.Millisecond) // the active detector counts them
	killed := time.Now()
	if err := admins[active].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	scan("203.0.113.202", 25, 60)
	waitFor(90*time.Second, "ban of 203.0.113.202 by the standby", func() bool { return banned("203.0.113.202") })
	t.Logf("standby banned %s after the active detector was killed", time.Since(killed).Round(100*time.Millisecond))
	if r := readyz(standby); !strings.Contains(r, `"detector":"active"`) {
		t.Errorf("standby's /readyz after the take-over: %s", r)
	}
	if n, err := rc.Get(context.Background(), rs.Prefix+"ban:count:203.0.113.202").Int(); err != nil || n != 1 {
		t.Errorf("ban count of 203.0.113.202: %d %v, want 1 (one alert)", n, err)
	}
}
