package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/event"
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
// logins at Django are shipped to Vigil's /events (HMAC-signed), Vigil bans
// the client in Redis, and Django's middleware refuses that client from
// then on while serving others. A bad Host header arrives as a DisallowedHost event and
// fires suspicious-operation; a client that keeps going after DRF throttles
// it fires throttle-spike.
func TestDjangoLoop(t *testing.T) {
	rs := redistest.Start(t)
	// Vigil reads its token and HMAC secret from files, as an operator
	// gives them; Django signs every batch with the secret.
	const token, secret = "e2e-events-token-0123456789abcdef", "e2e-hmac-secret-fedcba9876543210"
	dir := t.TempDir()
	tokenFile, secretFile := filepath.Join(dir, "events-token"), filepath.Join(dir, "events-hmac")
	for file, value := range map[string]string{tokenFile: token + "\n", secretFile: secret + "\n"} {
		if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := runVigil(t, rs, func(c *app.Config) {
		c.Listen, c.EventsTokenFile, c.EventsHMACSecretFile = "127.0.0.1:0", tokenFile, secretFile
	})
	vigil := addr(t, a, "http")
	for bearer, want := range map[string]int{token: http.StatusNoContent, "not-the-token": http.StatusUnauthorized} {
		req, _ := http.NewRequest("POST", "http://"+vigil+"/events", strings.NewReader(`{"kind":"auth.login_succeeded","client_ip":"198.51.100.9"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Body.Close(); resp.StatusCode != want {
			t.Fatalf("POST /events with the token %s the file: %d, want %d", map[bool]string{true: "from", false: "not from"}[bearer == token], resp.StatusCode, want)
		}
	}

	base := djangoServer(t, rs, "VIGIL_EVENTS_URL=http://"+vigil+"/events", "VIGIL_EVENTS_HMAC_SECRET="+secret,
		"VIGIL_CACHE_SECONDS=0.5", "VIGIL_FLUSH_SECONDS=0.2")
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
	deadline := time.Now().Add(30 * time.Second)
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

	// A bad Host header: Django raises DisallowedHost (a 400), the shipper
	// sends it, and it arrives as an event that fires suspicious-operation.
	const badHost = "203.0.113.202"
	req, _ := http.NewRequest("GET", base+"/healthz", nil)
	req.Host = "evil.example"
	req.Header.Set("X-Forwarded-For", badHost)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("request with Host evil.example: %d, want 400", resp.StatusCode)
	}

	// A client hammering on after DRF throttles it (3/min on /api/limited/).
	const hammer = "203.0.113.203"
	throttled := 0
	for range 35 {
		if request("GET", "/api/limited/", hammer, "") == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled < 30 {
		t.Fatalf("%d of 35 requests throttled, want at least 30", throttled)
	}

	admin := addr(t, a, "admin")
	deadline = time.Now().Add(30 * time.Second)
	for {
		var suspicious *event.Event
		throttledEvents := 0
		for _, ev := range busEvents(t, a, event.SourceApp) {
			switch {
			case ev.Action == "suspicious-operation" && ev.SourceIP.String() == badHost:
				suspicious = &ev
			case ev.Action == "throttled" && ev.SourceIP.String() == hammer:
				throttledEvents++
			}
		}
		fired := func(rule string) float64 {
			return scrape(t, admin, `vigil_detect_detections_total{rule="`+rule+`"}`)
		}
		if suspicious != nil && throttledEvents == throttled && fired("suspicious-operation") == 1 && fired("throttle-spike") == 1 {
			if suspicious.Name != "DisallowedHost" {
				t.Errorf("suspicious operation %q, want DisallowedHost", suspicious.Name)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DisallowedHost event %v, %d of %d throttled requests as events; detections: suspicious-operation %v, throttle-spike %v",
				suspicious != nil, throttledEvents, throttled, fired("suspicious-operation"), fired("throttle-spike"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
