package respond_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// allowLocal allow-lists loopback, 10.0.0.0/8 and fd00::/8.
func allowLocal(a netip.Addr) bool {
	return a.IsLoopback() || netip.MustParsePrefix("10.0.0.0/8").Contains(a) || netip.MustParsePrefix("fd00::/8").Contains(a)
}

func TestApplyManualActions(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{})
	ctx := testCtx(t)
	ev := f.subscribe(t)
	ids := map[string]bool{}

	apply := func(req respond.ManualAction, action, result string) event.Audit {
		t.Helper()
		au, err := r.Apply(ctx, req)
		if err != nil {
			t.Fatalf("Apply(%+v) = %v", req, err)
		}
		if au.Action != action || au.Result != result || au.Actor != "admin:ann" || au.AlertID != "" || !au.Time.Equal(t0) {
			t.Errorf("Apply(%+v) audit %+v; want action %s, result %s, actor admin:ann", req, au, action, result)
		}
		if !strings.HasPrefix(au.ID, "manual:") || ids[au.ID] {
			t.Errorf("audit ID %q: want a new manual:... ID", au.ID)
		}
		ids[au.ID] = true
		return au
	}

	// ban / unban
	au := apply(respond.ManualAction{Kind: "ban", Target: "2001:DB8::1", Duration: 2 * time.Hour, Reason: "by hand", Actor: "ann"}, "ban", "applied")
	if au.Target != "2001:db8::1" || time.Duration(au.Duration) != 2*time.Hour || !au.Expires.Equal(t0.Add(2*time.Hour).Truncate(time.Second)) || au.Offence != 1 {
		t.Errorf("ban audit = %+v", au)
	}
	rec, ok := f.record(t, "2001:db8::1")
	if !ok || rec.Actor != "admin:ann" || rec.Reason != "by hand" || rec.AlertID != "" {
		t.Errorf("ban record = %+v (present %v)", rec, ok)
	}
	if c := ev.next(); c.Type != "ban" {
		t.Errorf("event = %+v", c)
	}
	apply(respond.ManualAction{Kind: "unban", Target: "2001:db8::1", Actor: "admin:ann"}, "unban", "applied")
	if c := ev.next(); c.Type != "unban" {
		t.Errorf("event = %+v", c)
	}
	apply(respond.ManualAction{Kind: "unban", Target: "2001:db8::1", Actor: "ann"}, "unban", "unchanged")
	ev.none()

	// jti-deny
	au = apply(respond.ManualAction{Kind: "jti-deny", Target: "abc", Duration: time.Hour, Reason: "stolen", Actor: "ann"}, "jti_deny", "applied")
	if au.Target != "abc" || !au.Expires.Equal(t0.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("jti-deny audit = %+v", au)
	}
	if ttl := f.pttl(t, f.store.JTIKey("abc")); !within(ttl, time.Hour, time.Second) {
		t.Errorf("jti TTL = %s", ttl)
	}
	if m := ev.raw(); m["type"] != "jti-deny" || m["actor"] != "admin:ann" {
		t.Errorf("event = %v", m)
	}
	apply(respond.ManualAction{Kind: "jti-deny", Target: "abc", Duration: time.Hour, Actor: "ann"}, "jti_deny", "unchanged")

	// revoke-user, revoke-all: at the wall clock, for the token TTL.
	au = apply(respond.ManualAction{Kind: "revoke-user", Target: "42", Actor: "ann"}, "revoke_user", "applied")
	if au.Target != "42" || !au.Expires.Equal(t0.Add(7*24*time.Hour).Truncate(time.Second)) {
		t.Errorf("revoke-user audit = %+v", au)
	}
	if n := f.revocation(t, f.store.RevokeUserKey("42")); n != t0.Unix()+1 {
		t.Errorf("revoke:user:42 = %d, want the second after t0", n)
	}
	apply(respond.ManualAction{Kind: "revoke-user", Target: "42", Actor: "ann"}, "revoke_user", "unchanged")
	apply(respond.ManualAction{Kind: "revoke-all", Duration: time.Hour, Actor: "ann"}, "revoke_all", "applied")
	if n := f.revocation(t, f.store.RevokeAllKey()); n != t0.Unix()+1 {
		t.Errorf("revoke:all = %d, want the second after t0", n)
	}
	if ttl := f.pttl(t, f.store.RevokeAllKey()); !within(ttl, time.Hour, time.Second) {
		t.Errorf("revoke:all TTL = %s", ttl)
	}

	// lockdown-on / lockdown-off
	au = apply(respond.ManualAction{Kind: "lockdown-on", Mode: "read-only", Duration: 30 * time.Minute, Reason: "incident 12", Actor: "ann"}, "lockdown", "applied")
	if !au.Expires.Equal(t0.Add(30*time.Minute).Truncate(time.Second)) || au.Target != "" {
		t.Errorf("lockdown audit = %+v", au)
	}
	l, err := f.store.Lockdown(ctx)
	if err != nil || l == nil || l.Mode != "read-only" || l.Reason != "incident 12" || l.By != "admin:ann" {
		t.Errorf("Lockdown = %+v, %v", l, err)
	}
	if v, _ := f.get(t, f.store.DjangoLockdownKey()); v != "1" {
		t.Errorf("Django key = %q", v)
	}
	au = apply(respond.ManualAction{Kind: "lockdown-on", Actor: "ann"}, "lockdown", "applied")
	if l, _ := f.store.Lockdown(ctx); l.Mode != "full" || !l.Until.IsZero() || !au.Expires.IsZero() {
		t.Errorf("default manual lockdown = %+v, audit %+v; want full until released", l, au)
	}
	apply(respond.ManualAction{Kind: "lockdown-off", Actor: "ann"}, "lockdown_off", "applied")
	apply(respond.ManualAction{Kind: "lockdown_off", Actor: "ann"}, "lockdown_off", "unchanged")
	if _, ok := f.get(t, f.store.DjangoLockdownKey()); ok {
		t.Error("Django key still there after lockdown-off")
	}

	for _, k := range []string{"ban", "unban", "jti_deny", "revoke_user", "revoke_all", "lockdown", "lockdown_off"} {
		if n := actionCount(t, reg, k, "applied"); n < 1 {
			t.Errorf("actions_total{%s,applied} = %v", k, n)
		}
	}
}

func TestApplyRefusesBadRequests(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{MaxBan: 100 * time.Hour, Allow: allowLocal})
	for _, tc := range []struct {
		name  string
		req   respond.ManualAction
		field string
	}{
		{"unknown kind", respond.ManualAction{Kind: "explode"}, "kind"},
		{"no kind", respond.ManualAction{}, "kind"},
		{"ban: no target", respond.ManualAction{Kind: "ban"}, "target"},
		{"ban: bad target", respond.ManualAction{Kind: "ban", Target: "example.com"}, "target"},
		{"ban: negative", respond.ManualAction{Kind: "ban", Target: "192.0.2.1", Duration: -time.Hour}, "duration"},
		{"ban: too short", respond.ManualAction{Kind: "ban", Target: "192.0.2.1", Duration: time.Millisecond}, "duration"},
		{"ban: over the cap", respond.ManualAction{Kind: "ban", Target: "192.0.2.1", Duration: 101 * time.Hour}, "duration"},
		{"ban: allow-listed", respond.ManualAction{Kind: "ban", Target: "127.0.0.1"}, "target"},
		{"ban: allow-listed network", respond.ManualAction{Kind: "ban", Target: "fd00:1:2:3::/64"}, "target"},
		{"ban: network ending in an allow-listed one", respond.ManualAction{Kind: "ban", Target: "fc00::/7"}, "target"},
		{"ban: IPv4 network", respond.ManualAction{Kind: "ban", Target: "192.0.2.0/24"}, "target"},
		{"unban: bad target", respond.ManualAction{Kind: "unban", Target: "x"}, "target"},
		{"jti: empty", respond.ManualAction{Kind: "jti-deny"}, "target"},
		{"jti: space", respond.ManualAction{Kind: "jti-deny", Target: "a b"}, "target"},
		{"user: empty", respond.ManualAction{Kind: "revoke-user"}, "target"},
		{"lockdown: bad mode", respond.ManualAction{Kind: "lockdown-on", Mode: "partial"}, "mode"},
		{"lockdown: negative", respond.ManualAction{Kind: "lockdown-on", Duration: -1}, "duration"},
		{"reason: control", respond.ManualAction{Kind: "revoke-all", Reason: "a\x1bb"}, "reason"},
		{"reason: long", respond.ManualAction{Kind: "revoke-all", Reason: strings.Repeat("x", 1025)}, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Actor = "ann"
			au, err := r.Apply(testCtx(t), tc.req)
			var fe *respond.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || respond.Retryable(err) {
				t.Fatalf("Apply = %v; want a FieldError on %q", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("error %q does not start with the field", err)
			}
			if au.Result != "refused" || au.Error != err.Error() || au.Actor != "admin:ann" || !strings.HasPrefix(au.ID, "manual:") {
				t.Errorf("audit = %+v", au)
			}
		})
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys written: %v", k)
	}
	if n := actionCount(t, reg, "ban", "refused"); n != 9 {
		t.Errorf("actions_total{ban,refused} = %v, want 9", n)
	}
}

func TestApplyForcedBanOfAllowlisted(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{Allow: allowLocal})
	au, err := r.Apply(testCtx(t), respond.ManualAction{Kind: "ban", Target: "10.1.2.3", Reason: "compromised host", Actor: "ann", Force: true})
	if err != nil || au.Result != "applied" || !strings.Contains(au.Reason, "allow-list") {
		t.Fatalf("forced ban = %+v, %v", au, err)
	}
	if _, ok := f.record(t, "10.1.2.3"); !ok {
		t.Error("no ban")
	}
}

func TestHandleSkipsAllowlistedAddresses(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{Allow: allowLocal, IPv6PrefixLen: 64})
	// The detector did not flag it, but the responder's allow-list knows.
	audits, _, err := r.Handle(testCtx(t), banAlert("a", "10.9.9.9", time.Hour))
	if err != nil || audits[0].Result != "skipped-allowlisted" {
		t.Errorf("Handle = %+v, %v", audits, err)
	}
	// Loopback widened to a /64 is still loopback.
	audits, _, err = r.Handle(testCtx(t), banAlert("b", "::1", time.Hour))
	if err != nil || audits[0].Result != "skipped-allowlisted" {
		t.Errorf("Handle(::1) = %+v, %v", audits, err)
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys written: %v", k)
	}
}

func revokeAlert(id, user string) *event.Alert {
	return &event.Alert{
		ID: id, Rule: "token-abuse", Description: "Refresh token reuse", Severity: "high",
		KeyField: "user.id", Key: user, At: t0.Add(-30 * time.Second), Count: 1,
		Actions: []event.ActionSpec{{Kind: event.ActionRevokeUser}},
	}
}

func TestHandleRevokeUser(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{TokenTTL: 24 * time.Hour})
	ctx := testCtx(t)
	ev := f.subscribe(t)
	a := revokeAlert("R1", "42")

	audits, retry, err := r.Handle(ctx, a)
	if err != nil || retry {
		t.Fatalf("Handle = %v, %v", retry, err)
	}
	want := event.Audit{
		ID: "R1:revoke_user", Time: t0, Action: "revoke_user", Target: "42", Actor: "rule:token-abuse",
		Reason: "Refresh token reuse", AlertID: "R1", Result: "applied", Expires: t0.Add(24 * time.Hour).Truncate(time.Second),
	}
	if len(audits) != 1 || audits[0] != want {
		t.Errorf("audits\n got %+v\nwant %+v", audits, want)
	}
	// The alert's time, not the wall clock, so that a retry is a repeat;
	// the second after it, so a token issued within it is refused.
	if n := f.revocation(t, f.store.RevokeUserKey("42")); n != a.At.Unix()+1 {
		t.Errorf("value = %d, want the second after the alert time %d", n, a.At.Unix())
	}
	if ttl := f.pttl(t, f.store.RevokeUserKey("42")); !within(ttl, 24*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 24h", ttl)
	}
	if m := ev.raw(); m["type"] != "revoke-user" || m["user"] != "42" || m["actor"] != "rule:token-abuse" {
		t.Errorf("event = %v", m)
	}
	// Stored by the bus later than the event (the detector was behind):
	// tokens got between the two are revoked too.
	late := revokeAlert("R9", "43")
	late.Stored = late.At.Add(20 * time.Second)
	if _, _, err := r.Handle(ctx, late); err != nil {
		t.Fatal(err)
	}
	if n := f.revocation(t, f.store.RevokeUserKey("43")); n != late.Stored.Unix()+1 {
		t.Errorf("value = %d, want the second after the alert was stored (%d)", n, late.Stored.Unix())
	}
	ev.raw() // its change event
	// Stored by a bus whose clock runs an hour ahead: no later than now.
	ahead := revokeAlert("R10", "44")
	ahead.Stored = t0.Add(time.Hour)
	if _, _, err := r.Handle(ctx, ahead); err != nil {
		t.Fatal(err)
	}
	if n := f.revocation(t, f.store.RevokeUserKey("44")); n != t0.Unix()+1 {
		t.Errorf("value = %d, want the second after now (%d), not after the bus's clock", n, t0.Unix())
	}
	ev.raw()
	f.clock.Add(time.Minute)
	audits, _, err = r.Handle(ctx, a)
	if err != nil || audits[0].Result != "unchanged" {
		t.Errorf("repeat = %+v, %v", audits, err)
	}
	ev.none()
	if n := actionCount(t, reg, "revoke_user", "unchanged"); n != 1 {
		t.Errorf("revoke_user unchanged counter = %v", n)
	}

	// Grouping by user name is a rule mistake: not retried.
	bad := revokeAlert("R2", "alice")
	bad.KeyField = "user.name"
	audits, retry, err = r.Handle(ctx, bad)
	if err == nil || retry || audits[0].Result != "failed" {
		t.Errorf("revoke by user.name = %+v, %v, %v; want a non-retryable failure", audits, retry, err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{DryRun: true, Allow: allowLocal})
	ctx := testCtx(t)
	ev := f.subscribe(t)
	alerts := []*event.Alert{banAlert("a", "192.0.2.1", time.Hour), revokeAlert("b", "42"), lockdownAlert("c", "full", time.Hour)}
	for _, a := range alerts {
		audits, _, err := r.Handle(ctx, a)
		if err != nil || len(audits) != 1 || audits[0].Result != "dry-run" {
			t.Errorf("Handle(%s) = %+v, %v; want dry-run", a.Actions[0].Kind, audits, err)
		}
	}
	for _, req := range []respond.ManualAction{
		{Kind: "ban", Target: "192.0.2.2"}, {Kind: "unban", Target: "192.0.2.2"},
		{Kind: "jti-deny", Target: "abc"}, {Kind: "revoke-user", Target: "42"}, {Kind: "revoke-all"},
		{Kind: "lockdown-on", Mode: "read-only"}, {Kind: "lockdown-off"},
	} {
		au, err := r.Apply(ctx, req)
		if err != nil || au.Result != "dry-run" {
			t.Errorf("Apply(%s) = %+v, %v; want dry-run", req.Kind, au, err)
		}
	}
	// Validation still applies.
	if _, err := r.Apply(ctx, respond.ManualAction{Kind: "ban", Target: "127.0.0.1"}); err == nil {
		t.Error("dry-run ban of an allow-listed address was not refused")
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys written: %v", k)
	}
	ev.none()
	if n := actionCount(t, reg, "lockdown", "dry-run"); n != 2 {
		t.Errorf("lockdown dry-run counter = %v, want 2", n)
	}
}

func TestActionsUnderRedisOutageAreRetryable(t *testing.T) {
	f := newFixture(t)
	// A client that gives up at once, to keep the test short.
	opt, err := redis.ParseURL(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries, opt.DialerRetries = -1, 1
	quick := redis.NewClient(opt)
	t.Cleanup(func() { _ = quick.Close() })
	f.store = respond.NewStore(quick, f.srv.Prefix, f.clock.Now).WithOptions(f.store.Options())
	r, _ := f.responder(t, respond.Config{})
	ctx := testCtx(t)
	f.srv.Stop()

	for _, a := range []*event.Alert{revokeAlert("b", "42"), lockdownAlert("c", "full", time.Hour)} {
		audits, retry, err := r.Handle(ctx, a)
		if err == nil || !retry || len(audits) != 0 {
			t.Errorf("Handle(%s) with Redis down = %+v, %v, %v; want retry and no audit", a.Actions[0].Kind, audits, retry, err)
		}
	}
	for _, req := range []respond.ManualAction{
		{Kind: "ban", Target: "192.0.2.2"}, {Kind: "unban", Target: "192.0.2.2"},
		{Kind: "jti-deny", Target: "abc"}, {Kind: "revoke-user", Target: "42"}, {Kind: "revoke-all"},
		{Kind: "lockdown-on"}, {Kind: "lockdown-off"},
	} {
		au, err := r.Apply(ctx, req)
		if !respond.Retryable(err) || au.Result != "failed" || au.Error == "" {
			t.Errorf("Apply(%s) with Redis down = %+v, %v; want a retryable failure", req.Kind, au, err)
		}
	}
	if _, err := f.store.Lockdown(ctx); !respond.Retryable(err) {
		t.Errorf("Lockdown = %v", err)
	}
	if _, err := f.store.Offences(ctx, "192.0.2.1"); !respond.Retryable(err) {
		t.Errorf("Offences = %v", err)
	}

	// Back up (with an empty script cache): the actions go through, once
	// the client's pool, which backs off after failed dials, reconnects.
	f.srv.Restart(t)
	for _, a := range []*event.Alert{revokeAlert("b", "42"), lockdownAlert("c", "full", time.Hour)} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			audits, retry, err := r.Handle(ctx, a)
			if retry && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil || audits[0].Result != "applied" {
				t.Errorf("Handle(%s) after restart = %+v, %v", a.Actions[0].Kind, audits, err)
			}
			break
		}
	}
}

func TestMetricsSeriesExistUpFront(t *testing.T) {
	f := newFixture(t)
	_, reg := f.responder(t, respond.Config{})
	for _, k := range []string{"ban", "unban", "jti_deny", "revoke_user", "revoke_all", "lockdown", "lockdown_off"} {
		for _, res := range []string{"applied", "unchanged", "skipped-allowlisted", "dry-run", "failed", "breaker-open", "refused"} {
			if v := actionCount(t, reg, k, res); v != 0 {
				t.Errorf("%s %s = %v", k, res, v)
			}
		}
	}
	if v, ok := metric(t, reg, "vigil_respond_breaker_trips_total", map[string]string{"scope": "overall"}); !ok || v != 0 {
		t.Errorf("breaker trips overall = %v (present %v)", v, ok)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (respond.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	err := respond.Config{
		Ladder:   []time.Duration{time.Hour, 0},
		TokenTTL: time.Millisecond,
		Breaker:  respond.BreakerConfig{PerRule: -1, Overall: -2, Window: time.Millisecond},
	}.Validate()
	for _, want := range []string{"ladder[1]", "token_ttl", "breaker.per_rule", "breaker.overall", "breaker.window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to name %s", err, want)
		}
	}
}
