package respond_test

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/respond"
)

func single(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := respond.ParseTarget(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBanWritesKeyIndexAndEvent(t *testing.T) {
	f := newFixture(t)
	ev := f.subscribe(t)
	const d = 72 * time.Hour

	rec, applied, err := f.store.Ban(testCtx(t), respond.Ban{
		IP: single(t, "203.0.113.7"), Rule: "scan-404", Reason: "scanning",
		AlertID: "a1", Duration: d, Actor: "rule:scan-404",
	})
	if err != nil || !applied {
		t.Fatalf("Ban = applied %v, err %v; want applied", applied, err)
	}
	wantExp := t0.Add(d).Truncate(time.Second)
	want := respond.BanRecord{
		IP: "203.0.113.7", Rule: "scan-404", Reason: "scanning", AlertID: "a1",
		Actor: "rule:scan-404", Created: t0, Expires: wantExp, Offence: 1,
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("returned record\n got %+v\nwant %+v", rec, want)
	}
	if got, ok := f.record(t, "203.0.113.7"); !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("stored record (present %v)\n got %+v\nwant %+v", ok, got, want)
	}
	if ttl := f.ttl(t, "203.0.113.7"); !within(ttl, d, time.Second) {
		t.Errorf("TTL = %s, want %s within 1s", ttl, d)
	}
	if s, ok := f.score(t, "203.0.113.7"); !ok || s != wantExp.Unix() {
		t.Errorf("index score = %d (present %v), want %d", s, ok, wantExp.Unix())
	}
	if c := ev.next(); c != (change{Type: "ban", IP: "203.0.113.7", Expires: wantExp.Unix(), Rule: "scan-404"}) {
		t.Errorf("event = %+v", c)
	}
}

func TestBanSameAlertIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	b := respond.Ban{IP: single(t, "198.51.100.1"), Rule: "r", AlertID: "a1", Duration: time.Hour, Actor: "rule:r"}
	first, _, err := f.store.Ban(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	ev := f.subscribe(t)

	// The same alert, retried later and (say, after a config change) with a
	// longer duration, must not extend the ban.
	f.clock.Add(10 * time.Minute)
	b.Duration = 10 * time.Hour
	again, applied, err := f.store.Ban(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if applied {
		t.Error("second Ban of the same alert: applied = true, want false")
	}
	if !reflect.DeepEqual(again, first) {
		t.Errorf("second Ban returned\n %+v\nwant the stored\n %+v", again, first)
	}
	if ttl := f.ttl(t, "198.51.100.1"); ttl > time.Hour {
		t.Errorf("TTL = %s after the repeat, want at most 1h (not extended)", ttl)
	}
	if s, _ := f.score(t, "198.51.100.1"); s != first.Expires.Unix() {
		t.Errorf("index score = %d, want %d", s, first.Expires.Unix())
	}
	ev.none()
}

// TestBanWhileBanned: a ban of an address banned already is not another
// offence. Shorter than the stored one, it changes nothing (the record,
// its rule and TTL stay, nothing is published); longer, it extends the ban
// and its record becomes the stored one, still the same offence.
func TestBanWhileBanned(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	const ip = "192.0.2.9"
	first, _, err := f.store.Ban(ctx, respond.Ban{IP: single(t, ip), Rule: "slow", AlertID: "a1", Duration: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	f.clock.Add(time.Hour)
	ev := f.subscribe(t)
	rec, applied, err := f.store.Ban(ctx, respond.Ban{IP: single(t, ip), Rule: "fast", Reason: "again", AlertID: "a2", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if applied || !reflect.DeepEqual(rec, first) {
		t.Errorf("a shorter ban while banned = %+v, applied %v; want the stored %+v unchanged", rec, applied, first)
	}
	if got, _ := f.record(t, ip); !reflect.DeepEqual(got, first) {
		t.Errorf("stored %+v, want %+v", got, first)
	}
	if ttl := f.ttl(t, ip); !within(ttl, 72*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want the 72h set first (Redis' clock; the key untouched)", ttl)
	}
	if s, _ := f.score(t, ip); s != first.Expires.Unix() {
		t.Errorf("index score = %d, want %d", s, first.Expires.Unix())
	}
	ev.none()

	// A longer one extends it, the same offence, still the ban of the
	// rule that caught the address first.
	rec, applied, err = f.store.Ban(ctx, respond.Ban{IP: single(t, ip), Rule: "fast", AlertID: "a3", Duration: 100 * time.Hour})
	if err != nil || !applied {
		t.Fatalf("Ban = applied %v, err %v", applied, err)
	}
	want := first
	want.Expires = t0.Add(101 * time.Hour).Truncate(time.Second)
	want.ExtendedBy = "a3"
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("extended = %+v, want %+v", rec, want)
	}
	// The extending alert retried (a crash, a timeout) changes nothing.
	f.clock.Add(time.Minute)
	if again, applied, err := f.store.Ban(ctx, respond.Ban{IP: single(t, ip), Rule: "fast", AlertID: "a3", Duration: 100 * time.Hour}); err != nil || applied || !reflect.DeepEqual(again, want) {
		t.Errorf("the extending alert again = %+v, applied %v, %v; want %+v unchanged", again, applied, err, want)
	}
	if ttl := f.ttl(t, ip); !within(ttl, 100*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 100h", ttl)
	}
	if c := ev.next(); c.Type != "ban" || c.Expires != rec.Expires.Unix() || c.Rule != "slow" {
		t.Errorf("event = %+v", c)
	}
	ev.none() // the retry published nothing
	// An operator's longer ban replaces the record.
	rec, applied, err = f.store.Ban(ctx, respond.Ban{IP: single(t, ip), Reason: "by hand", Actor: "admin:ann", Duration: 200 * time.Hour})
	if err != nil || !applied || rec.Actor != "admin:ann" || rec.Rule != "" || rec.Offence != 1 {
		t.Errorf("manual ban while banned = %+v, applied %v, %v; want the operator's record, offence 1", rec, applied, err)
	}
	if n, _ := f.store.Offences(ctx, ip); n != 1 {
		t.Errorf("Offences = %d, want 1: one incident", n)
	}
}

func TestBanManualBansAreNotRepeats(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	b := respond.Ban{IP: single(t, "192.0.2.1"), Reason: "by hand", Duration: time.Hour, Actor: "admin:ann"}
	if _, applied, err := f.store.Ban(ctx, b); err != nil || !applied {
		t.Fatalf("first manual Ban = %v, %v", applied, err)
	}
	b.Duration = 2 * time.Hour
	rec, applied, err := f.store.Ban(ctx, b)
	if err != nil || !applied {
		t.Fatalf("second manual Ban = %v, %v; want applied", applied, err)
	}
	if want := t0.Add(2 * time.Hour).Truncate(time.Second); !rec.Expires.Equal(want) {
		t.Errorf("Expires = %s, want %s", rec.Expires, want)
	}
}

func TestUnban(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	if _, _, err := f.store.Ban(ctx, respond.Ban{IP: single(t, "203.0.113.7"), Rule: "r", AlertID: "a", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ev := f.subscribe(t)

	removed, err := f.store.Unban(ctx, "203.0.113.7")
	if err != nil || !removed {
		t.Fatalf("Unban = %v, %v; want removed", removed, err)
	}
	if _, ok := f.record(t, "203.0.113.7"); ok {
		t.Error("the key is still there")
	}
	if _, ok := f.score(t, "203.0.113.7"); ok {
		t.Error("the index entry is still there")
	}
	if c := ev.next(); c != (change{Type: "unban", IP: "203.0.113.7", Expires: t0.Unix(), Rule: "r"}) {
		t.Errorf("event = %+v", c)
	}

	removed, err = f.store.Unban(ctx, "203.0.113.7")
	if err != nil || removed {
		t.Fatalf("second Unban = %v, %v; want not removed", removed, err)
	}
	ev.none()

	if _, err := f.store.Unban(ctx, "not-an-ip"); err == nil || respond.Retryable(err) {
		t.Errorf("Unban(not-an-ip) = %v; want a non-retryable error", err)
	}
}

func TestBansListsSoonestFirstAndPrunes(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	for _, b := range []struct {
		ip string
		d  time.Duration
	}{{"192.0.2.3", 3 * time.Hour}, {"192.0.2.1", time.Hour}, {"2001:db8::2", 2 * time.Hour}} {
		if _, _, err := f.store.Ban(ctx, respond.Ban{IP: single(t, b.ip), AlertID: b.ip, Duration: b.d}); err != nil {
			t.Fatal(err)
		}
	}
	ips := func() []string {
		t.Helper()
		bans, err := f.store.Bans(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bans {
			out = append(out, b.IP)
		}
		return out
	}
	count := func() int64 {
		t.Helper()
		n, err := f.store.ActiveBans(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got, want := ips(), []string{"192.0.2.1", "2001:db8::2", "192.0.2.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bans = %v, want %v", got, want)
	}
	if n := count(); n != 3 {
		t.Errorf("ActiveBans = %d, want 3", n)
	}

	// The first ban expires exactly at t0+1h (whole seconds): gone then.
	f.clock.Add(time.Hour - 250*time.Millisecond)
	if n := count(); n != 2 {
		t.Errorf("ActiveBans at expiry = %d, want 2", n)
	}
	if got, want := ips(), []string{"2001:db8::2", "192.0.2.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bans = %v, want %v", got, want)
	}
	if n, err := f.rdb.ZCard(ctx, f.store.IndexKey()).Result(); err != nil || n != 2 {
		t.Errorf("ZCARD index = %d, %v; want 2 (expired entry pruned)", n, err)
	}

	// An index entry whose key was deleted by hand is left out.
	if err := f.rdb.Del(ctx, f.store.Key("192.0.2.3")).Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := ips(), []string{"2001:db8::2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bans = %v, want %v", got, want)
	}

	f.clock.Add(10 * time.Hour)
	if got := ips(); len(got) != 0 {
		t.Errorf("Bans after all expired = %v, want none", got)
	}
}

func TestBanIPv6AndNetworks(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	ev := f.subscribe(t)
	for _, tc := range []struct {
		target, key string
	}{
		{"2001:DB8:0:0::1", "2001:db8::1"},
		{"::ffff:192.0.2.4", "192.0.2.4"},
		{"2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::/64"},
		{"192.0.2.0/24", "192.0.2.0/24"},
	} {
		rec, applied, err := f.store.Ban(ctx, respond.Ban{IP: single(t, tc.target), AlertID: "a", Duration: time.Hour})
		if err != nil || !applied {
			t.Fatalf("Ban(%s) = %v, %v", tc.target, applied, err)
		}
		if rec.IP != tc.key {
			t.Errorf("Ban(%s): record ip %q, want %q", tc.target, rec.IP, tc.key)
		}
		if _, ok := f.record(t, tc.key); !ok {
			t.Errorf("Ban(%s): no key %s", tc.target, f.store.Key(tc.key))
		}
		if _, ok := f.score(t, tc.key); !ok {
			t.Errorf("Ban(%s): no index entry %s", tc.target, tc.key)
		}
		if c := ev.next(); c.IP != tc.key {
			t.Errorf("Ban(%s): event ip %q, want %q", tc.target, c.IP, tc.key)
		}
	}
	// Unban takes any spelling of the same network.
	if removed, err := f.store.Unban(ctx, "2001:db8:1:2::99/64"); err != nil || !removed {
		t.Errorf("Unban of the /64 = %v, %v", removed, err)
	}
	if _, ok := f.record(t, "2001:db8:1:2::/64"); ok {
		t.Error("the /64 is still banned")
	}
}

func TestBanRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	for name, b := range map[string]respond.Ban{
		"no ip":          {Duration: time.Hour},
		"short duration": {IP: single(t, "192.0.2.1"), Duration: 500 * time.Millisecond},
		"mapped network": {IP: netip.MustParsePrefix("::ffff:0:0/64"), Duration: time.Hour},
	} {
		if _, _, err := f.store.Ban(ctx, b); err == nil || respond.Retryable(err) {
			t.Errorf("%s: Ban = %v; want a non-retryable error", name, err)
		}
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys written: %v", k)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means an error
	}{
		{"203.0.113.7", "203.0.113.7/32"},
		{"::ffff:203.0.113.7", "203.0.113.7/32"},
		{"2001:DB8::1", "2001:db8::1/128"},
		{"fe80::1%eth0", "fe80::1/128"},
		{"2001:db8::1/64", "2001:db8::/64"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"::ffff:0:0/64", ""},
		{"203.0.113.7/33", ""},
		{"example.com", ""},
		{"", ""},
	} {
		p, err := respond.ParseTarget(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseTarget(%q) = %s, want an error", tc.in, p)
		case tc.want != "" && (err != nil || p.String() != tc.want):
			t.Errorf("ParseTarget(%q) = %s, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "::ffff:1.2.3.4", "2001:db8::1/64", "fe80::1%eth0", "::ffff:0:0/96", "1.2.3.4/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := respond.ParseTarget(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParseTarget(%q) = %s: not canonical", s, p)
		}
		// The canonical form parses to itself.
		q, err := respond.ParseTarget(p.String())
		if err != nil || q != p {
			t.Fatalf("ParseTarget(%q) = %s, but ParseTarget(%s) = %s, %v", s, p, p, q, err)
		}
	})
}
