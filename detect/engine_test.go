package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/event"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const testRules = `
rules:
  - id: scan
    match: {status: [404]}
    distinct: url.path
    threshold: 50
    window: 60s
    actions: {ban: 72h}
  - id: brute
    match: {method: [POST], status: [401, 403], path: [/api/token/]}
    threshold: 20
    window: 60s
    actions: {ban: 72h}
  - id: stuffing
    match: {method: [POST], status: [401]}
    group_by: user.name
    distinct: source.ip
    threshold: 5
    window: 60s
`

func testEngine(t *testing.T, opts Options) (*Engine, *Matcher) {
	t.Helper()
	rules, errs := Parse("test.yaml", []byte(testRules))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rs := Compile(rules)
	return NewEngine(rs, opts), rs.NewMatcher()
}

// hit is one access log event in a table case.
type hit struct {
	at     time.Duration // after t0
	ip     string
	method string
	path   string
	status int
	user   string
}

func run(t *testing.T, e *Engine, m *Matcher, hits []hit) []event.Alert {
	t.Helper()
	var alerts []event.Alert
	var obs []Observation
	for _, h := range hits {
		ev := event.Event{
			Source: event.SourceAccess, Time: t0.Add(h.at), SourceIP: netip.MustParseAddr(h.ip),
			Method: h.method, Path: h.path, Target: h.path, Status: h.status, UserName: h.user,
		}
		obs = m.Match(&ev, h.path, obs[:0])
		for i := range obs {
			alerts = e.Observe(&obs[i], alerts)
		}
	}
	return alerts
}

func scan(ip string, start, step time.Duration, n int) []hit {
	var hs []hit
	for i := 0; i < n; i++ {
		hs = append(hs, hit{at: start + time.Duration(i)*step, ip: ip, method: "GET", path: fmt.Sprintf("/probe-%d", i), status: 404})
	}
	return hs
}

func TestWindows(t *testing.T) {
	same := func(n int) []hit {
		var hs []hit
		for i := 0; i < n; i++ {
			hs = append(hs, hit{at: time.Duration(i) * 100 * time.Millisecond, ip: "203.0.113.9", method: "GET", path: "/gone", status: 404})
		}
		return hs
	}
	posts := func(n int, step time.Duration) []hit {
		var hs []hit
		for i := 0; i < n; i++ {
			hs = append(hs, hit{at: time.Duration(i) * step, ip: "198.51.100.4", method: "POST", path: "/api/token/", status: 401})
		}
		return hs
	}
	cases := []struct {
		name string
		hits []hit
		want []string // rule:key of expected alerts, in order
	}{
		{"50 distinct 404s in a second fire", scan("203.0.113.7", 0, 10*time.Millisecond, 50), []string{"scan:203.0.113.7"}},
		{"49 distinct 404s do not fire", scan("203.0.113.7", 0, time.Second, 49), nil},
		{"300 hits on one path are one distinct path", same(300), nil},
		{"scan straddling a minute boundary fires", scan("203.0.113.7", 40*time.Second, 800*time.Millisecond, 50), []string{"scan:203.0.113.7"}},
		{"50 distinct spread over more than a minute do not fire", scan("203.0.113.7", 0, 1300*time.Millisecond, 50), nil},
		{"fires once per key", scan("203.0.113.7", 0, 10*time.Millisecond, 500), []string{"scan:203.0.113.7"}},
		{"IPv6 key", scan("2001:db8::66", 0, 10*time.Millisecond, 50), []string{"scan:2001:db8::66"}},
		{"20 failed logins in a minute fire", posts(20, 2*time.Second), []string{"brute:198.51.100.4"}},
		{"19 failed logins do not fire", posts(19, time.Second), nil},
		{"encoded login path is the same endpoint", func() []hit {
			hs := posts(20, time.Second)
			for i := range hs {
				if i%2 == 0 {
					hs[i].path = "/api/%74oken/"
				} else {
					hs[i].path = "//api//token/"
				}
			}
			return hs
		}(), []string{"brute:198.51.100.4"}},
		{"20 failed logins over 76 s do not fire", posts(20, 4*time.Second), nil},
		{"two scanners interleaved both fire", interleave(scan("203.0.113.7", 0, 100*time.Millisecond, 50), scan("203.0.113.8", 0, 100*time.Millisecond, 50)),
			[]string{"scan:203.0.113.7", "scan:203.0.113.8"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, m := testEngine(t, Options{})
			got := keys(run(t, e, m, tc.hits))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("alerts = %v, want %v", got, tc.want)
			}
		})
	}
}

func interleave(a, b []hit) []hit {
	var out []hit
	for i := range a {
		out = append(out, a[i], b[i])
	}
	return out
}

func keys(alerts []event.Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Rule+":"+a.Key)
	}
	return out
}

func TestFiresOnTheThresholdEvent(t *testing.T) {
	e, m := testEngine(t, Options{})
	hs := scan("203.0.113.7", 0, time.Millisecond, 4600) // gobuster: thousands per second
	var firedAt int = -1
	for i := range hs {
		if a := run(t, e, m, hs[i:i+1]); len(a) > 0 {
			firedAt = i
			if a[0].Count != 50 || !a[0].At.Equal(t0.Add(49*time.Millisecond)) {
				t.Fatalf("alert = %+v, want count 50 at +49ms", a[0])
			}
			if len(a[0].Actions) != 1 || a[0].Actions[0].Kind != event.ActionBan || a[0].Actions[0].Duration != event.Duration(72*time.Hour) {
				t.Fatalf("actions = %+v", a[0].Actions)
			}
			if len(a[0].Evidence) == 0 || a[0].Evidence[len(a[0].Evidence)-1] != "/probe-49" {
				t.Fatalf("evidence = %v", a[0].Evidence)
			}
		}
	}
	if firedAt != 49 {
		t.Fatalf("fired at event %d, want 49 (the 50th)", firedAt)
	}
	if got := e.Stats().Suppressed.Load(); got != 4600-50 {
		t.Fatalf("suppressed = %d, want %d", got, 4600-50)
	}
}

func TestOutOfOrderWithinLateness(t *testing.T) {
	hs := scan("203.0.113.7", 0, 200*time.Millisecond, 50)
	// Swap neighbours: each pair arrives reversed, up to 200 ms late.
	for i := 0; i+1 < len(hs); i += 2 {
		hs[i], hs[i+1] = hs[i+1], hs[i]
	}
	e, m := testEngine(t, Options{Lateness: 2 * time.Second})
	if got := keys(run(t, e, m, hs)); len(got) != 1 {
		t.Fatalf("alerts = %v, want one", got)
	}
	if e.Stats().Late.Load() != 0 {
		t.Fatalf("late = %d, want 0", e.Stats().Late.Load())
	}

	// An event older than the lateness is dropped and counted.
	hs = scan("203.0.113.7", 0, 100*time.Millisecond, 49)
	hs = append(hs, hit{at: -10 * time.Second, ip: "203.0.113.7", method: "GET", path: "/late", status: 404})
	e, m = testEngine(t, Options{Lateness: 2 * time.Second})
	if got := keys(run(t, e, m, hs)); len(got) != 0 {
		t.Fatalf("alerts = %v, want none", got)
	}
	if e.Stats().Late.Load() != 1 {
		t.Fatalf("late = %d, want 1", e.Stats().Late.Load())
	}
}

func TestCooldownThenFiresAgain(t *testing.T) {
	e, m := testEngine(t, Options{})
	hs := scan("203.0.113.7", 0, 10*time.Millisecond, 60)
	hs = append(hs, scan("203.0.113.7", 73*time.Hour, 10*time.Millisecond, 50)...)
	if got := keys(run(t, e, m, hs)); len(got) != 2 {
		t.Fatalf("alerts = %v, want two (before and after the 72h cooldown)", got)
	}
}

func TestAllowlistedStillRecorded(t *testing.T) {
	allow, err := NewAllowlist(DefaultAllowlist)
	if err != nil {
		t.Fatal(err)
	}
	e, m := testEngine(t, Options{Allow: allow})
	alerts := run(t, e, m, append(scan("10.1.2.3", 0, time.Millisecond, 50), scan("::ffff:192.168.1.9", 0, time.Millisecond, 50)...))
	if len(alerts) != 2 {
		t.Fatalf("alerts = %v", keys(alerts))
	}
	for _, a := range alerts {
		// The actions stay on the alert: the responder records them as
		// skipped, so the audit trail says what was not done.
		if !a.Allowlisted || len(a.Actions) != 1 {
			t.Errorf("alert %s: allowlisted=%v actions=%v, want true and the rule's ban", a.Key, a.Allowlisted, a.Actions)
		}
	}
	if alerts[1].Key != "192.168.1.9" {
		t.Errorf("IPv4-mapped key = %q, want it unmapped", alerts[1].Key)
	}
}

func TestNotBeforeIgnoresOldEvents(t *testing.T) {
	e, m := testEngine(t, Options{NotBefore: t0.Add(7 * 24 * time.Hour)})
	if got := keys(run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 100))); len(got) != 0 {
		t.Fatalf("alerts = %v for week-old events, want none", got)
	}
	if e.Stats().Stale.Load() != 100 {
		t.Fatalf("stale = %d", e.Stats().Stale.Load())
	}
}

func TestUserKeyDistinctIPs(t *testing.T) {
	var hs []hit
	for i := 0; i < 5; i++ {
		hs = append(hs, hit{at: time.Duration(i) * time.Second, ip: fmt.Sprintf("198.51.100.%d", i+1), method: "POST", path: "/login", status: 401, user: "alice"})
	}
	e, m := testEngine(t, Options{})
	alerts := run(t, e, m, hs)
	if len(alerts) != 1 || alerts[0].Key != "alice" || alerts[0].KeyField != FieldUserName {
		t.Fatalf("alerts = %+v", alerts)
	}
}

func TestStateIsBounded(t *testing.T) {
	e, m := testEngine(t, Options{MaxKeys: 100})
	var hs []hit
	for i := 0; i < 1000; i++ {
		hs = append(hs, hit{at: time.Duration(i) * time.Millisecond, ip: fmt.Sprintf("203.0.%d.%d", i/256, i%256), method: "GET", path: "/x", status: 404})
	}
	run(t, e, m, hs)
	if k := e.Stats().Keys.Load(); k != 100 {
		t.Fatalf("keys = %d, want the cap 100", k)
	}
	if ev := e.Stats().Evicted.Load(); ev != 900 {
		t.Fatalf("evicted = %d, want 900", ev)
	}
	// Windows of keys that went quiet are dropped once the window passes.
	run(t, e, m, []hit{{at: 10 * time.Minute, ip: "203.0.113.1", method: "GET", path: "/y", status: 404}})
	if k := e.Stats().Keys.Load(); k != 1 {
		t.Fatalf("keys after the window passed = %d, want 1", k)
	}
}

func TestAlertIDDeterministic(t *testing.T) {
	var ids []string
	for i := 0; i < 2; i++ {
		e, m := testEngine(t, Options{})
		a := run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 50))
		ids = append(ids, a[0].ID)
	}
	if ids[0] != ids[1] || len(ids[0]) != 24 {
		t.Fatalf("ids = %v, want equal 24-hex ids", ids)
	}
}

const lateRules = `
rules:
  - id: count3
    match: {status: [500]}
    threshold: 3
    window: 10s
  - id: distinct3
    match: {status: [404]}
    distinct: url.path
    threshold: 3
    window: 10s
  - id: slow
    match: {status: [401]}
    threshold: 100
    window: 24h
`

func lateEngine(t *testing.T, opts Options) (*Engine, *Matcher) {
	t.Helper()
	rules, errs := Parse("late.yaml", []byte(lateRules))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rs := Compile(rules)
	return NewEngine(rs, opts), rs.NewMatcher()
}

// A late event can complete a window that ends before the newest event:
// events at 0s, 1s, 14s, then (late) 9s: 0s, 1s and 9s fit in 10s.
func TestLateEventCompletesEarlierWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		paths  []string
	}{
		{"count", 500, []string{"/a", "/a", "/a", "/a"}},
		{"distinct", 404, []string{"/a", "/b", "/c", "/d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, m := lateEngine(t, Options{Lateness: 6 * time.Second})
			var hs []hit
			for i, at := range []time.Duration{0, time.Second, 14 * time.Second, 9 * time.Second} {
				hs = append(hs, hit{at: at, ip: "203.0.113.5", method: "GET", path: tc.paths[i], status: tc.status})
			}
			alerts := run(t, e, m, hs)
			if len(alerts) != 1 || alerts[0].Count != 3 || !alerts[0].FirstSeen.Equal(t0) {
				t.Fatalf("alerts = %+v, want one with count 3 first seen at +0s", alerts)
			}
		})
	}
}

// Windows of a short rule expire even when a long rule's windows are older
// in arrival order, and the key cap evicts the least recently seen window.
func TestSweepWithMixedWindows(t *testing.T) {
	e, m := lateEngine(t, Options{MaxKeys: 100})
	hs := []hit{{at: 0, ip: "198.51.100.1", method: "POST", path: "/login", status: 401}} // 24h window
	for i := range 99 {
		hs = append(hs, hit{at: time.Second, ip: fmt.Sprintf("203.0.113.%d", i), method: "GET", path: "/x", status: 404})
	}
	hs = append(hs, hit{at: 10 * time.Minute, ip: "203.0.113.200", method: "GET", path: "/y", status: 404})
	run(t, e, m, hs)
	if got := e.Stats().Expired.Load(); got != 99 {
		t.Fatalf("expired = %d, want the 99 ten-second windows", got)
	}
	if got := e.Stats().Evicted.Load(); got != 0 {
		t.Fatalf("evicted = %d, want 0 (the 24h window must survive)", got)
	}
	if got := e.Stats().Keys.Load(); got != 2 {
		t.Fatalf("keys = %d, want 2", got)
	}
}

// In live mode an event far in the future is dropped: it must not expire
// every window and cooldown.
func TestFutureEventDropped(t *testing.T) {
	e, m := testEngine(t, Options{Now: func() time.Time { return t0 }})
	alerts := run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 50))
	alerts = append(alerts, run(t, e, m, []hit{{at: 48 * time.Hour, ip: "198.51.100.9", method: "GET", path: "/x", status: 404}})...)
	alerts = append(alerts, run(t, e, m, scan("203.0.113.7", time.Second, time.Millisecond, 50))...)
	if len(alerts) != 1 {
		t.Fatalf("alerts = %v, want one (the cooldown holds)", keys(alerts))
	}
	if e.Stats().Future.Load() != 1 {
		t.Fatalf("future = %d, want 1", e.Stats().Future.Load())
	}
}

// The engine reads the clock for the future limit only now and then; a
// clock stepped back is noticed before an event moves the watermark more
// than a second, and events that far ahead of it are dropped from then on.
func TestFutureLimitFollowsClockStepBack(t *testing.T) {
	now := t0
	e, m := testEngine(t, Options{Now: func() time.Time { return now }})
	run(t, e, m, []hit{{at: 0, ip: "198.51.100.9", method: "GET", path: "/a", status: 404}})
	now = t0.Add(-time.Hour) // the wall clock steps back an hour
	run(t, e, m, []hit{{at: 500 * time.Millisecond, ip: "198.51.100.9", method: "GET", path: "/b", status: 404}})
	if got := e.Stats().Future.Load(); got != 0 {
		t.Fatalf("future = %d within a second of the last sweep, want 0 (the cached limit holds)", got)
	}
	run(t, e, m, []hit{{at: 2 * time.Second, ip: "198.51.100.9", method: "GET", path: "/c", status: 404}})
	if got := e.Stats().Future.Load(); got != 1 {
		t.Fatalf("future = %d, want 1: an event an hour ahead of the stepped-back clock", got)
	}
}

// Cooldowns are capped like windows.
func TestCooldownsBounded(t *testing.T) {
	e, m := testEngine(t, Options{MaxKeys: 50})
	var hs []hit
	for i := range 200 {
		hs = append(hs, scan(fmt.Sprintf("203.0.%d.%d", i/256, i%256), time.Duration(i)*time.Second, time.Millisecond, 50)...)
	}
	if got := len(run(t, e, m, hs)); got != 200 {
		t.Fatalf("alerts = %d, want 200", got)
	}
	if q := e.Stats().Quiet.Load(); q > 50 {
		t.Fatalf("cooldowns = %d, want at most the cap 50", q)
	}
}

// Warm-up rebuilds state without returning or counting alerts.
func TestWarmUp(t *testing.T) {
	e, m := testEngine(t, Options{})
	e.SetWarmUp(true)
	if a := run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 60)); len(a) != 0 {
		t.Fatalf("alerts during warm-up: %v", keys(a))
	}
	e.SetWarmUp(false)
	if a := run(t, e, m, scan("203.0.113.7", time.Second, time.Millisecond, 60)); len(a) != 0 {
		t.Fatalf("a key that fired during warm-up fired again: %v", keys(a))
	}
	if d := e.Stats().Detections[0].Load(); d != 0 {
		t.Fatalf("detections counted during warm-up: %d", d)
	}
}

// Reset forgets windows and cooldowns: counts start again, a key that fired
// can fire again, and the engine's clock starts again too.
func TestReset(t *testing.T) {
	e, m := testEngine(t, Options{})
	if a := run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 60)); len(a) != 1 {
		t.Fatalf("alerts before the reset: %v", keys(a))
	}
	run(t, e, m, scan("203.0.113.8", 0, time.Millisecond, 49))
	e.Reset()
	if k := e.Stats().Keys.Load(); k != 0 {
		t.Fatalf("%d windows after the reset", k)
	}
	// A fiftieth path for .8 is its first now.
	if a := run(t, e, m, []hit{{at: time.Second, ip: "203.0.113.8", method: "GET", path: "/probe-49", status: 404}}); len(a) != 0 {
		t.Fatalf("a window survived the reset: %v", keys(a))
	}
	// .7 is no longer in its cooldown; events from before the last ones
	// seen are not late either (the watermark is gone).
	if a := run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 60)); len(a) != 1 {
		t.Fatalf("after the reset .7 fired %d times, want 1", len(a))
	}
	if d := e.Stats().Detections[0].Load(); d != 2 {
		t.Fatalf("detections %d, want 2 (counters go on)", d)
	}
}

// TestFired: cooldowns restored from stored alerts after a reset keep
// those keys quiet for the rest of their cooldown, in event time, whatever
// their kind of key; other keys fire as before, and an alert of a rule the
// engine lacks, or of another kind of key, changes nothing.
func TestFired(t *testing.T) {
	e, m := testEngine(t, Options{})
	stuffing := func(start time.Duration, user string) []hit {
		var hs []hit
		for i := range 5 {
			hs = append(hs, hit{at: start + time.Duration(i)*time.Second, ip: fmt.Sprintf("198.51.100.%d", i+1),
				method: "POST", path: "/login/", status: 401, user: user})
		}
		return hs
	}
	before := run(t, e, m, append(scan("203.0.113.7", 0, time.Millisecond, 60), stuffing(0, "alice")...))
	if len(before) != 2 {
		t.Fatalf("alerts before the reset: %v", keys(before))
	}
	e.Reset()
	for _, a := range before {
		if !e.Fired(a.Rule, a.KeyField, a.Key, a.At) {
			t.Fatalf("Fired(%s, %s, %s) refused", a.Rule, a.KeyField, a.Key)
		}
	}
	if q := e.Stats().Quiet.Load(); q != 2 {
		t.Fatalf("%d keys in cooldown, want 2", q)
	}
	// Half an hour later, past every window: both keys are still quiet
	// (scan's cooldown is its 72h ban, stuffing's the 1h default); the
	// same behaviour from another IP and user fires.
	later := 30 * time.Minute
	after := run(t, e, m, append(append(scan("203.0.113.7", later, time.Millisecond, 60), stuffing(later, "alice")...),
		append(scan("203.0.113.8", later, time.Millisecond, 60), stuffing(later, "bob")...)...))
	if fmt.Sprint(keys(after)) != "[scan:203.0.113.8 stuffing:bob]" {
		t.Fatalf("alerts after the cooldowns were restored: %v, want scan/203.0.113.8 and stuffing/bob", keys(after))
	}
	// Past stuffing's hour, alice fires again; .7 stays banned-quiet.
	again := run(t, e, m, append(scan("203.0.113.7", 2*time.Hour, time.Millisecond, 60), stuffing(2*time.Hour, "alice")...))
	if fmt.Sprint(keys(again)) != "[stuffing:alice]" {
		t.Fatalf("alerts two hours on: %v, want stuffing/alice only", keys(again))
	}

	for _, c := range []struct{ rule, field, key string }{
		{"gone", FieldSourceIP, "203.0.113.9"},     // no such rule
		{"scan", "user.name", "203.0.113.9"},       // scan is keyed by IP
		{"scan", FieldSourceIP, "not-an-ip"},       // bad key
		{"stuffing", FieldSourceIP, "203.0.113.9"}, // stuffing is keyed by user
	} {
		if e.Fired(c.rule, c.field, c.key, t0) {
			t.Errorf("Fired(%s, %s, %s) accepted", c.rule, c.field, c.key)
		}
	}
	if a := run(t, e, m, scan("203.0.113.9", 3*time.Hour, time.Millisecond, 60)); len(a) != 1 {
		t.Fatalf(".9 fired %d times after refused restores, want 1", len(a))
	}
}

const relRules = `
rules:
  - id: spike
    source: csp
    group_by: vigil.csp.document
    threshold: 10
    window: 60s
    baseline: {factor: 5, learn: 10m}
    cooldown: 5m
  - id: new-origin
    source: csp
    group_by: vigil.csp.document
    threshold: 1
    window: 60s
    novelty: {field: vigil.csp.blocked_origin, learn: 1h}
`

func cspEvent(at time.Duration, doc, origin string) event.Event {
	return event.Event{Source: event.SourceCSP, Time: t0.Add(at), SourceIP: netip.MustParseAddr("198.51.100.1"),
		CSP: &event.CSP{DocumentURI: doc, BlockedOrigin: origin, BlockedURI: origin + "/x.js"}}
}

func runEvents(t *testing.T, e *Engine, m *Matcher, evs []event.Event) []event.Alert {
	t.Helper()
	var alerts []event.Alert
	var obs []Observation
	for i := range evs {
		obs = m.Match(&evs[i], evs[i].CSP.BlockedURI, obs[:0])
		for j := range obs {
			alerts = e.Observe(&obs[j], alerts)
		}
	}
	return alerts
}

func relEngine(t *testing.T) (*Engine, *Matcher) {
	t.Helper()
	rules, errs := Parse("rel.yaml", []byte(relRules))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rs := Compile(rules)
	return NewEngine(rs, Options{}), rs.NewMatcher()
}

// A page that usually reports ~8 violations a minute does not fire at 10
// (the floor) but does at 5x its usual rate; a quiet page fires at the floor.
func TestBaselineSpike(t *testing.T) {
	e, m := relEngine(t)
	var evs []event.Event
	// 30 minutes of a steady 8 per minute on the busy page.
	for i := range 30 * 8 {
		evs = append(evs, cspEvent(time.Duration(i)*7500*time.Millisecond, "https://shop.example/cart?x=1", "inline"))
	}
	if a := runEvents(t, e, m, evs); len(a) != 0 {
		t.Fatalf("steady rate fired: %v", keys(a))
	}
	// A burst of 60 in ten seconds.
	evs = evs[:0]
	for i := range 60 {
		evs = append(evs, cspEvent(30*time.Minute+time.Duration(i)*150*time.Millisecond, "https://shop.example/cart", "inline"))
	}
	// A quiet page: 10 at once.
	for i := range 10 {
		evs = append(evs, cspEvent(30*time.Minute+time.Duration(i)*time.Second, "https://shop.example/about", "inline"))
	}
	alerts := runEvents(t, e, m, evs)
	got := keys(alerts)
	if len(got) != 2 || got[0] != "spike:https://shop.example/cart" || got[1] != "spike:https://shop.example/about" {
		t.Fatalf("alerts = %v", got)
	}
	if alerts[0].Count < 5*7 || alerts[0].Count > 60 || alerts[0].KeyField != FieldCSPDocument { // fires at 5x the usual ~7.6
		t.Fatalf("busy page alert = %+v", alerts[0])
	}
}

// A blocked origin never seen on a page fires once the page is known; what
// was seen while learning does not.
func TestNovelty(t *testing.T) {
	e, m := relEngine(t)
	evs := []event.Event{
		cspEvent(0, "https://shop.example/cart", "https://cdn.example"),
		cspEvent(10*time.Minute, "https://shop.example/cart", "https://fonts.example"), // still learning
		cspEvent(2*time.Hour, "https://shop.example/cart", "https://cdn.example"),
		cspEvent(2*time.Hour, "https://shop.example/cart", "https://evil.example"),
		cspEvent(2*time.Hour+time.Second, "https://shop.example/cart", "https://evil.example"),
		cspEvent(2*time.Hour, "https://shop.example/new-page", "https://evil.example"), // new page: learning
	}
	alerts := runEvents(t, e, m, evs)
	var novel []event.Alert
	for _, a := range alerts {
		if a.Rule == "new-origin" {
			novel = append(novel, a)
		}
	}
	if len(novel) != 1 || novel[0].Key != "https://shop.example/cart" || novel[0].Evidence[0] != "new vigil.csp.blocked_origin: https://evil.example" {
		t.Fatalf("novelty alerts = %+v", novel)
	}
}

func TestExplain(t *testing.T) {
	e, m := testEngine(t, Options{})
	run(t, e, m, scan("203.0.113.7", 0, time.Millisecond, 30))
	info := e.Explain("203.0.113.7")
	if len(info) != 1 || info[0].Rule != "scan" || info[0].Count != 30 || info[0].Threshold != 50 || !info[0].Tracked {
		t.Fatalf("explain before firing = %+v", info)
	}
	more := scan("203.0.113.7", time.Second, time.Millisecond, 30)
	for i := range more {
		more[i].path += "-more"
	}
	if a := run(t, e, m, more); len(a) != 1 {
		t.Fatalf("alerts = %v", keys(a))
	}
	info = e.Explain("203.0.113.7")
	if len(info) != 1 || info[0].Tracked || info[0].QuietTill.IsZero() {
		t.Fatalf("explain after firing = %+v", info)
	}
	if got := e.Explain("198.51.100.1"); len(got) != 0 {
		t.Fatalf("unknown key: %+v", got)
	}
}

// TestBannedAddressIsQuiet: once a rule bans an address, every rule
// grouping by source.ip passes over its events until the rule's ban is
// over (one incident, one alert), counted as suppressed; other addresses
// are watched as ever; an allow-listed address, which is never banned, is
// not quieted; a ban restored by Fired quiets the address too.
func TestBannedAddressIsQuiet(t *testing.T) {
	posts := func(ip string, start time.Duration) []hit {
		var hs []hit
		for i := range 20 {
			hs = append(hs, hit{at: start + time.Duration(i)*time.Second, ip: ip, method: "POST", path: "/api/token/", status: 403})
		}
		return hs
	}
	const x, y = "203.0.113.7", "203.0.113.8"
	e, m := testEngine(t, Options{BanQuiet: DefaultBanQuiet})
	got := keys(run(t, e, m, append(scan(x, 0, 10*time.Millisecond, 50), append(posts(x, time.Minute), posts(y, time.Minute)...)...)))
	if fmt.Sprint(got) != fmt.Sprint([]string{"scan:" + x, "brute:" + y}) {
		t.Fatalf("alerts = %v, want the scan's ban of %s and %s's brute force only", got, x, y)
	}
	if n := e.Stats().Suppressed.Load(); n < 20 {
		t.Errorf("suppressed = %d, want the 20 posts of the banned address", n)
	}
	// Past BanQuiet (an hour, shorter than the rule's 72h ban: a ban that
	// did not take must not hide the address for days) it is watched
	// again.
	if got := keys(run(t, e, m, posts(x, 2*time.Hour))); fmt.Sprint(got) != fmt.Sprint([]string{"brute:" + x}) {
		t.Errorf("after BanQuiet: alerts = %v, want brute:%s", got, x)
	}
	// A dry run (BanQuiet 0) bans no one and quiets no one.
	e, m = testEngine(t, Options{})
	if got := keys(run(t, e, m, append(scan(x, 0, 10*time.Millisecond, 50), posts(x, time.Minute)...))); fmt.Sprint(got) != fmt.Sprint([]string{"scan:" + x, "brute:" + x}) {
		t.Errorf("BanQuiet 0: alerts = %v, want both", got)
	}

	allow, err := NewAllowlist([]string{x + "/32"})
	if err != nil {
		t.Fatal(err)
	}
	e, m = testEngine(t, Options{Allow: allow, BanQuiet: DefaultBanQuiet})
	if got := keys(run(t, e, m, append(scan(x, 0, 10*time.Millisecond, 50), posts(x, time.Minute)...))); fmt.Sprint(got) != fmt.Sprint([]string{"scan:" + x, "brute:" + x}) {
		t.Errorf("allow-listed: alerts = %v, want both (it is never banned)", got)
	}

	e, m = testEngine(t, Options{BanQuiet: DefaultBanQuiet})
	if !e.Fired("scan", FieldSourceIP, x, t0) {
		t.Fatal("Fired(scan) = false")
	}
	if got := keys(run(t, e, m, posts(x, time.Minute))); len(got) != 0 {
		t.Errorf("after a restored ban: alerts = %v, want none", got)
	}
}

// TestBanningEventCountsEverywhere: the event that gets an address banned
// still counts in the other rules it matches (a scanner's first probe is
// often several rules' evidence at once), and so do events of the same
// time (access log times are whole seconds); later ones are passed over.
func TestBanningEventCountsEverywhere(t *testing.T) {
	rules, errs := Parse("t.yaml", []byte(`
rules:
  - id: first
    match: {status: [404]}
    threshold: 1
    window: 60s
    actions: {ban: 1h}
  - id: second
    match: {status: [404]}
    threshold: 2
    window: 60s
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rs := Compile(rules)
	e, m := NewEngine(rs, Options{BanQuiet: DefaultBanQuiet}), rs.NewMatcher()
	const x = "203.0.113.7"
	h := func(at time.Duration, path string) hit {
		return hit{at: at, ip: x, method: "GET", path: path, status: 404}
	}
	got := keys(run(t, e, m, []hit{h(0, "/a"), h(0, "/b"), h(2*time.Second, "/c"), h(3*time.Second, "/d")}))
	if fmt.Sprint(got) != fmt.Sprint([]string{"first:" + x, "second:" + x}) {
		t.Fatalf("alerts = %v, want first and second (its 2nd event at the banning time)", got)
	}
	e, m = NewEngine(rs, Options{BanQuiet: DefaultBanQuiet}), rs.NewMatcher()
	if got := keys(run(t, e, m, []hit{h(0, "/a"), h(2*time.Second, "/c"), h(3*time.Second, "/d")})); fmt.Sprint(got) != fmt.Sprint([]string{"first:" + x}) {
		t.Fatalf("alerts = %v, want first only: later events of the banned address are passed over", got)
	}
}

// TestForgive: after an operator's unban (Forgive), the address starts
// afresh: a second scan is banned again at once, though the rule's
// cooldown (its 72h ban) has not passed, while events from before the
// unban stay passed over; other addresses, and cooldowns that began after
// the unban, are kept.
func TestForgive(t *testing.T) {
	const x, y = "203.0.113.7", "203.0.113.8"
	e, m := testEngine(t, Options{BanQuiet: DefaultBanQuiet})
	first := append(scan(x, 0, 10*time.Millisecond, 50), scan(y, 0, 10*time.Millisecond, 50)...)
	if got := keys(run(t, e, m, first)); fmt.Sprint(got) != fmt.Sprint([]string{"scan:" + x, "scan:" + y}) {
		t.Fatalf("first scans: alerts = %v", got)
	}
	// An unban dated before the scans (the cooldowns began after it)
	// changes nothing.
	if n := e.Forgive(netip.MustParsePrefix(x+"/32"), t0.Add(-time.Minute)); n != 0 {
		t.Fatalf("Forgive before the scan cut %d cooldowns short, want 0", n)
	}
	if n := e.Forgive(netip.MustParsePrefix(x+"/32"), t0.Add(5*time.Minute)); n != 1 {
		t.Fatalf("Forgive after the scan cut %d cooldowns short, want 1", n)
	}
	// Events from before the unban (a lagging detector, a backlog) are
	// still passed over: they do not ban again what was unbanned.
	if got := keys(run(t, e, m, scan(x, 2*time.Minute, 10*time.Millisecond, 50))); len(got) != 0 {
		t.Fatalf("a scan from before the unban: alerts = %v, want none", got)
	}
	again := append(scan(x, 10*time.Minute, 10*time.Millisecond, 50), scan(y, 10*time.Minute, 10*time.Millisecond, 50)...)
	if got := keys(run(t, e, m, again)); fmt.Sprint(got) != fmt.Sprint([]string{"scan:" + x}) {
		t.Fatalf("second scans: alerts = %v, want scan:%s only (%s still in its cooldown)", got, x, y)
	}
}
