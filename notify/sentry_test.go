package notify

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const flushWait = 5 * time.Second

// newNotifier builds a Notifier for in with cfg's other settings and closes
// it when the test ends (before the fake server shuts down).
func newNotifier(t *testing.T, in *ingest, cfg Config) *Notifier {
	t.Helper()
	cfg.DSN = in.dsn()
	if cfg.Release == "" {
		cfg.Release = "vigil@test" // else the SDK runs git describe
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if !n.Enabled() {
		t.Fatal("Enabled() = false with a DSN")
	}
	t.Cleanup(n.Close)
	return n
}

func flush(t *testing.T, n *Notifier) {
	t.Helper()
	if !n.Flush(flushWait) {
		t.Fatalf("Flush(%s) = false", flushWait)
	}
}

// testAlert is a high alert of rule scan-404 for ip.
func testAlert(ip string) *event.Alert {
	at := time.Date(2026, 3, 1, 12, 30, 5, 250_000_000, time.UTC)
	return &event.Alert{
		ID:          "scan-404/" + ip + "/1",
		Rule:        "scan-404",
		Description: "many 404s from one address",
		Severity:    "high",
		KeyField:    "source.ip",
		Key:         ip,
		At:          at,
		FirstSeen:   at.Add(-90 * time.Second),
		Window:      event.Duration(5 * time.Minute),
		Count:       40,
		Actions:     []event.ActionSpec{{Kind: event.ActionBan, Duration: event.Duration(72 * time.Hour)}},
		Evidence:    []string{"/wp-login.php", "/.env", "/phpmyadmin/"},
		Source:      "access",
	}
}

func TestAlertEventShape(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{Environment: "prod", ServerName: "edge-1", Release: "vigil@1.2.3"})
	a := testAlert("203.0.113.7")

	n.Alert(a)
	flush(t, n)
	ev := in.next(t)
	in.none(t)

	if want := "scan-404: many 404s from one address"; ev.Message != want {
		t.Errorf("message = %q, want %q", ev.Message, want)
	}
	if ev.Level != "error" {
		t.Errorf("level = %q, want error", ev.Level)
	}
	if want := []string{"vigil", "scan-404", "source.ip"}; !slices.Equal(ev.Fingerprint, want) {
		t.Errorf("fingerprint = %q, want %q", ev.Fingerprint, want)
	}
	wantTags := map[string]string{
		"rule": "scan-404", "source": "access", "severity": "high",
		"key_field": "source.ip", "allowlisted": "false",
	}
	if !maps.Equal(ev.Tags, wantTags) {
		t.Errorf("tags = %v, want %v", ev.Tags, wantTags)
	}
	for k, v := range ev.Tags {
		if strings.Contains(k, a.Key) || strings.Contains(v, a.Key) {
			t.Errorf("tag %s=%s carries the key", k, v)
		}
	}
	if strings.Contains(ev.Message, a.Key) {
		t.Errorf("message %q carries the key", ev.Message)
	}
	if !ev.Timestamp.Equal(a.At) {
		t.Errorf("timestamp = %s, want %s", ev.Timestamp, a.At)
	}
	if ev.Environment != "prod" || ev.Release != "vigil@1.2.3" || ev.ServerName != "edge-1" {
		t.Errorf("environment, release, server_name = %q, %q, %q", ev.Environment, ev.Release, ev.ServerName)
	}
	if ev.EventID != string(eventID(a.ID)) {
		t.Errorf("event_id = %q, want one derived from the alert id (%q)", ev.EventID, eventID(a.ID))
	}

	ctx := ev.Contexts["alert"]
	if ctx == nil {
		t.Fatalf("no alert context in %v", ev.Contexts)
	}
	want := map[string]any{
		"alert_id":   a.ID,
		"key":        "203.0.113.7",
		"count":      40.0,
		"window":     "5m0s",
		"at":         "2026-03-01T12:30:05.25Z",
		"first_seen": "2026-03-01T12:28:35.25Z",
	}
	for k, v := range want {
		if ctx[k] != v {
			t.Errorf("contexts.alert.%s = %#v, want %#v", k, ctx[k], v)
		}
	}
	if got := strs(ctx["evidence"]); !slices.Equal(got, a.Evidence) {
		t.Errorf("contexts.alert.evidence = %q, want %q", got, a.Evidence)
	}
	acts, _ := ctx["actions"].([]any)
	if len(acts) != 1 {
		t.Fatalf("contexts.alert.actions = %#v, want one", ctx["actions"])
	}
	if act, _ := acts[0].(map[string]any); act["kind"] != "ban" || act["duration"] != "72h0m0s" {
		t.Errorf("contexts.alert.actions[0] = %#v, want ban for 72h0m0s", acts[0])
	}
}

// strs converts a decoded JSON array of strings.
func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func TestAlertFiltered(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{}) // MinSeverity defaults to high

	low := testAlert("198.51.100.1")
	low.Severity = "low"
	medium := testAlert("198.51.100.2")
	medium.Severity = "medium"
	unknown := testAlert("198.51.100.3")
	unknown.Severity = ""
	allowed := testAlert("10.0.0.1")
	allowed.Severity = "critical"
	allowed.Allowlisted = true
	marker := testAlert("198.51.100.9")
	marker.Rule = "marker"
	marker.Severity = "critical"

	for _, a := range []*event.Alert{low, medium, unknown, allowed, marker} {
		n.Alert(a)
	}
	n.Alert(nil)
	flush(t, n)
	if ev := in.next(t); ev.Fingerprint[1] != "marker" || ev.Level != "fatal" {
		t.Errorf("got %q at %s, want only the critical marker", ev.Message, ev.Level)
	}
	in.none(t)
}

func TestAlertLevels(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{MinSeverity: "low"})
	want := map[string]string{ // rule (= severity) → level
		"critical": "fatal", "high": "error", "medium": "warning", "low": "info",
	}
	for sev := range want {
		a := testAlert("192.0.2.1")
		a.ID, a.Rule, a.Severity = sev, sev, sev
		n.Alert(a)
	}
	flush(t, n)
	got := map[string]string{}
	for range want {
		ev := in.next(t)
		got[ev.Tags["rule"]] = ev.Level
	}
	in.none(t)
	if !maps.Equal(got, want) {
		t.Errorf("levels by severity = %v, want %v", got, want)
	}
}

func TestSameRuleSharesFingerprint(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{})
	n.Alert(testAlert("203.0.113.7"))
	n.Alert(testAlert("203.0.113.8"))
	flush(t, n)
	a, b := in.next(t), in.next(t)
	in.none(t)
	if !slices.Equal(a.Fingerprint, b.Fingerprint) || a.Message != b.Message {
		t.Errorf("fingerprints %q and %q, messages %q and %q: want one issue", a.Fingerprint, b.Fingerprint, a.Message, b.Message)
	}
	if a.Contexts["alert"]["key"] == b.Contexts["alert"]["key"] {
		t.Errorf("both events carry key %v", a.Contexts["alert"]["key"])
	}
	if a.EventID == b.EventID {
		t.Errorf("both events have id %s", a.EventID)
	}
}

func TestGlobalRuleFingerprint(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{})
	a := testAlert("")
	a.KeyField, a.Key, a.Description, a.Source = "", "", "", ""
	n.Alert(a)
	flush(t, n)
	ev := in.next(t)
	if want := []string{"vigil", "scan-404", "none"}; !slices.Equal(ev.Fingerprint, want) {
		t.Errorf("fingerprint = %q, want %q", ev.Fingerprint, want)
	}
	if ev.Message != "scan-404" || ev.Tags["key_field"] != "none" {
		t.Errorf("message %q, key_field tag %q", ev.Message, ev.Tags["key_field"])
	}
	if _, ok := ev.Tags["source"]; ok {
		t.Errorf("empty source sent as a tag: %v", ev.Tags)
	}
}

func TestBreakerTripped(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{MinSeverity: "critical"}) // does not apply
	n.BreakerTripped("global", 50, time.Minute)
	flush(t, n)
	ev := in.next(t)
	in.none(t)
	if ev.Message != "circuit breaker open: automatic bans stopped" || ev.Level != "fatal" {
		t.Errorf("message %q level %q", ev.Message, ev.Level)
	}
	if want := []string{"vigil", "circuit-breaker", "global"}; !slices.Equal(ev.Fingerprint, want) {
		t.Errorf("fingerprint = %q, want %q", ev.Fingerprint, want)
	}
	if ev.Tags["breaker_scope"] != "global" {
		t.Errorf("tags = %v", ev.Tags)
	}
	ctx := ev.Contexts["breaker"]
	if ctx["scope"] != "global" || ctx["count"] != 50.0 || ctx["window"] != "1m0s" {
		t.Errorf("contexts.breaker = %v", ctx)
	}
}

func TestDisabled(t *testing.T) {
	in := newIngest(t, nil)
	// An empty DSN means off, even when the SDK's environment variable is set.
	t.Setenv("SENTRY_DSN", in.dsn())
	n, err := New(Config{MinSeverity: "low"})
	if err != nil {
		t.Fatalf("New with no DSN: %v", err)
	}
	if n.Enabled() {
		t.Error("Enabled() = true with no DSN")
	}
	n.Alert(testAlert("203.0.113.7"))
	n.BreakerTripped("global", 1, time.Second)
	if !n.Flush(time.Second) {
		t.Error("Flush on a disabled notifier = false")
	}
	n.Close()

	var nilN *Notifier
	nilN.Alert(testAlert("203.0.113.7"))
	nilN.BreakerTripped("global", 1, time.Second)
	if nilN.Enabled() || !nilN.Flush(time.Second) {
		t.Error("nil Notifier is not a quiet no-op")
	}
	nilN.Close()

	// Whatever the disabled notifier might have sent would be in before a
	// marker sent and flushed afterwards by an enabled one.
	m := newNotifier(t, in, Config{})
	m.BreakerTripped("marker", 1, time.Second)
	flush(t, m)
	if ev := in.next(t); ev.Tags["breaker_scope"] != "marker" {
		t.Errorf("got %q (%v), want only the marker", ev.Message, ev.Tags)
	}
	in.none(t)
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error
	}{
		{"not a url", Config{DSN: "http://publickey@[::1"}, []string{"sentry_dsn: not a URL"}},
		{"scheme", Config{DSN: "ftp://publickey@sentry.example/1"}, []string{"sentry_dsn: invalid DSN: invalid scheme"}},
		{"no key", Config{DSN: "https://sentry.example/1"}, []string{"sentry_dsn: invalid DSN: empty username"}},
		{"no project", Config{DSN: "https://publickey@sentry.example/"}, []string{"sentry_dsn: invalid DSN: empty project id"}},
		{"bad port", Config{DSN: "https://publickey@sentry.example:x/1"}, []string{"sentry_dsn:"}},
		{"severity", Config{MinSeverity: "urgent"}, []string{`sentry_min_severity: must be one of low, medium, high, critical, got "urgent"`}},
		{"severity case", Config{MinSeverity: "High"}, []string{"sentry_min_severity:"}},
		{"timeout", Config{Timeout: -time.Second}, []string{"sentry_timeout: must be >= 0"}},
		{"all at once", Config{DSN: "nope://publickey@x/1", MinSeverity: "x", Timeout: -1}, []string{"sentry_dsn:", "sentry_min_severity:", "sentry_timeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.cfg)
			if err == nil {
				n.Close()
				t.Fatal("New accepted a bad config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q shows the DSN's key", err)
			}
			if tt.cfg.Validate() == nil {
				t.Error("Validate accepted what New refused")
			}
		})
	}
}

func TestGoodConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{},
		{DSN: "https://publickey@o1.ingest.sentry.io/42", MinSeverity: "low", Timeout: time.Second, Release: "r"},
		{DSN: "http://publickey:secret@127.0.0.1:9000/sentry/42", MinSeverity: "critical", Release: "r"},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", cfg, err)
		}
		n, err := New(cfg)
		if err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
			continue
		}
		if n.Enabled() != (cfg.DSN != "") {
			t.Errorf("New(%+v).Enabled() = %t", cfg, n.Enabled())
		}
		n.Close()
	}
}

// Alert returns while Sentry is stalled; Flush then reports the timeout, and
// the queued events go out once Sentry answers.
func TestAlertDoesNotBlock(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	in := newIngest(t, func(*http.Request) bool { <-release; return true })
	t.Cleanup(unblock) // runs before the server closes
	n := newNotifier(t, in, Config{})

	for _, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		n.Alert(testAlert(ip))
	}
	if n.Flush(50 * time.Millisecond) {
		t.Error("Flush = true while Sentry does not answer")
	}
	unblock()
	flush(t, n)
	for range 3 {
		in.next(t)
	}
	in.none(t)
}

// Timeout bounds each request: with Sentry never answering, the SDK gives up
// on the request after Timeout, so Flush completes well before either our
// 5s default or the SDK's 30s would allow.
func TestTimeout(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	in := newIngest(t, func(*http.Request) bool { <-stop; return false })
	t.Cleanup(func() { close(stop) }) // runs before the server closes
	n := newNotifier(t, in, Config{Timeout: 100 * time.Millisecond})
	n.Alert(testAlert("203.0.113.7"))
	if !n.Flush(3 * time.Second) {
		t.Fatal("Flush = false: the request outlived Timeout")
	}
	in.none(t)
}

func TestClose(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	n := newNotifier(t, in, Config{})
	n.Alert(testAlert("203.0.113.7"))
	n.Close() // sends what is queued
	n.Close()
	if n.Enabled() {
		t.Error("Enabled() = true after Close")
	}
	n.Alert(testAlert("203.0.113.8"))
	n.BreakerTripped("global", 1, time.Second)
	if n.Flush(time.Second) {
		t.Error("Flush after Close = true")
	}
	if ev := in.next(t); ev.Contexts["alert"]["key"] != "203.0.113.7" {
		t.Errorf("got key %v, want the one queued before Close", ev.Contexts["alert"]["key"])
	}
	in.none(t)
}
