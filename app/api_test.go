package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/internal/redistest"
)

const adminToken = "admin-token-for-tests-0123456789"

func (h *harness) adminURL() string {
	h.t.Helper()
	addr, err := h.app.AdminAddr(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return "http://" + addr
}

// call sends an admin API request; token "" sends none.
func (h *harness) call(token, method, path, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.adminURL()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Vigil-Actor", "tester")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func apiHarness(t *testing.T, mutate func(*Config)) *harness {
	h := apiHarnessWithoutStart(t, mutate)
	h.start()
	return h
}

func apiHarnessWithoutStart(t *testing.T, mutate func(*Config)) *harness {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.cfg.AdminToken = adminToken
	if mutate != nil {
		mutate(&h.cfg)
	}
	return h
}

func TestAdminAPIAuth(t *testing.T) {
	h := apiHarness(t, nil)
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong-token-wrong-token", 401}, {adminToken, 200}} {
		if code, body := h.call(tc.token, "GET", "/api/v1/bans", ""); code != tc.want {
			t.Errorf("token %q: %d %v, want %d", tc.token, code, body, tc.want)
		}
	}
	// The rest of the admin listener needs no token.
	resp, err := http.Get(h.adminURL() + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestPprof: the profiles are served only when enabled, and behind the
// admin token.
func TestPprof(t *testing.T) {
	get := func(h *harness, token string) int {
		req, _ := http.NewRequest("GET", h.adminURL()+"/debug/pprof/heap?debug=1", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && !strings.Contains(string(body), "heap profile") {
			t.Errorf("/debug/pprof/heap: %.100s", body)
		}
		return resp.StatusCode
	}
	off := apiHarness(t, nil)
	if code := get(off, adminToken); code != 404 {
		t.Errorf("pprof off: %d, want 404", code)
	}
	on := apiHarness(t, func(c *Config) { c.Pprof = true })
	if code := get(on, ""); code != 401 {
		t.Errorf("pprof without the token: %d, want 401", code)
	}
	if code := get(on, adminToken); code != 200 {
		t.Errorf("pprof with the token: %d, want 200", code)
	}
	// A process without the respond role (no admin API) guards its
	// profiles with the token too.
	ns := startNATS(t)
	det := apiHarnessWithoutStart(t, func(c *Config) { c.Pprof = true; c.Roles = []string{RoleDetect}; c.NATS = ns.url() })
	det.start()
	if code := get(det, ""); code != 401 {
		t.Errorf("detect process: pprof without the token: %d, want 401", code)
	}
	if code := get(det, adminToken); code != 200 {
		t.Errorf("detect process: pprof with the token: %d, want 200", code)
	}
}

func TestAdminAPIBadRequests(t *testing.T) {
	h := apiHarness(t, nil)
	cases := []struct {
		method, path, body, field string
	}{
		{"POST", "/api/v1/bans", `{"ip":"203.0.113.5","duration":"forever","reason":"x"}`, "duration"},
		{"POST", "/api/v1/bans", `{"ip":"not-an-ip","duration":"1h","reason":"x"}`, "target"},
		{"POST", "/api/v1/bans", `{"ip":"203.0.113.5","duration":"1h","reason":"x","color":"red"}`, "color"},
		{"POST", "/api/v1/bans", `{"ip":203,"duration":"1h"}`, "ip"},
		{"POST", "/api/v1/bans", `{"ip":"10.1.2.3","duration":"1h","reason":"x"}`, "target"}, // allow-listed, not forced
		{"POST", "/api/v1/lockdown", `{"mode":"half","reason":"x"}`, "mode"},
		{"POST", "/api/v1/revocations", `{"jti":"a","user":"b"}`, "jti"},
		{"POST", "/api/v1/bans", `{"ip":`, ""},
		{"GET", "/api/v1/alerts?limit=0", ``, "limit"},
	}
	for _, tc := range cases {
		code, body := h.call(adminToken, tc.method, tc.path, tc.body)
		if code != 400 || body["error"] == nil || (tc.field != "" && body["field"] != tc.field) {
			t.Errorf("%s %s %s: %d %v, want 400 naming %q", tc.method, tc.path, tc.body, code, body, tc.field)
		}
	}
}

// TestAdminActions: every action through the API lands in Redis with its
// TTL, and in the audit stream with who did it.
func TestAdminActions(t *testing.T) {
	h := apiHarness(t, nil)
	ctx := context.Background()
	p := h.cfg.RedisPrefix
	if code, body := h.call(adminToken, "POST", "/api/v1/bans", `{"ip":"203.0.113.5","duration":"24h","reason":"manual"}`); code != 201 {
		t.Fatalf("ban: %d %v", code, body)
	}
	if ttl := h.banTTL("203.0.113.5"); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("ban TTL %s", ttl)
	}
	_, list := h.call(adminToken, "GET", "/api/v1/bans", "")
	if bans, _ := list["bans"].([]any); len(bans) != 1 {
		t.Errorf("bans = %v", list)
	}
	if code, _ := h.call(adminToken, "DELETE", "/api/v1/bans/203.0.113.5", ""); code != 200 {
		t.Errorf("unban: %d", code)
	}
	if h.banTTL("203.0.113.5") != -2 {
		t.Errorf("ban still there after unban")
	}
	if code, body := h.call(adminToken, "POST", "/api/v1/lockdown", `{"mode":"read-only","duration":"30m","reason":"drill"}`); code != 201 {
		t.Fatalf("lockdown: %d %v", code, body)
	}
	if v := h.rc.Get(ctx, ":1:EMERGENCY_LOCKDOWN").Val(); v != "1" {
		t.Errorf("django mirror = %q, want 1", v)
	}
	if ttl := h.rc.TTL(ctx, p+"lockdown").Val(); ttl < 29*time.Minute || ttl > 30*time.Minute {
		t.Errorf("lockdown TTL %s", ttl)
	}
	_, status := h.call(adminToken, "GET", "/api/v1/lockdown", "")
	if l, _ := status["lockdown"].(map[string]any); l["mode"] != "read-only" || l["by"] != "admin:tester" {
		t.Errorf("lockdown status %v", status)
	}
	h.call(adminToken, "DELETE", "/api/v1/lockdown", "")
	if n := h.rc.Exists(ctx, p+"lockdown", ":1:EMERGENCY_LOCKDOWN").Val(); n != 0 {
		t.Errorf("lockdown keys left: %d", n)
	}
	for _, body := range []string{`{"jti":"0123456789abcdef","reason":"stolen"}`, `{"user":"42","reason":"reuse"}`, `{"all":true,"reason":"key leak"}`} {
		if code, out := h.call(adminToken, "POST", "/api/v1/revocations", body); code != 201 {
			t.Errorf("revoke %s: %d %v", body, code, out)
		}
	}
	for _, k := range []string{p + "jti:deny:0123456789abcdef", p + "revoke:user:42", p + "revoke:all"} {
		if ttl := h.rc.TTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("%s TTL %s", k, ttl)
		}
	}
	audits := streamMessages(t, h.app, bus.StreamAudit)
	if len(audits) != 7 {
		t.Fatalf("%d audit entries, want 7", len(audits))
	}
	for _, m := range audits {
		if !bytes.Contains(m.Data(), []byte(`"actor":"admin:tester"`)) {
			t.Errorf("audit without the actor: %s", m.Data())
		}
	}
	_, recent := h.call(adminToken, "GET", "/api/v1/audit?limit=3", "")
	if a, _ := recent["audit"].([]any); len(a) != 3 {
		t.Errorf("recent audit = %v", recent)
	}
}

func TestAdminDryRunChangesNothing(t *testing.T) {
	h := apiHarness(t, func(c *Config) { c.DryRun = true })
	code, body := h.call(adminToken, "POST", "/api/v1/bans", `{"ip":"203.0.113.5","duration":"24h","reason":"manual"}`)
	if code != 201 || body["audit"].(map[string]any)["result"] != "dry-run" {
		t.Fatalf("ban: %d %v", code, body)
	}
	h.appendLines("access.log", scanLines("203.0.113.6", time.Now().UTC(), 60))
	waitFor(t, 10*time.Second, "the alert", func() bool { return len(streamMessages(t, h.app, bus.StreamAlerts)) == 1 })
	waitFor(t, 10*time.Second, "its audit", func() bool { return len(streamMessages(t, h.app, bus.StreamAudit)) == 2 })
	if keys := h.rc.Keys(context.Background(), h.cfg.RedisPrefix+"*").Val(); len(keys) != 0 {
		t.Fatalf("dry run wrote %v", keys)
	}
}

func TestAdminAPIDisabledWithoutToken(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.start()
	if code, body := h.call("", "GET", "/api/v1/bans", ""); code != 503 || !strings.Contains(body["error"].(string), "admin_token_file") {
		t.Fatalf("%d %v", code, body)
	}
}

// sentryFake stands in for Sentry's ingestion endpoint (it cannot run here)
// and records the events the real SDK sends.
type sentryFake struct {
	mu     sync.Mutex
	events []string
}

func (f *sentryFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err == nil {
			body = zr
		}
	}
	data, _ := io.ReadAll(body)
	f.mu.Lock()
	f.events = append(f.events, string(data))
	f.mu.Unlock()
	w.WriteHeader(200)
}

func (f *sentryFake) count(substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, e := range f.events {
		if strings.Contains(e, substr) {
			n++
		}
	}
	return n
}

// TestBreakerStopsAFlood: a rule that suddenly bans many keys trips the
// breaker: bans stop at the limit, the rest are audited as breaker-open,
// Sentry is paged, and a reset lets bans flow again.
func TestBreakerStopsAFlood(t *testing.T) {
	fake := &sentryFake{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	h := apiHarness(t, func(c *Config) {
		c.BreakerPerRule = 3
		c.SentryDSN = "http://public@" + strings.TrimPrefix(srv.URL, "http://") + "/1"
	})
	now := time.Now().UTC()
	for i := range 6 {
		h.appendLines("access.log", scanLines("203.0.113."+string(rune('0'+i)), now, 55))
	}
	waitFor(t, 20*time.Second, "six audits", func() bool { return len(streamMessages(t, h.app, bus.StreamAudit)) == 6 })
	open := 0
	for _, m := range streamMessages(t, h.app, bus.StreamAudit) {
		if bytes.Contains(m.Data(), []byte(`"result":"breaker-open"`)) {
			open++
		}
	}
	bans := h.rc.Keys(context.Background(), h.cfg.RedisPrefix+"ban:ip:*").Val()
	if len(bans) != 3 || open != 3 {
		t.Fatalf("%d bans and %d breaker-open audits, want 3 and 3", len(bans), open)
	}
	_, br := h.call(adminToken, "GET", "/api/v1/breakers", "")
	if !strings.Contains(toJSON(br), `"Open":true`) && !strings.Contains(toJSON(br), `"open":true`) {
		t.Errorf("breakers = %v", br)
	}
	waitFor(t, 10*time.Second, "the breaker trip in Sentry", func() bool { return fake.count("circuit breaker open") >= 1 })
	waitFor(t, 10*time.Second, "scan alerts in Sentry", func() bool { return fake.count("http-404-scan") >= 3 })

	// A restart keeps the breaker open: only an operator closes it.
	h.stop()
	h.start()
	waitFor(t, 10*time.Second, "the breaker open after the restart", func() bool {
		_, br = h.call(adminToken, "GET", "/api/v1/breakers", "")
		return strings.Contains(toJSON(br), `"rule:http-404-scan":{"blocked":0,"count":3,"limit":3,"open":true`)
	})
	if code, _ := h.call(adminToken, "POST", "/api/v1/breakers/reset", `{"scope":""}`); code != 201 {
		t.Fatalf("reset: %d", code)
	}
	h.appendLines("access.log", scanLines("198.51.100.77", time.Now().UTC(), 55))
	waitFor(t, 20*time.Second, "a ban after the reset", func() bool { return h.banTTL("198.51.100.77") > 0 })
}

func toJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// TestExplain: what rules hold for a key, its ban and its alerts.
func TestExplainAPI(t *testing.T) {
	h := apiHarness(t, nil)
	now := time.Now().UTC()
	h.appendLines("access.log", scanLines("203.0.113.9", now, 55))
	h.appendLines("access.log", scanLines("198.51.100.9", now, 20))
	waitFor(t, 20*time.Second, "the ban", func() bool { return h.banTTL("203.0.113.9") > 0 })
	waitFor(t, 10*time.Second, "the second client's events", func() bool { return h.app.detectedEvents() == 75 })
	_, banned := h.call(adminToken, "GET", "/api/v1/explain/203.0.113.9", "")
	if banned["ban"] == nil || len(banned["alerts"].([]any)) != 1 || banned["offences"].(float64) != 1 {
		t.Errorf("explain banned: %v", banned)
	}
	_, watched := h.call(adminToken, "GET", "/api/v1/explain/198.51.100.9", "")
	rules, _ := watched["rules"].([]any)
	if watched["ban"] != nil || len(rules) != 1 || rules[0].(map[string]any)["count"].(float64) != 20 {
		t.Errorf("explain watched: %v", watched)
	}
}
