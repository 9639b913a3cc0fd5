package respond_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/respond"
)

func TestDenyJTI(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	ev := f.subscribe(t)
	const jti = "5d41402abc4b2a76b9719d911017c592"

	applied, err := f.store.DenyJTI(ctx, jti, 2*time.Hour, "stolen laptop", "admin:ann")
	if err != nil || !applied {
		t.Fatalf("DenyJTI = %v, %v; want applied", applied, err)
	}
	key := f.store.JTIKey(jti)
	if want := f.srv.Prefix + "jti:deny:" + jti; key != want {
		t.Errorf("JTIKey = %q, want %q", key, want)
	}
	v, ok := f.get(t, key)
	if !ok {
		t.Fatalf("no key %s", key)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(v), &got); err != nil {
		t.Fatalf("value %s: %v", v, err)
	}
	want := map[string]any{"reason": "stolen laptop", "actor": "admin:ann", "created": t0.Format(time.RFC3339Nano)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("value = %v, want %v", got, want)
	}
	if ttl := f.pttl(t, key); !within(ttl, 2*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 2h", ttl)
	}
	if m := ev.raw(); !reflect.DeepEqual(m, map[string]any{
		"type": "jti-deny", "jti": jti, "expires": float64(t0.Add(2 * time.Hour).Unix()), "actor": "admin:ann",
	}) {
		t.Errorf("event = %v", m)
	}
	if d, err := f.store.JTIDenied(ctx, jti); err != nil || d == nil || d.Reason != "stolen laptop" {
		t.Errorf("JTIDenied = %+v, %v", d, err)
	}

	// A repeat, or a shorter denial, changes nothing.
	for _, ttl := range []time.Duration{2 * time.Hour, time.Hour} {
		applied, err = f.store.DenyJTI(ctx, jti, ttl, "again", "admin:bob")
		if err != nil || applied {
			t.Errorf("DenyJTI(%s) again = %v, %v; want not applied", ttl, applied, err)
		}
	}
	ev.none()
	// A longer one extends it.
	applied, err = f.store.DenyJTI(ctx, jti, 3*time.Hour, "longer", "admin:bob")
	if err != nil || !applied {
		t.Errorf("longer DenyJTI = %v, %v; want applied", applied, err)
	}
	if ttl := f.pttl(t, key); !within(ttl, 3*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 3h", ttl)
	}
	if m := ev.raw(); m["type"] != "jti-deny" {
		t.Errorf("event = %v", m)
	}

	// The default TTL is 7 days.
	if _, err := f.store.DenyJTI(ctx, "other", 0, "", "admin:ann"); err != nil {
		t.Fatal(err)
	}
	if ttl := f.pttl(t, f.store.JTIKey("other")); !within(ttl, 7*24*time.Hour, time.Second) {
		t.Errorf("default TTL = %s, want 168h", ttl)
	}
}

func TestDenyJTIRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	for name, tc := range map[string]struct {
		jti string
		ttl time.Duration
	}{
		"empty":     {"", time.Hour},
		"space":     {"a b", time.Hour},
		"newline":   {"a\nb", time.Hour},
		"control":   {"a\x00b", time.Hour},
		"too long":  {strings.Repeat("x", 257), time.Hour},
		"bad utf-8": {"a\xffb", time.Hour},
		"short ttl": {"abc", 10 * time.Millisecond},
		"257 runes": {strings.Repeat("é", 257), time.Hour},
	} {
		if _, err := f.store.DenyJTI(ctx, tc.jti, tc.ttl, "", ""); err == nil || respond.Retryable(err) {
			t.Errorf("%s: DenyJTI = %v; want a non-retryable error", name, err)
		}
		if _, err := f.store.RevokeUser(ctx, tc.jti, t0, tc.ttl, "", ""); err == nil || respond.Retryable(err) {
			t.Errorf("%s: RevokeUser = %v; want a non-retryable error", name, err)
		}
	}
	if _, err := f.store.DenyJTI(ctx, strings.Repeat("é", 256), time.Hour, "", ""); err != nil {
		t.Errorf("DenyJTI of 256 characters = %v", err)
	}
	if k := f.keys(t); len(k) != 1 {
		t.Errorf("keys = %v; want only the 256-character jti", k)
	}
}

// revocation reads a revocation key and checks that it is integer text.
func (f *fixture) revocation(t *testing.T, key string) int64 {
	t.Helper()
	v, ok := f.get(t, key)
	if !ok {
		t.Fatalf("no key %s", key)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: not integer text: %v", key, v, err)
	}
	return n
}

func TestRevokeUserNeverLowers(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	ev := f.subscribe(t)
	key := f.store.RevokeUserKey("42")
	if want := f.srv.Prefix + "revoke:user:42"; key != want {
		t.Errorf("RevokeUserKey = %q, want %q", key, want)
	}

	applied, err := f.store.RevokeUser(ctx, "42", t0, 24*time.Hour, "password leaked", "admin:ann")
	if err != nil || !applied {
		t.Fatalf("RevokeUser = %v, %v; want applied", applied, err)
	}
	if n := f.revocation(t, key); n != t0.Unix()+1 {
		t.Errorf("value = %d, want %d (the second after t0)", n, t0.Unix()+1)
	}
	if ttl := f.pttl(t, key); !within(ttl, 24*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 24h", ttl)
	}
	if m := ev.raw(); !reflect.DeepEqual(m, map[string]any{
		"type": "revoke-user", "user": "42", "at": float64(t0.Unix() + 1), "actor": "admin:ann", "reason": "password leaked",
	}) {
		t.Errorf("event = %v", m)
	}
	if at, ok, err := f.store.Revoked(ctx, key); err != nil || !ok || !at.Equal(t0.Truncate(time.Second).Add(time.Second)) {
		t.Errorf("Revoked = %s, %v, %v", at, ok, err)
	}

	// The same time (a retry) or an earlier one changes nothing...
	for _, at := range []time.Time{t0, t0.Add(-time.Hour)} {
		applied, err = f.store.RevokeUser(ctx, "42", at, time.Hour, "", "rule:r")
		if err != nil || applied {
			t.Errorf("RevokeUser(%s) = %v, %v; want not applied", at, applied, err)
		}
	}
	if n := f.revocation(t, key); n != t0.Unix()+1 {
		t.Errorf("value after earlier revocations = %d, want %d", n, t0.Unix()+1)
	}
	ev.none()
	// ...but a longer TTL is kept, so the revocation still covers what it
	// must.
	if _, err := f.store.RevokeUser(ctx, "42", t0.Add(-time.Hour), 48*time.Hour, "", ""); err != nil {
		t.Fatal(err)
	}
	if ttl := f.pttl(t, key); !within(ttl, 48*time.Hour, time.Second) {
		t.Errorf("TTL = %s after an earlier revocation with a longer TTL, want 48h", ttl)
	}
	ev.none()

	// A later time raises it and keeps the longer TTL.
	later := t0.Add(time.Hour)
	applied, err = f.store.RevokeUser(ctx, "42", later, time.Hour, "", "")
	if err != nil || !applied {
		t.Fatalf("later RevokeUser = %v, %v; want applied", applied, err)
	}
	if n := f.revocation(t, key); n != later.Unix()+1 {
		t.Errorf("value = %d, want %d", n, later.Unix()+1)
	}
	if ttl := f.pttl(t, key); !within(ttl, 48*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 48h kept", ttl)
	}
	if m := ev.raw(); m["type"] != "revoke-user" || m["at"] != float64(later.Unix()+1) {
		t.Errorf("event = %v", m)
	}

	// A value that is not a number is replaced; the default TTL is 7 days.
	if err := f.rdb.Set(ctx, f.store.RevokeUserKey("7"), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if applied, err := f.store.RevokeUser(ctx, "7", t0, 0, "", ""); err != nil || !applied {
		t.Fatalf("RevokeUser over garbage = %v, %v", applied, err)
	}
	if n := f.revocation(t, f.store.RevokeUserKey("7")); n != t0.Unix()+1 {
		t.Errorf("value = %d", n)
	}
}

func TestRevokeAll(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	ev := f.subscribe(t)
	key := f.store.RevokeAllKey()
	if key != f.srv.Prefix+"revoke:all" {
		t.Errorf("RevokeAllKey = %q", key)
	}
	applied, err := f.store.RevokeAll(ctx, t0, 0, "breach", "admin:ann")
	if err != nil || !applied {
		t.Fatalf("RevokeAll = %v, %v", applied, err)
	}
	if n := f.revocation(t, key); n != t0.Unix()+1 {
		t.Errorf("value = %d, want %d (the second after t0)", n, t0.Unix()+1)
	}
	if ttl := f.pttl(t, key); !within(ttl, 7*24*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 168h", ttl)
	}
	if m := ev.raw(); !reflect.DeepEqual(m, map[string]any{
		"type": "revoke-all", "at": float64(t0.Unix() + 1), "actor": "admin:ann", "reason": "breach",
	}) {
		t.Errorf("event = %v", m)
	}
	if applied, err := f.store.RevokeAll(ctx, t0.Add(-time.Minute), 0, "", ""); err != nil || applied {
		t.Errorf("earlier RevokeAll = %v, %v; want not applied", applied, err)
	}
	if n := f.revocation(t, key); n != t0.Unix()+1 {
		t.Errorf("value = %d after an earlier revocation, want %d", n, t0.Unix()+1)
	}
	ev.none()
}
