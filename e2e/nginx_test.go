package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// nginxBinary finds Debian's nginx or fails saying how to install it.
func nginxBinary(t *testing.T) string {
	for _, name := range []string{os.Getenv("VIGIL_NGINX"), "nginx", "/usr/sbin/nginx"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("nginx not found: install it with `apt-get install -y nginx` (or set VIGIL_NGINX)")
	return ""
}

// shippedLogFormat returns the log_format statement of deploy/nginx/vigil.conf,
// so that the test runs nginx with the format operators are given.
func shippedLogFormat(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	conf, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "deploy", "nginx", "vigil.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nlog_format vigil_combined [^;]*;`).Find(conf)
	if m == nil {
		t.Fatal("deploy/nginx/vigil.conf has no `log_format vigil_combined ...;`")
	}
	return string(m)
}

func freeUDPAddr(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// startNginx runs nginx in the foreground with a private configuration
// (loopback only, files in a temporary directory) until the test ends, and
// returns its base URL. httpConf goes in the http block, serverConf in its
// one server.
func startNginx(t *testing.T, httpConf, serverConf string) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    access_log off;
%[3]s
    server {
        listen %[2]s;
%[4]s
    }
}
`, dir, listen, httpConf, serverConf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return base
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %s%s", listen, out, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNginxSyslogAndReports: Debian's nginx, with the log format of
// deploy/nginx/vigil.conf, sends its access log to Vigil over syslog UDP
// and forwards CSP reports to Vigil's public listener, as that file
// describes. A scanner through nginx is banned; the report keeps the
// browser's address, which nginx passes in X-Forwarded-For from a trusted
// proxy. Requests nginx refuses before they are HTTP (a TLS handshake on
// the plain port, an SSH banner) arrive as probe events and fire
// http-probe.
func TestNginxSyslogAndReports(t *testing.T) {
	rs := redistest.Start(t)
	syslogAddr := freeUDPAddr(t)
	a := runVigil(t, rs, func(c *app.Config) {
		c.SyslogUDP = syslogAddr
		c.Listen = "127.0.0.1:0"
		c.TrustedProxies = []string{"127.0.0.1/32"}
	})
	public := addr(t, a, "http")

	// On loopback every client is 127.0.0.1 (allow-listed): nginx's real IP
	// module takes the client address from X-Test-Client instead, as it
	// would from a load balancer's header.
	base := startNginx(t, shippedLogFormat(t), fmt.Sprintf(`
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Test-Client;
        access_log syslog:server=%s,tag=nginx,nohostname vigil_combined;
        location = /csp-report {
            limit_except POST OPTIONS { deny all; }
            client_max_body_size 64k;
            proxy_pass http://%s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }
        location / { return 404; }`, syslogAddr, public))

	const scanner = "203.0.113.80"
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 60 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/wp-admin/probe-%d.php", base, i), nil)
		req.Header.Set("X-Test-Client", scanner)
		req.Header.Set("User-Agent", "gobuster/3.6")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("nginx answered %d", resp.StatusCode)
		}
		time.Sleep(2 * time.Millisecond) // UDP: do not overrun the socket buffer under -race
	}
	rc := rs.Client(t)
	deadline := time.Now().Add(20 * time.Second)
	for rc.Exists(context.Background(), rs.Prefix+"ban:ip:"+scanner).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s not banned from nginx's syslog lines; skipped lines: %v", scanner, scrape(t, addr(t, a, "admin"), "vigil_ingest_lines_skipped_total"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A protocol scanner: what nginx logs of it carries no header, so its
	// address is the loopback peer's (allow-listed: detected, not banned).
	hello := []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x8f, 0x11, 0x20}
	for i := range 10 {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		probe := hello
		if i%2 == 1 {
			probe = []byte("SSH-2.0-OpenSSH_9.2p1\r\n")
		}
		c.Write(probe)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c) // nginx answers 400 and closes
		c.Close()
		time.Sleep(2 * time.Millisecond)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		probes := map[string]int{}
		for _, ev := range busEvents(t, a, event.SourceAccess) {
			if ev.Action != "" {
				probes[ev.Action]++
				if ev.Status != http.StatusBadRequest || ev.Method != "" || ev.Target != "" || ev.SourceIP.String() != "127.0.0.1" {
					t.Fatalf("probe event: %+v", ev)
				}
			}
		}
		fired := scrape(t, addr(t, a, "admin"), `vigil_detect_detections_total{rule="http-probe"}`)
		if probes["tls-handshake"] == 5 && probes["bad-request-line"] == 5 && fired == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe events %v (want 5 tls-handshake, 5 bad-request-line), http-probe detections %v (want 1)", probes, fired)
		}
		time.Sleep(100 * time.Millisecond)
	}

	const reporter = "198.51.100.23"
	body := `{"csp-report":{"document-uri":"https://shop.example/checkout","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"script-src 'self'; report-uri /csp-report","disposition":"enforce","blocked-uri":"https://evil.example/x.js","status-code":200}}`
	req, _ := http.NewRequest("POST", base+"/csp-report", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/csp-report")
	req.Header.Set("X-Test-Client", reporter)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /csp-report through nginx: %d", resp.StatusCode)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		evs := cspEvents(t, a)
		if len(evs) == 1 {
			if ev := evs[0]; ev.SourceIP.String() != reporter || ev.CSP.BlockedURI != "https://evil.example/x.js" {
				t.Errorf("report through nginx: source %s, blocked %q", ev.SourceIP, ev.CSP.BlockedURI)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d CSP events on the bus, want 1", len(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
