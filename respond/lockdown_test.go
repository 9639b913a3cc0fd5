package respond_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// lockdown reads and decodes the lockdown key; ok is false if there is
// none.
func (f *fixture) lockdown(t *testing.T) (l map[string]any, ok bool) {
	t.Helper()
	v, ok := f.get(t, f.store.LockdownKey())
	if !ok {
		return nil, false
	}
	if err := json.Unmarshal([]byte(v), &l); err != nil {
		t.Fatalf("decoding %s = %s: %v", f.store.LockdownKey(), v, err)
	}
	return l, true
}

func TestDjangoKey(t *testing.T) {
	if got := respond.DjangoKey("", 1, "EMERGENCY_LOCKDOWN"); got != ":1:EMERGENCY_LOCKDOWN" {
		t.Errorf("DjangoKey default = %q", got)
	}
	if got := respond.DjangoKey("myapp", 2, "EMERGENCY_LOCKDOWN"); got != "myapp:2:EMERGENCY_LOCKDOWN" {
		t.Errorf("DjangoKey(myapp, 2) = %q", got)
	}
	s := respond.NewStore(nil, "", nil)
	if got := s.DjangoLockdownKey(); got != ":1:EMERGENCY_LOCKDOWN" {
		t.Errorf("default DjangoLockdownKey = %q", got)
	}
	if got := s.Options().HistoryTTL; got != 90*24*time.Hour {
		t.Errorf("default HistoryTTL = %s", got)
	}
	if got := s.WithOptions(respond.StoreOptions{DjangoCacheKey: "x:1:L"}).DjangoLockdownKey(); got != "x:1:L" {
		t.Errorf("DjangoLockdownKey with options = %q", got)
	}
	if s.DjangoLockdownKey() != ":1:EMERGENCY_LOCKDOWN" {
		t.Error("WithOptions changed the original store")
	}
}

func TestLockdownWithUntil(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	ev := f.subscribe(t)
	until := t0.Add(time.Hour)

	err := f.store.SetLockdown(ctx, respond.Lockdown{Mode: "read-only", Reason: "credential stuffing", By: "admin:ann", Until: until})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := f.lockdown(t)
	want := map[string]any{
		"mode": "read-only", "reason": "credential stuffing", "by": "admin:ann",
		"since": "2026-03-01T12:00:00Z", "until": "2026-03-01T13:00:00Z",
	}
	if !ok || !reflect.DeepEqual(l, want) {
		t.Errorf("lockdown = %v (present %v), want %v", l, ok, want)
	}
	if v, ok := f.get(t, f.store.DjangoLockdownKey()); !ok || v != "1" {
		t.Errorf("Django key %s = %q (present %v), want exactly \"1\"", f.store.DjangoLockdownKey(), v, ok)
	}
	// Both end when the lockdown does: until is whole seconds, 59m59.75s
	// after the test clock.
	wantTTL := until.Truncate(time.Second).Sub(t0)
	for _, k := range []string{f.store.LockdownKey(), f.store.DjangoLockdownKey()} {
		if ttl := f.pttl(t, k); !within(ttl, wantTTL, time.Second) {
			t.Errorf("TTL of %s = %s, want %s", k, ttl, wantTTL)
		}
	}
	if m := ev.raw(); !reflect.DeepEqual(m, map[string]any{
		"type": "lockdown", "mode": "read-only", "by": "admin:ann",
		"since": float64(t0.Unix()), "until": float64(until.Unix()),
	}) {
		t.Errorf("event = %v", m)
	}
	got, err := f.store.Lockdown(ctx)
	if err != nil || got == nil {
		t.Fatalf("Lockdown = %v, %v", got, err)
	}
	if wantL := (respond.Lockdown{Mode: "read-only", Reason: "credential stuffing", By: "admin:ann",
		Since: t0.Truncate(time.Second), Until: until.Truncate(time.Second)}); !reflect.DeepEqual(*got, wantL) {
		t.Errorf("Lockdown = %+v, want %+v", *got, wantL)
	}

	// Release deletes both, once.
	released, err := f.store.ReleaseLockdown(ctx, "admin:bob")
	if err != nil || !released {
		t.Fatalf("ReleaseLockdown = %v, %v", released, err)
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys after release: %v", k)
	}
	if m := ev.raw(); !reflect.DeepEqual(m, map[string]any{"type": "lockdown-off", "by": "admin:bob"}) {
		t.Errorf("event = %v", m)
	}
	if got, err := f.store.Lockdown(ctx); err != nil || got != nil {
		t.Errorf("Lockdown after release = %+v, %v; want nil, nil", got, err)
	}
	released, err = f.store.ReleaseLockdown(ctx, "admin:bob")
	if err != nil || released {
		t.Errorf("second ReleaseLockdown = %v, %v; want not released", released, err)
	}
	ev.none()
}

func TestLockdownUntilReleased(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	// One that ends first, then one without an end: the new one drops the
	// TTLs.
	if err := f.store.SetLockdown(ctx, respond.Lockdown{Mode: "full", Until: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetLockdown(ctx, respond.Lockdown{Mode: "full", Reason: "incident", By: "admin:ann"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{f.store.LockdownKey(), f.store.DjangoLockdownKey()} {
		if ttl := f.pttl(t, k); ttl != noTTL {
			t.Errorf("TTL of %s = %s, want none", k, ttl)
		}
	}
	l, _ := f.lockdown(t)
	if _, has := l["until"]; has || l["mode"] != "full" {
		t.Errorf("lockdown = %v; want full without until", l)
	}
}

func TestLockdownExpires(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	// The test clock is at .25 s: until t0+2s truncates to 1.75 s away.
	if err := f.store.SetLockdown(ctx, respond.Lockdown{Mode: "full", Until: t0.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if k := f.keys(t); len(k) != 2 {
		t.Fatalf("keys = %v; want the lockdown and its mirror", k)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.keys(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("keys still there after 5s: %v", f.keys(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSetLockdownRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	for name, l := range map[string]respond.Lockdown{
		"no mode":     {},
		"bad mode":    {Mode: "partial"},
		"until past":  {Mode: "full", Until: t0.Add(-time.Hour)},
		"until now":   {Mode: "full", Until: t0.Add(500 * time.Millisecond)},
		"mode spaces": {Mode: " full"},
	} {
		if err := f.store.SetLockdown(ctx, l); err == nil || respond.Retryable(err) {
			t.Errorf("%s: SetLockdown = %v; want a non-retryable error", name, err)
		}
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys written: %v", k)
	}
}

func lockdownAlert(id, mode string, d time.Duration) *event.Alert {
	return &event.Alert{
		ID: id, Rule: "login-storm", Description: "Login failures across the site", Severity: "critical",
		At: t0, Window: event.Duration(time.Minute), Count: 5000,
		Actions: []event.ActionSpec{{Kind: event.ActionLockdown, Mode: mode, Duration: event.Duration(d)}},
	}
}

func TestHandleLockdown(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{})
	ctx := testCtx(t)

	audits, retry, err := r.Handle(ctx, lockdownAlert("L1", "read-only", time.Hour))
	if err != nil || retry {
		t.Fatalf("Handle = %v, %v", retry, err)
	}
	want := event.Audit{
		ID: "L1:lockdown", Time: t0, Action: "lockdown", Actor: "rule:login-storm",
		Reason: "Login failures across the site (5000 in 1m0s)", AlertID: "L1", Result: "applied",
		Duration: event.Duration(time.Hour), Expires: t0.Add(time.Hour).Truncate(time.Second),
	}
	if len(audits) != 1 || !reflect.DeepEqual(audits[0], want) {
		t.Errorf("audits\n got %+v\nwant %+v", audits, want)
	}
	l, err := f.store.Lockdown(ctx)
	if err != nil || l == nil || l.Mode != "read-only" || !strings.Contains(l.Reason, "L1") || l.By != "rule:login-storm" {
		t.Fatalf("Lockdown = %+v, %v", l, err)
	}
	if v, _ := f.get(t, f.store.DjangoLockdownKey()); v != "1" {
		t.Errorf("Django key = %q", v)
	}

	// The same alert again: unchanged.
	f.clock.Add(time.Minute)
	audits, _, err = r.Handle(ctx, lockdownAlert("L1", "read-only", time.Hour))
	if err != nil || audits[0].Result != "unchanged" || !audits[0].Expires.Equal(want.Expires) {
		t.Errorf("repeat = %+v, %v; want unchanged with the same expiry", audits, err)
	}

	// A stronger but shorter one: full, until the later end.
	audits, _, err = r.Handle(ctx, lockdownAlert("L2", "full", 10*time.Minute))
	if err != nil || audits[0].Result != "applied" {
		t.Fatalf("stronger = %+v, %v", audits, err)
	}
	l, _ = f.store.Lockdown(ctx)
	if l.Mode != "full" || !l.Until.Equal(want.Expires) || !l.Since.Equal(t0.Truncate(time.Second)) || !strings.Contains(l.Reason, "L2") {
		t.Errorf("merged lockdown = %+v; want full until %s since %s", l, want.Expires, t0)
	}

	// A weaker one changes nothing.
	audits, _, err = r.Handle(ctx, lockdownAlert("L3", "read-only", 30*time.Minute))
	if err != nil || audits[0].Result != "unchanged" {
		t.Errorf("weaker = %+v, %v; want unchanged", audits, err)
	}
	// One without an end makes it last until released, and a default mode
	// is full.
	audits, _, err = r.Handle(ctx, lockdownAlert("L4", "", 0))
	if err != nil || audits[0].Result != "applied" || !audits[0].Expires.IsZero() {
		t.Errorf("endless = %+v, %v", audits, err)
	}
	for _, k := range []string{f.store.LockdownKey(), f.store.DjangoLockdownKey()} {
		if ttl := f.pttl(t, k); ttl != noTTL {
			t.Errorf("TTL of %s = %s, want none", k, ttl)
		}
	}

	if got := actionCount(t, reg, "lockdown", "applied"); got != 3 {
		t.Errorf("lockdown applied counter = %v, want 3", got)
	}
	if got := actionCount(t, reg, "lockdown", "unchanged"); got != 2 {
		t.Errorf("lockdown unchanged counter = %v, want 2", got)
	}

	// A bad mode is the rule's fault: not retried.
	_, retry, err = r.Handle(ctx, lockdownAlert("L5", "partial", time.Hour))
	if err == nil || retry {
		t.Errorf("bad mode = %v, %v; want a non-retryable error", retry, err)
	}
}
