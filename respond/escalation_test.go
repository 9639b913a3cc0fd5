package respond_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/respond"
)

func TestHandleEscalatesRepeatOffences(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name  string
		cfg   respond.Config
		key   string // the alerts' key
		other string // the second alert's key: same target after widening
		ip    string // what is banned
		asked time.Duration
		want  []time.Duration // per offence
	}{
		{
			name: "ladder", cfg: respond.Config{Ladder: []time.Duration{72 * time.Hour, 30 * day}},
			key: "192.0.2.1", other: "192.0.2.1", ip: "192.0.2.1", asked: time.Hour,
			want: []time.Duration{72 * time.Hour, 30 * day, 30 * day},
		},
		{
			name: "rule asks more than the rung", cfg: respond.Config{Ladder: []time.Duration{time.Hour, 2 * time.Hour}},
			key: "192.0.2.1", other: "192.0.2.1", ip: "192.0.2.1", asked: 5 * time.Hour,
			want: []time.Duration{5 * time.Hour, 5 * time.Hour},
		},
		{
			name: "capped", cfg: respond.Config{Ladder: []time.Duration{72 * time.Hour, 30 * day}, MaxBan: 100 * time.Hour},
			key: "192.0.2.1", other: "192.0.2.1", ip: "192.0.2.1", asked: 0,
			want: []time.Duration{72 * time.Hour, 100 * time.Hour},
		},
		{
			name: "no ladder", cfg: respond.Config{},
			key: "192.0.2.1", other: "192.0.2.1", ip: "192.0.2.1", asked: time.Hour,
			want: []time.Duration{time.Hour, time.Hour},
		},
		{
			name: "ipv6 widened", cfg: respond.Config{Ladder: []time.Duration{72 * time.Hour, 30 * day}, IPv6PrefixLen: 64},
			key: "2001:db8:1:2::7", other: "2001:db8:1:2::8", ip: "2001:db8:1:2::/64", asked: time.Hour,
			want: []time.Duration{72 * time.Hour, 30 * day, 30 * day},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r, _ := f.responder(t, tc.cfg)
			ctx := testCtx(t)
			for i, want := range tc.want {
				key := tc.key
				if i > 0 {
					key = tc.other
				}
				// Each offence comes after the previous ban was lifted, so
				// the TTL shows the new ban's length.
				if _, err := f.store.Unban(ctx, tc.ip); err != nil {
					t.Fatal(err)
				}
				id := fmt.Sprintf("alert-%d", i+1)
				audits, _, err := r.Handle(ctx, banAlert(id, key, tc.asked))
				if err != nil {
					t.Fatal(err)
				}
				au := audits[0]
				if au.Result != "applied" || au.Offence != i+1 || time.Duration(au.Duration) != want || au.Target != tc.ip {
					t.Errorf("offence %d: audit %+v; want applied, offence %d, duration %s, target %s", i+1, au, i+1, want, tc.ip)
				}
				if !au.Expires.Equal(f.clock.Now().Add(want).Truncate(time.Second)) {
					t.Errorf("offence %d: expires %s, want %s", i+1, au.Expires, f.clock.Now().Add(want))
				}
				if ttl := f.ttl(t, tc.ip); !within(ttl, want, time.Second) {
					t.Errorf("offence %d: TTL %s, want %s", i+1, ttl, want)
				}
				rec, _ := f.record(t, tc.ip)
				if rec.Offence != i+1 {
					t.Errorf("offence %d: record offence %d", i+1, rec.Offence)
				}
				n, err := f.store.Offences(ctx, tc.ip)
				if err != nil || n != int64(i+1) {
					t.Errorf("offence %d: Offences = %d, %v", i+1, n, err)
				}

				// A repeat of the alert is unchanged, still the same
				// offence, and counts nothing.
				audits, _, err = r.Handle(ctx, banAlert(id, key, tc.asked))
				if err != nil || audits[0].Result != "unchanged" || audits[0].Offence != i+1 || time.Duration(audits[0].Duration) != want {
					t.Errorf("offence %d repeated: %+v, %v", i+1, audits, err)
				}
				if n, _ := f.store.Offences(ctx, tc.ip); n != int64(i+1) {
					t.Errorf("offence %d repeated: Offences = %d", i+1, n)
				}
				f.clock.Add(time.Hour)
			}
			// The history lives for 90 days by default.
			if ttl := f.pttl(t, f.store.HistoryKey(tc.ip)); !within(ttl, 90*24*time.Hour, time.Second) {
				t.Errorf("history TTL = %s, want 2160h", ttl)
			}
		})
	}
}

// TestOffencesManualBansAndWhileBanned: a manual ban counts as an
// offence; a detection while the address is banned does not (one incident,
// one offence: the 403s its ban answers must not escalate it); the next
// ban after the first is lifted is the second offence.
func TestOffencesManualBansAndWhileBanned(t *testing.T) {
	f := newFixture(t)
	f.store = f.store.WithOptions(respond.StoreOptions{
		DjangoCacheKey: f.store.DjangoLockdownKey(),
		HistoryTTL:     time.Hour,
	})
	r, _ := f.responder(t, respond.Config{Ladder: []time.Duration{time.Hour, 10 * time.Hour}})
	ctx := testCtx(t)

	if n, err := f.store.Offences(ctx, "192.0.2.1"); err != nil || n != 0 {
		t.Errorf("Offences of a new IP = %d, %v", n, err)
	}
	if _, err := f.store.Offences(ctx, "nope"); err == nil {
		t.Error("Offences(nope) succeeded")
	}
	// A manual ban counts.
	if _, err := r.Apply(ctx, respond.ManualAction{Kind: "ban", Target: "192.0.2.1", Duration: time.Hour, Actor: "ann"}); err != nil {
		t.Fatal(err)
	}
	// A detection while banned: not an offence, the ban unchanged.
	audits, _, err := r.Handle(ctx, banAlert("a", "192.0.2.1", time.Minute))
	if err != nil || audits[0].Result != "unchanged" || audits[0].Offence != 1 {
		t.Fatalf("a detection while banned = %+v, %v; want unchanged, offence 1", audits, err)
	}
	if rec, _ := f.record(t, "192.0.2.1"); rec.Actor != "admin:ann" || rec.Offence != 1 {
		t.Errorf("record after a detection while banned = %+v, want the manual ban's", rec)
	}
	if n, _ := f.store.Offences(ctx, "192.0.2.1"); n != 1 {
		t.Errorf("Offences after a detection while banned = %d, want 1", n)
	}
	// Lifted, then caught again: the second offence, on the second rung.
	if _, err := f.store.Unban(ctx, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	audits, _, err = r.Handle(ctx, banAlert("b", "192.0.2.1", time.Minute))
	if err != nil || audits[0].Result != "applied" || audits[0].Offence != 2 || time.Duration(audits[0].Duration) != 10*time.Hour {
		t.Fatalf("second offence = %+v, %v", audits, err)
	}
	if ttl := f.ttl(t, "192.0.2.1"); !within(ttl, 10*time.Hour, time.Second) {
		t.Errorf("TTL = %s, want 10h", ttl)
	}
	if ttl := f.pttl(t, f.store.HistoryKey("192.0.2.1")); !within(ttl, time.Hour, time.Second) {
		t.Errorf("history TTL = %s, want the configured 1h", ttl)
	}
	// Unban keeps the history.
	if _, err := f.store.Unban(ctx, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.store.Offences(ctx, "192.0.2.1"); n != 2 {
		t.Errorf("Offences after unban = %d, want 2", n)
	}
}

func TestDryRunReportsOffence(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	live, _ := f.responder(t, respond.Config{Ladder: []time.Duration{time.Hour, 5 * time.Hour}})
	if _, _, err := live.Handle(ctx, banAlert("a", "192.0.2.1", 0)); err != nil {
		t.Fatal(err)
	}
	before := f.keys(t)
	dry, _ := f.responder(t, respond.Config{DryRun: true, Ladder: []time.Duration{time.Hour, 5 * time.Hour}})
	audits, _, err := dry.Handle(ctx, banAlert("b", "192.0.2.1", 0))
	if err != nil || audits[0].Result != "dry-run" || audits[0].Offence != 2 || time.Duration(audits[0].Duration) != 72*time.Hour {
		t.Errorf("dry run = %+v, %v; want offence 2 for 72h (the default is above the rung)", audits, err)
	}
	if n, _ := f.store.Offences(ctx, "192.0.2.1"); n != 1 {
		t.Errorf("Offences after a dry run = %d, want 1", n)
	}
	if after := f.keys(t); len(after) != len(before) {
		t.Errorf("keys changed by a dry run: %v -> %v", before, after)
	}
}
