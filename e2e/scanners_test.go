package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// scanner finds a scanning tool from Debian or fails saying how to install
// it.
func scanner(t *testing.T, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install it with `apt-get install -y %s` (VIGIL_SETUP_TESTS=1 scripts/setup.sh does)", name, name)
	}
	return p
}

// TestRealScanners points real scanners, Debian's gobuster and sqlmap, at
// Debian's nginx, whose access log Vigil follows: gobuster's content
// discovery is banned by http-404-scan, sqlmap's first probes by
// sql-injection. Each scanner gets its own client address through nginx's
// real IP module, as from a load balancer.
func TestRealScanners(t *testing.T) {
	gobuster, sqlmap := scanner(t, "gobuster"), scanner(t, "sqlmap")
	rs := redistest.Start(t)
	dir := t.TempDir()
	accessLog := filepath.Join(dir, "access.log")
	if err := os.WriteFile(accessLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a := runVigil(t, rs, func(c *app.Config) { c.AccessLogs = []string{accessLog} })
	base := startNginx(t, shippedLogFormat(t), fmt.Sprintf(`
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Test-Client;
        access_log %s vigil_combined;
        location = / { return 200 "shop\n"; }
        location /api/v1/products/ { default_type application/json; return 200 '{"results":[]}'; }
        location / { return 404; }`, accessLog))

	// A word list of its own (no dependency on dirb's lists): paths a
	// content-discovery scan tries.
	var words []string
	for _, w := range []string{"admin", "backup", "config", ".env", ".git", "wp-admin", "wp-login.php", "phpmyadmin", "server-status", "api", "old", "test", "dev", "db", "sql"} {
		for i := range 10 {
			words = append(words, fmt.Sprintf("%s%d", w, i))
		}
	}
	wordlist := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(wordlist, []byte(strings.Join(words, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	const gobusterIP, sqlmapIP = "203.0.113.81", "203.0.113.82"
	run := func(name string, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir) // sqlmap keeps its state under HOME
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(name), err, out)
		}
	}
	run(gobuster, "dir", "-q", "-z", "-t", "10", "-u", base+"/", "-w", wordlist, "-H", "X-Test-Client: "+gobusterIP)
	run(sqlmap, "-u", base+"/api/v1/products/?id=1", "--batch", "--threads", "4", "--level", "1", "--risk", "1",
		"--headers", "X-Test-Client: "+sqlmapIP, "--output-dir", filepath.Join(dir, "sqlmap"), "--disable-coloring")

	rc := rs.Client(t)
	admin := addr(t, a, "admin")
	deadline := time.Now().Add(30 * time.Second)
	for {
		g := rc.Exists(context.Background(), rs.Prefix+"ban:ip:"+gobusterIP).Val()
		s := rc.Exists(context.Background(), rs.Prefix+"ban:ip:"+sqlmapIP).Val()
		scan := scrape(t, admin, `vigil_detect_detections_total{rule="http-404-scan"}`)
		sqli := scrape(t, admin, `vigil_detect_detections_total{rule="sql-injection"}`)
		if g == 1 && s == 1 && scan == 1 && sqli >= 1 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(accessLog)
			t.Fatalf("banned: gobuster %v, sqlmap %v; detections: http-404-scan %v, sql-injection %v; %d log lines",
				g == 1, s == 1, scan, sqli, strings.Count(string(log), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
