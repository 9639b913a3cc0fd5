package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/internal/redistest"
)

// runCLI runs this binary as vigil with args and returns stdout, stderr and
// the exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, string, int) {
	cmd := exec.Command(cmdPath(), args...)
	cmd.Env = append(append(cmd.Environ(), "VIGIL_TEST_MAIN=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func cmdPath() string { return vigilCmd(nil).Path }

// TestCLIAgainstARunningVigil drives the operator commands against a real
// `vigil run`.
func TestCLIAgainstARunningVigil(t *testing.T) {
	rs := redistest.Start(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	token := "cli-test-admin-token-0123456789"
	logs := t.TempDir()
	run := vigilCmd(t, "run", "--redis", rs.URL, "--redis-prefix", rs.Prefix, "--data-dir", t.TempDir(),
		"--admin", admin, "--listen", "", "--admin-token", token, "--access-log", logs+"/*.log")
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run.Process.Signal(syscall.SIGTERM); _ = run.Wait() }()
	server := "http://" + admin
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(server + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("vigil did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	env := []string{"VIGIL_SERVER=" + server, "VIGIL_ADMIN_TOKEN=" + token}

	if out, errOut, code := runCLI(t, env, "ban", "203.0.113.5", "--for", "2h", "--reason", "cli test"); code != 0 || !strings.Contains(out, "203.0.113.5: applied") {
		t.Fatalf("ban: %d %q %q", code, out, errOut)
	}
	out, _, code := runCLI(t, env, "bans")
	if code != 0 || !strings.HasPrefix(out, "IP ") || !strings.Contains(out, "203.0.113.5") || !strings.Contains(out, "cli test") {
		t.Fatalf("bans table: %d %q", code, out)
	}
	out, _, _ = runCLI(t, env, "bans", "--json")
	var list struct{ Bans []map[string]any }
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Bans) != 1 {
		t.Fatalf("bans --json: %v %q", err, out)
	}
	// As the API sends it: every field, under its API name.
	if b := list.Bans[0]; b["ip"] != "203.0.113.5" || b["reason"] != "cli test" || b["expires"] == nil || b["IP"] != nil {
		t.Fatalf("bans --json is not the API's record: %q", out)
	}
	// A duration that is not one is refused before anything is asked:
	// a negative lockdown would have no end.
	for _, args := range [][]string{
		{"lockdown", "on", "--for", "-5m", "--reason", "drill"},
		{"lockdown", "on", "--for", "0s", "--reason", "drill"},
		{"ban", "203.0.113.6", "--for", "0s", "--reason", "cli test"},
	} {
		if _, errOut, code := runCLI(t, env, args...); code == 0 || !strings.Contains(errOut, "must be at least 1s") {
			t.Fatalf("%v: exit %d %q, want an error", args, code, errOut)
		}
	}
	if out, _, _ := runCLI(t, env, "lockdown", "status"); !strings.Contains(out, "no lockdown") {
		t.Fatalf("lockdown status after refused ones: %q", out)
	}
	if out, _, code := runCLI(t, env, "lockdown", "on", "--mode", "read-only", "--for", "10m", "--reason", "drill"); code != 0 || !strings.HasPrefix(out, "lockdown: applied until ") {
		t.Fatalf("lockdown on: %d %q", code, out)
	}
	if out, _, _ := runCLI(t, env, "lockdown", "status"); !strings.Contains(out, "read-only") || !strings.Contains(out, "drill") {
		t.Fatalf("lockdown status: %q", out)
	}
	runCLI(t, env, "lockdown", "off")
	if out, _, _ := runCLI(t, env, "lockdown", "status"); !strings.Contains(out, "no lockdown") {
		t.Fatalf("lockdown status after off: %q", out)
	}
	if _, errOut, code := runCLI(t, env, "revoke", "--user", "42", "--reason", "test"); code != 0 {
		t.Fatalf("revoke: %q", errOut)
	}
	if out, _, _ := runCLI(t, env, "explain", "203.0.113.5"); !strings.Contains(out, "banned by") {
		t.Fatalf("explain: %q", out)
	}
	out, _, _ = runCLI(t, env, "explain", "203.0.113.5", "--json")
	var ex map[string]any
	if err := json.Unmarshal([]byte(out), &ex); err != nil || ex["key"] != "203.0.113.5" || ex["ban"].(map[string]any)["reason"] != "cli test" {
		t.Fatalf("explain --json: %v %q", err, out)
	}
	if out, _, code := runCLI(t, env, "unban", "203.0.113.5"); code != 0 || !strings.Contains(out, "applied") {
		t.Fatalf("unban: %d %q", code, out)
	}
	// The audit trail: every action above, in order, with its result.
	if out, _, code := runCLI(t, env, "audit"); code != 0 || !strings.HasPrefix(out, "AT ") ||
		!regexp.MustCompile(`(?s)ban +203\.0\.113\.5 +admin:\S+ +applied.*lockdown +- .*applied.*unban +203\.0\.113\.5 +admin:\S+ +applied`).MatchString(out) {
		t.Fatalf("audit: %d %q", code, out)
	}
	// alerts --follow prints a detection as it happens.
	follow := exec.Command(cmdPath(), "alerts", "--follow", "--limit", "1")
	follow.Env = append(append(follow.Environ(), "VIGIL_TEST_MAIN=1"), env...)
	stdout, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	header := <-lines // of an empty table: --limit 1 found no alert
	time.Sleep(300 * time.Millisecond)
	var scan strings.Builder
	now := time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700")
	for i := range 55 {
		fmt.Fprintf(&scan, "198.51.100.99 - - [%s] \"GET /nope/%d HTTP/1.1\" 404 10 \"-\" \"gobuster\"\n", now, i)
	}
	if err := os.WriteFile(logs+"/access.log", []byte(scan.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case line := <-lines:
		if !strings.Contains(line, "http-404-scan") || !strings.Contains(line, "198.51.100.99") {
			t.Fatalf("alerts --follow printed %q", line)
		}
		if strings.Index(line, "http-404-scan") != strings.Index(header, "RULE") || strings.Index(line, "198.51.100.99") != strings.Index(header, "KEY") {
			t.Fatalf("alerts --follow: row not under its header:\n%s\n%s", header, line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("alerts --follow printed nothing within 20 s")
	}

	// Errors say what failed.
	if _, errOut, code := runCLI(t, env, "ban", "not-an-ip", "--reason", "x"); code != 1 || !strings.Contains(errOut, "target") {
		t.Fatalf("bad ban: %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, []string{"VIGIL_SERVER=" + server, "VIGIL_ADMIN_TOKEN=wrong-token-wrong"}, "bans"); code != 1 || !strings.Contains(errOut, "admin token") {
		t.Fatalf("wrong token: %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, []string{"VIGIL_SERVER=http://127.0.0.1:1"}, "bans"); code != 1 || !strings.Contains(errOut, "cannot reach vigil's admin API at http://127.0.0.1:1") {
		t.Fatalf("unreachable: %d %q", code, errOut)
	}
}
