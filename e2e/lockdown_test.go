package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// djangoServer runs the example project with extra environment until the
// test ends and returns its base URL.
func djangoServer(t *testing.T, rs *redistest.Server, extra ...string) string {
	python, example := djangoPython(t)
	addr := freeAddr(t)
	env := append(os.Environ(),
		"VIGIL_REDIS_URL="+rs.URL, "VIGIL_KEY_PREFIX="+rs.Prefix,
		"VIGIL_EXAMPLE_DB="+filepath.Join(t.TempDir(), "db.sqlite3"), "VIGIL_CACHE_SECONDS=5",
		"VIGIL_TRUSTED_PROXIES=127.0.0.1/32")
	env = append(env, extra...)
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("django did not start")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return base
}

// startVigil runs Vigil with an admin token and returns the CLI's server URL.
func startVigil(t *testing.T, rs *redistest.Server, adminToken string) string {
	a := runVigil(t, rs, func(c *app.Config) { c.AdminToken = adminToken })
	return "http://" + addr(t, a, "admin")
}

// api calls Vigil's admin API as the CLI does.
func api(t *testing.T, server, token, method, path string, body any) (int, map[string]any) {
	var rd *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, server+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Vigil-Actor", "e2e")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func status(t *testing.T, method, url, bearer string) int {
	req, _ := http.NewRequest(method, url, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls until url answers want, within a deadline, and returns
// how long it took.
func waitStatus(t *testing.T, method, url, bearer string, want int, within time.Duration) time.Duration {
	start := time.Now()
	for {
		if status(t, method, url, bearer) == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s %s did not answer %d within %s", method, url, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLockdownAndRevocation: `vigil lockdown on` stops the example project
// (every request 503 within a second, though its cache holds answers for 5 s:
// pub/sub invalidates it), read-only lets reads through, `off` restores it; a
// token of a revoked user is refused by the authentication class.
func TestLockdownAndRevocation(t *testing.T) {
	rs := redistest.Start(t)
	token := "e2e-admin-token-0123456789abcdef"
	server := startVigil(t, rs, token)
	base := djangoServer(t, rs)

	if code := status(t, "GET", base+"/api/orders/", ""); code == 503 {
		t.Fatalf("503 before any lockdown")
	}
	if code, out := api(t, server, token, "POST", "/api/v1/lockdown", map[string]any{"mode": "full", "reason": "e2e drill"}); code != 201 {
		t.Fatalf("lockdown on: %d %v", code, out)
	}
	if took := waitStatus(t, "GET", base+"/api/orders/", "", 503, time.Second); took > time.Second {
		t.Errorf("full lockdown took %s to reach Django", took)
	}
	api(t, server, token, "POST", "/api/v1/lockdown", map[string]any{"mode": "read-only", "reason": "e2e drill"})
	// Reads work again, writes do not: the same view answers GET and
	// refuses POST (not /healthz, which no lockdown stops, so it would not
	// tell read-only from full).
	waitStatus(t, "GET", base+"/api/orders/", "", 200, time.Second)
	if code := status(t, "POST", base+"/api/orders/", ""); code != 503 {
		t.Errorf("POST /api/orders/ during a read-only lockdown: %d, want 503", code)
	}
	if code, out := api(t, server, token, "DELETE", "/api/v1/lockdown", nil); code != 200 && code != 201 {
		t.Fatalf("lockdown off: %d %v", code, out)
	}
	waitStatus(t, "POST", base+"/api/orders/", "", 201, time.Second) // writes work again

	// Revocation: a token issued before `vigil revoke --user` is refused.
	resp, err := http.Post(base+"/api/token/", "application/json", strings.NewReader(`{"username":"alice","password":"password"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tokens struct{ Access string }
	json.NewDecoder(resp.Body).Decode(&tokens)
	resp.Body.Close()
	if status(t, "GET", base+"/api/me/", tokens.Access) != 200 {
		t.Fatal("a fresh token is refused")
	}
	// No wait: iat is whole seconds, and a revocation covers the second it
	// is made in, so a token issued a moment before it (an attacker's,
	// from the login that fired a rule) is refused too.
	var me struct {
		ID any `json:"id"`
	}
	req, _ := http.NewRequest("GET", base+"/api/me/", nil)
	req.Header.Set("Authorization", "Bearer "+tokens.Access)
	if r, err := http.DefaultClient.Do(req); err == nil {
		json.NewDecoder(r.Body).Decode(&me)
		r.Body.Close()
	}
	userID := strings.TrimSuffix(strings.TrimSpace(jsonString(me.ID)), ".0")
	if code, out := api(t, server, token, "POST", "/api/v1/revocations", map[string]any{"user": userID, "reason": "e2e"}); code != 201 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	waitStatus(t, "GET", base+"/api/me/", tokens.Access, 401, 2*time.Second)
	// A login in a later second gets a token that works.
	time.Sleep(1100 * time.Millisecond)
	resp, err = http.Post(base+"/api/token/", "application/json", strings.NewReader(`{"username":"alice","password":"password"}`))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&tokens)
	resp.Body.Close()
	if code := status(t, "GET", base+"/api/me/", tokens.Access); code != 200 {
		t.Fatalf("a token issued after the revocation's second: %d, want 200", code)
	}
}

func jsonString(v any) string {
	data, _ := json.Marshal(v)
	return strings.Trim(string(data), `"`)
}

// TestSeedMiddlewareSeesLockdown: an app that only has the blueprint's
// unmodified middleware (cache.get("EMERGENCY_LOCKDOWN") through Django's
// RedisCache) is stopped by `vigil lockdown on` too.
func TestSeedMiddlewareSeesLockdown(t *testing.T) {
	rs := redistest.Start(t)
	token := "e2e-admin-token-0123456789abcdef"
	server := startVigil(t, rs, token)
	base := djangoServer(t, rs, "VIGIL_EXAMPLE_SEED_MIDDLEWARE=1")
	waitStatus(t, "GET", base+"/healthz", "", 200, time.Second)
	if code, out := api(t, server, token, "POST", "/api/v1/lockdown", map[string]any{"mode": "full", "reason": "seed"}); code != 201 {
		t.Fatalf("lockdown on: %d %v", code, out)
	}
	waitStatus(t, "GET", base+"/healthz", "", 503, time.Second)
	api(t, server, token, "DELETE", "/api/v1/lockdown", nil)
	waitStatus(t, "GET", base+"/healthz", "", 200, time.Second)
}
