package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// djangoPython is the venv deploy/django/run-tests.sh creates.
func djangoPython(t *testing.T) (python, example string) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "deploy", "django")
	python = filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("the vigil-django venv is missing: run deploy/django/run-tests.sh once (it creates %s)", python)
	}
	return python, filepath.Join(root, "example")
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDjangoLoop closes the loop with the real example project: failed
// logins at Django are shipped to Vigil's /events, Vigil bans the client in
// Redis, and Django's middleware refuses that client from then on while
// serving others.
func TestDjangoLoop(t *testing.T) {
	python, example := djangoPython(t)
	rs := redistest.Start(t)
	token := "e2e-events-token-0123456789abcdef"

	cfg := app.Default()
	cfg.Redis, cfg.RedisPrefix = rs.URL, rs.Prefix
	cfg.DataDir = t.TempDir()
	cfg.Admin, cfg.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.EventsToken = token
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	vigil, err := a.PublicAddr(wctx, "http")
	if err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	env := append(os.Environ(),
		"VIGIL_REDIS_URL="+rs.URL, "VIGIL_KEY_PREFIX="+rs.Prefix,
		"VIGIL_EVENTS_URL=http://"+vigil+"/events", "VIGIL_EVENTS_TOKEN="+token,
		"VIGIL_EXAMPLE_DB="+filepath.Join(t.TempDir(), "db.sqlite3"), "VIGIL_CACHE_SECONDS=0.5", "VIGIL_FLUSH_SECONDS=0.2",
		"VIGIL_TRUSTED_PROXIES=127.0.0.1/32")
	manage := func(args ...string) *exec.Cmd {
		cmd := exec.Command(python, append([]string{"manage.py"}, args...)...)
		cmd.Dir, cmd.Env = example, env
		return cmd
	}
	for _, args := range [][]string{{"migrate", "--noinput"}, {"vigil_demo_user"}} {
		if out, err := manage(args...).CombinedOutput(); err != nil {
			t.Fatalf("manage.py %v: %v\n%s", args, err, out)
		}
	}
	server := manage("runserver", "--noreload", addr)
	var out bytes.Buffer
	server.Stdout, server.Stderr = &out, &out
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = server.Process.Kill()
		_ = server.Wait()
		if t.Failed() {
			t.Logf("django:\n%s", out.String())
		}
	})
	base := "http://" + addr
	request := func(method, path, client, body string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for request("GET", "/healthz", "198.51.100.1", "") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("django did not start")
		}
		time.Sleep(200 * time.Millisecond)
	}

	const attacker, user = "203.0.113.200", "198.51.100.201"
	for i := range 12 {
		code := request("POST", "/api/token/", attacker, `{"username":"alice","password":"wrong"}`)
		if code == 403 && i >= 10 {
			break // banned already: the 10th failure fired the rule
		}
		if code != 401 {
			t.Fatalf("failed login %d: %d, want 401", i, code)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for request("GET", "/healthz", attacker, "") != 403 {
		if time.Now().After(deadline) {
			t.Fatalf("the attacker was not refused within 30 s; bans: %v", rs.Client(t).Keys(context.Background(), rs.Prefix+"*").Val())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := request("POST", "/api/token/", user, `{"username":"alice","password":"password"}`); code != 200 {
		t.Errorf("another client logging in: %d, want 200", code)
	}
	if ttl := rs.Client(t).TTL(context.Background(), rs.Prefix+"ban:ip:"+attacker).Val(); ttl < 71*time.Hour {
		t.Errorf("ban TTL %s, want 72h", ttl)
	}
}
