package respond_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// trips records OnTrip calls.
type trips struct {
	mu    sync.Mutex
	calls []string
}

func (tr *trips) onTrip(scope string, count int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.calls = append(tr.calls, fmt.Sprintf("%s=%d", scope, count))
}

func (tr *trips) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.calls...)
}

// ruleAlert is a ban alert of rule for the n-th address of a /16 of the
// rule's own (the rules of these tests have distinct byte sums).
func ruleAlert(rule string, n int) *event.Alert {
	sum := 0
	for _, c := range []byte(rule) {
		sum += int(c)
	}
	a := banAlert(fmt.Sprintf("%s-%d", rule, n), fmt.Sprintf("10.%d.%d.%d", sum%256, n/256, n%256), time.Hour)
	a.Rule = rule
	return a
}

// flood handles n alerts of rule, starting at address from, and returns
// how many audits had each result.
func flood(t *testing.T, r *respond.Responder, rule string, from, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := from; i < from+n; i++ {
		audits, retry, err := r.Handle(testCtx(t), ruleAlert(rule, i))
		if err != nil || retry {
			t.Fatalf("Handle %s #%d = %v, %v", rule, i, retry, err)
		}
		got[audits[0].Result]++
	}
	return got
}

func breakerGauge(t *testing.T, reg *prometheus.Registry, scope string) float64 {
	t.Helper()
	v, ok := metric(t, reg, "vigil_respond_breaker_open", map[string]string{"scope": scope})
	if !ok {
		t.Fatalf("no vigil_respond_breaker_open{scope=%q}", scope)
	}
	return v
}

func breakerTrips(t *testing.T, reg *prometheus.Registry, scope string) float64 {
	t.Helper()
	v, _ := metric(t, reg, "vigil_respond_breaker_trips_total", map[string]string{"scope": scope})
	return v
}

// banned counts the bans in the index.
func (f *fixture) banned(t *testing.T) int64 {
	t.Helper()
	n, err := f.rdb.ZCard(testCtx(t), f.store.IndexKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// reset resets the breakers of scope and returns those that were open.
func reset(t *testing.T, r *respond.Responder, scope string) []string {
	t.Helper()
	was, err := r.ResetBreaker(testCtx(t), scope)
	if err != nil {
		t.Fatalf("ResetBreaker(%q): %v", scope, err)
	}
	return was
}

func TestBreakerPerRule(t *testing.T) {
	f := newFixture(t)
	var tr trips
	r, reg := f.responder(t, respond.Config{
		Breaker: respond.BreakerConfig{PerRule: 50, Overall: 200, Window: 10 * time.Minute},
		OnTrip:  tr.onTrip,
		Now:     f.clock.Now,
	})
	if g := breakerGauge(t, reg, "overall"); g != 0 {
		t.Errorf("overall gauge before anything = %v", g)
	}

	got := flood(t, r, "scan-404", 0, 60)
	if want := map[string]int{"applied": 50, "breaker-open": 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("results = %v, want %v", got, want)
	}
	if n := f.banned(t); n != 50 {
		t.Errorf("bans in Redis = %d, want 50", n)
	}
	if calls := tr.get(); !reflect.DeepEqual(calls, []string{"rule:scan-404=50"}) {
		t.Errorf("OnTrip calls = %v, want one for rule:scan-404 at 50", calls)
	}
	if g := breakerGauge(t, reg, "rule:scan-404"); g != 1 {
		t.Errorf("breaker gauge = %v, want 1", g)
	}
	if n := breakerTrips(t, reg, "rule:scan-404"); n != 1 {
		t.Errorf("trips = %v, want 1", n)
	}
	if n := actionCount(t, reg, "ban", "breaker-open"); n != 10 {
		t.Errorf("breaker-open counter = %v, want 10", n)
	}
	// The audit of a stopped ban says which breaker.
	audits, _, _ := r.Handle(testCtx(t), ruleAlert("scan-404", 99))
	if au := audits[0]; au.Result != "breaker-open" || au.Error == "" || au.ID != "scan-404-99:ban" || au.Target != ruleAlert("scan-404", 99).Key {
		t.Errorf("breaker-open audit = %+v", au)
	}
	states := r.Breakers()
	if st := states["rule:scan-404"]; !st.Open || st.Count != 50 || st.Limit != 50 || !st.Since.Equal(t0) || st.Blocked != 11 {
		t.Errorf("rule state = %+v", st)
	}
	if st := states["overall"]; st.Open || st.Count != 50 || st.Limit != 200 {
		t.Errorf("overall state = %+v", st)
	}

	// Another rule still bans.
	if got := flood(t, r, "other", 0, 3); got["applied"] != 3 {
		t.Errorf("other rule = %v, want 3 applied", got)
	}

	// Reset closes it and bans flow again.
	if was := reset(t, r, ""); !reflect.DeepEqual(was, []string{"rule:scan-404"}) {
		t.Errorf("ResetBreaker = %v", was)
	}
	if g := breakerGauge(t, reg, "rule:scan-404"); g != 0 {
		t.Errorf("gauge after reset = %v, want 0", g)
	}
	if got := flood(t, r, "scan-404", 100, 5); got["applied"] != 5 {
		t.Errorf("after reset = %v, want 5 applied", got)
	}
	if was := reset(t, r, "rule:scan-404"); len(was) != 0 {
		t.Errorf("ResetBreaker of a closed breaker = %v", was)
	}
	if len(tr.get()) != 1 {
		t.Errorf("OnTrip calls = %v", tr.get())
	}
}

func TestBreakerOverall(t *testing.T) {
	f := newFixture(t)
	var tr trips
	r, reg := f.responder(t, respond.Config{
		Breaker: respond.BreakerConfig{PerRule: 100, Overall: 20},
		OnTrip:  tr.onTrip,
	})
	a := flood(t, r, "r1", 0, 10)
	b := flood(t, r, "r2", 0, 10)
	c := flood(t, r, "r3", 0, 10)
	if a["applied"] != 10 || b["applied"] != 10 || c["breaker-open"] != 10 {
		t.Errorf("results r1 %v, r2 %v, r3 %v; want 10, 10 applied, 10 stopped", a, b, c)
	}
	if n := f.banned(t); n != 20 {
		t.Errorf("bans = %d, want 20", n)
	}
	if calls := tr.get(); !reflect.DeepEqual(calls, []string{"overall=20"}) {
		t.Errorf("OnTrip = %v", calls)
	}
	if g := breakerGauge(t, reg, "overall"); g != 1 {
		t.Errorf("overall gauge = %v", g)
	}
	if n := breakerTrips(t, reg, "overall"); n != 1 {
		t.Errorf("overall trips = %v", n)
	}
	// Every rule is stopped, not only the one that hit the limit.
	if got := flood(t, r, "r1", 50, 1); got["breaker-open"] != 1 {
		t.Errorf("r1 while overall open = %v", got)
	}
	// Manual bans ignore the breaker.
	if au, err := r.Apply(testCtx(t), respond.ManualAction{Kind: "ban", Target: "203.0.113.9", Actor: "ann"}); err != nil || au.Result != "applied" {
		t.Errorf("manual ban while open = %+v, %v", au, err)
	}
	if was := reset(t, r, "overall"); !reflect.DeepEqual(was, []string{"overall"}) {
		t.Errorf("ResetBreaker(overall) = %v", was)
	}
	if got := flood(t, r, "r3", 0, 10); got["applied"] != 10 {
		t.Errorf("r3 after reset = %v", got)
	}
}

func TestBreakerWindowSlidesAndCountsOnlyApplied(t *testing.T) {
	f := newFixture(t)
	var tr trips
	r, _ := f.responder(t, respond.Config{
		Breaker: respond.BreakerConfig{PerRule: 3, Window: 10 * time.Minute},
		OnTrip:  tr.onTrip,
	})
	ctx := testCtx(t)
	// Repeats and allow-listed alerts do not count.
	for range 5 {
		if _, _, err := r.Handle(ctx, ruleAlert("r", 0)); err != nil {
			t.Fatal(err)
		}
	}
	al := ruleAlert("r", 1)
	al.Allowlisted = true
	if _, _, err := r.Handle(ctx, al); err != nil {
		t.Fatal(err)
	}
	if got := flood(t, r, "r", 2, 2); got["applied"] != 2 {
		t.Fatalf("results = %v", got)
	}
	if st := r.Breakers()["rule:r"]; st.Count != 3 || st.Open {
		t.Errorf("state = %+v; want 3 counted, closed", st)
	}
	// Bans older than the window leave it.
	f.clock.Add(5 * time.Minute)
	if got := flood(t, r, "r", 10, 1); got["breaker-open"] != 1 {
		t.Fatalf("4th ban within the window = %v; want stopped", got)
	}
	reset(t, r, "")
	if got := flood(t, r, "r", 20, 3); got["applied"] != 3 {
		t.Fatalf("after reset = %v", got)
	}
	f.clock.Add(11 * time.Minute)
	if got := flood(t, r, "r", 30, 3); got["applied"] != 3 {
		t.Errorf("after the window passed = %v; want 3 applied", got)
	}
	if got := flood(t, r, "r", 40, 1); got["breaker-open"] != 1 {
		t.Errorf("4th in the new window = %v; want stopped", got)
	}
	if len(tr.get()) != 2 {
		t.Errorf("OnTrip calls = %v, want 2", tr.get())
	}
}

func TestBreakerIgnoresDryRun(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{DryRun: true, Breaker: respond.BreakerConfig{PerRule: 2}})
	if got := flood(t, r, "r", 0, 10); got["dry-run"] != 10 {
		t.Errorf("dry run = %v; want 10 dry-run", got)
	}
	if st := r.Breakers(); len(st) != 1 || st["overall"].Count != 0 {
		t.Errorf("Breakers = %+v; want only an empty overall", st)
	}
}

func TestBreakerConcurrentFlood(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{Breaker: respond.BreakerConfig{PerRule: 20}})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]int{}
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				audits, _, err := r.Handle(testCtx(t), ruleAlert("r", w*100+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				results[audits[0].Result]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if results["applied"] != 20 || results["breaker-open"] != 40 {
		t.Errorf("results = %v; want exactly 20 applied", results)
	}
	if n := f.banned(t); n != 20 {
		t.Errorf("bans = %d, want 20", n)
	}
}

// TestBreakerOpenSurvivesARestart: a breaker that opened stays open in a
// new Responder (a restarted Vigil) until an operator resets it; a reset
// that cannot reach Redis changes nothing.
func TestBreakerOpenSurvivesARestart(t *testing.T) {
	f := newFixture(t)
	cfg := respond.Config{Breaker: respond.BreakerConfig{PerRule: 5, Overall: 100}, Now: f.clock.Now}
	r1, _ := f.responder(t, cfg)
	if got := flood(t, r1, "scan-404", 0, 6); got["breaker-open"] != 1 {
		t.Fatalf("flood = %v", got)
	}

	r2, reg := f.responder(t, cfg)
	opened, err := r2.RestoreBreakers(testCtx(t))
	if err != nil || !reflect.DeepEqual(opened, []string{"rule:scan-404"}) {
		t.Fatalf("RestoreBreakers = %v, %v", opened, err)
	}
	if st := r2.Breakers()["rule:scan-404"]; !st.Open || st.Count != 5 || !st.Since.Equal(t0) {
		t.Errorf("restored state = %+v", st)
	}
	if g := breakerGauge(t, reg, "rule:scan-404"); g != 1 {
		t.Errorf("gauge after restore = %v, want 1", g)
	}
	if n := breakerTrips(t, reg, "rule:scan-404"); n != 0 {
		t.Errorf("a restore counted as a trip: %v", n)
	}
	if got := flood(t, r2, "scan-404", 10, 2); got["breaker-open"] != 2 {
		t.Errorf("bans after the restart = %v, want stopped", got)
	}
	if got := flood(t, r2, "other", 0, 2); got["applied"] != 2 {
		t.Errorf("another rule after the restart = %v, want applied", got)
	}

	// Redis unreachable (here: a dead context): the reset refuses and
	// the breaker stays open.
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r2.ResetBreaker(dead, ""); err == nil {
		t.Error("ResetBreaker without Redis succeeded")
	}
	if !r2.Breakers()["rule:scan-404"].Open {
		t.Error("a failed reset closed the breaker")
	}

	if was := reset(t, r2, "rule:scan-404"); !reflect.DeepEqual(was, []string{"rule:scan-404"}) {
		t.Errorf("reset = %v", was)
	}
	r3, _ := f.responder(t, cfg)
	if opened, err := r3.RestoreBreakers(testCtx(t)); err != nil || len(opened) != 0 {
		t.Errorf("RestoreBreakers after the reset = %v, %v", opened, err)
	}

	// A record that is not JSON reads as open: the safe side.
	if err := f.rdb.HSet(testCtx(t), f.store.BreakersKey(), "overall", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if opened, err := r3.RestoreBreakers(testCtx(t)); err != nil || !reflect.DeepEqual(opened, []string{"overall"}) {
		t.Errorf("RestoreBreakers of a garbled record = %v, %v", opened, err)
	}
}

// TestBreakerRecordAgreesWithMemory: trips racing with resets leave the
// Redis record saying exactly what memory says.
func TestBreakerRecordAgreesWithMemory(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{Breaker: respond.BreakerConfig{PerRule: 2, Overall: 1000}})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 40 {
				if _, _, err := r.Handle(ctx, ruleAlert(fmt.Sprintf("rule%d", w), i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 40 {
			if _, err := r.ResetBreaker(ctx, ""); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	stored, err := f.store.OpenBreakers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for scope, st := range r.Breakers() {
		if _, ok := stored[scope]; ok != st.Open {
			t.Errorf("%s: open in memory %v, in Redis %v", scope, st.Open, ok)
		}
	}
	for scope := range stored {
		if !r.Breakers()[scope].Open {
			t.Errorf("%s: open in Redis only", scope)
		}
	}
}

// TestBreakerStopsRevocations: a rule revoking the tokens of too many users
// trips its breaker as a banning rule does.
func TestBreakerStopsRevocations(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{Breaker: respond.BreakerConfig{PerRule: 5, Overall: 100}})
	ctx := testCtx(t)
	got := map[string]int{}
	for i := range 8 {
		audits, _, err := r.Handle(ctx, revokeAlert(fmt.Sprintf("R%d", i), fmt.Sprint(100+i)))
		if err != nil {
			t.Fatal(err)
		}
		got[audits[0].Result]++
	}
	if want := map[string]int{"applied": 5, "breaker-open": 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("results = %v, want %v", got, want)
	}
	if n, _ := f.rdb.Exists(ctx, f.store.RevokeUserKey("107")).Result(); n != 0 {
		t.Error("a revocation was applied with the breaker open")
	}
	if !r.Breakers()["rule:token-abuse"].Open {
		t.Errorf("breakers = %+v", r.Breakers())
	}
}
