package respond_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// responder returns a Responder on f's store with fresh metrics.
func (f *fixture) responder(t *testing.T, cfg respond.Config) (*respond.Responder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return respond.NewResponder(f.store, cfg, logger, respond.NewMetrics(reg)), reg
}

// testWriter sends logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func banAlert(id, key string, d time.Duration) *event.Alert {
	return &event.Alert{
		ID: id, Rule: "scan-404", Description: "Too many distinct 404s", Severity: "high",
		KeyField: "source.ip", Key: key, At: t0, Window: event.Duration(time.Minute), Count: 50,
		Actions: []event.ActionSpec{{Kind: event.ActionBan, Duration: event.Duration(d)}},
	}
}

func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_respond_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["action"] == "ban" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no vigil_respond_actions_total{action=ban,result=%s}", result)
	return 0
}

func TestHandleBansAndRepeatsAreUnchanged(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{})
	ctx := testCtx(t)
	a := banAlert("alert-1", "203.0.113.7", 2*time.Hour)

	audits, retry, err := r.Handle(ctx, a)
	if err != nil || retry {
		t.Fatalf("Handle = retry %v, err %v", retry, err)
	}
	want := []event.Audit{{
		ID: "alert-1:ban", Time: t0, Action: "ban", Target: "203.0.113.7", Actor: "rule:scan-404",
		Reason: "Too many distinct 404s (50 in 1m0s)", AlertID: "alert-1", Result: "applied",
		Duration: event.Duration(2 * time.Hour), Expires: t0.Add(2 * time.Hour).Truncate(time.Second), Offence: 1,
	}}
	if !reflect.DeepEqual(audits, want) {
		t.Errorf("audits\n got %+v\nwant %+v", audits, want)
	}
	rec, ok := f.record(t, "203.0.113.7")
	if !ok || rec.AlertID != "alert-1" || rec.Rule != "scan-404" || rec.Actor != "rule:scan-404" || rec.Reason != want[0].Reason {
		t.Errorf("stored record %+v (present %v)", rec, ok)
	}

	f.clock.Add(time.Minute)
	audits, retry, err = r.Handle(ctx, a)
	if err != nil || retry {
		t.Fatalf("second Handle = retry %v, err %v", retry, err)
	}
	if len(audits) != 1 || audits[0].Result != "unchanged" || audits[0].ID != "alert-1:ban" || !audits[0].Expires.Equal(want[0].Expires) {
		t.Errorf("second Handle audits = %+v; want one unchanged with the same ID and expiry", audits)
	}
	if got := counter(t, reg, "applied"); got != 1 {
		t.Errorf("applied counter = %v, want 1", got)
	}
	if got := counter(t, reg, "unchanged"); got != 1 {
		t.Errorf("unchanged counter = %v, want 1", got)
	}

	if err := r.RefreshActive(ctx); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg); got != 1 {
		t.Errorf("vigil_respond_bans_active = %v, want 1", got)
	}
}

// gauge returns the value of vigil_respond_bans_active.
func gauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vigil_respond_bans_active" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no vigil_respond_bans_active")
	return 0
}

func TestHandleDurations(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  respond.Config
		ask  time.Duration
		want time.Duration
	}{
		{"as asked", respond.Config{}, 5 * time.Hour, 5 * time.Hour},
		{"default when none", respond.Config{}, 0, 72 * time.Hour},
		{"configured default", respond.Config{DefaultBan: time.Hour}, 0, time.Hour},
		{"default cap", respond.Config{}, 90 * 24 * time.Hour, 30 * 24 * time.Hour},
		{"configured cap", respond.Config{MaxBan: 24 * time.Hour}, 72 * time.Hour, 24 * time.Hour},
		{"cap over default", respond.Config{MaxBan: time.Hour}, 0, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r, _ := f.responder(t, tc.cfg)
			audits, _, err := r.Handle(testCtx(t), banAlert("a", "192.0.2.1", tc.ask))
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Duration(audits[0].Duration); d != tc.want {
				t.Errorf("audit duration = %s, want %s", d, tc.want)
			}
			if ttl := f.ttl(t, "192.0.2.1"); !within(ttl, tc.want, time.Second) {
				t.Errorf("TTL = %s, want %s", ttl, tc.want)
			}
		})
	}
}

func TestHandleAllowlistedDoesNothing(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{})
	a := banAlert("a", "127.0.0.1", time.Hour)
	a.Allowlisted = true

	audits, retry, err := r.Handle(testCtx(t), a)
	if err != nil || retry {
		t.Fatalf("Handle = retry %v, err %v", retry, err)
	}
	if len(audits) != 1 || audits[0].Result != "skipped-allowlisted" || audits[0].Target != "127.0.0.1" || audits[0].ID != "a:ban" {
		t.Errorf("audits = %+v", audits)
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("Redis changed: %v", k)
	}
	if got := counter(t, reg, "skipped-allowlisted"); got != 1 {
		t.Errorf("skipped-allowlisted counter = %v, want 1", got)
	}
}

func TestHandleDryRunDoesNothing(t *testing.T) {
	f := newFixture(t)
	r, reg := f.responder(t, respond.Config{DryRun: true})
	audits, retry, err := r.Handle(testCtx(t), banAlert("a", "192.0.2.1", time.Hour))
	if err != nil || retry {
		t.Fatalf("Handle = retry %v, err %v", retry, err)
	}
	if len(audits) != 1 || audits[0].Result != "dry-run" || !audits[0].Expires.Equal(t0.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("audits = %+v", audits)
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("Redis changed: %v", k)
	}
	if got := counter(t, reg, "dry-run"); got != 1 {
		t.Errorf("dry-run counter = %v, want 1", got)
	}
}

func TestHandleWidensIPv6(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{IPv6PrefixLen: 64})
	audits, _, err := r.Handle(testCtx(t), banAlert("a", "2001:db8:1:2::7", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if audits[0].Target != "2001:db8:1:2::/64" {
		t.Errorf("target = %q, want 2001:db8:1:2::/64", audits[0].Target)
	}
	if _, ok := f.record(t, "2001:db8:1:2::/64"); !ok {
		t.Error("no ban of the /64")
	}
	// IPv4 is never widened.
	audits, _, err = r.Handle(testCtx(t), banAlert("b", "192.0.2.1", time.Hour))
	if err != nil || audits[0].Target != "192.0.2.1" {
		t.Errorf("IPv4 target = %q, %v", audits[0].Target, err)
	}
}

func TestHandleBadAlertsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alert *event.Alert
		want  string // in the error
	}{
		{"key not an IP", banAlert("a", "alice", time.Hour), `"alice"`},
		{"unknown kind", &event.Alert{ID: "a", Rule: "r", Key: "192.0.2.1", Actions: []event.ActionSpec{{Kind: "explode"}}}, `"explode"`},
		{"too short", banAlert("a", "192.0.2.1", time.Millisecond), "at least 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r, reg := f.responder(t, respond.Config{})
			audits, retry, err := r.Handle(testCtx(t), tc.alert)
			if err == nil || retry || respond.Retryable(err) {
				t.Fatalf("Handle = retry %v, err %v; want a non-retryable error", retry, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
			if len(audits) != 1 || audits[0].Result != "failed" || audits[0].Error == "" {
				t.Errorf("audits = %+v; want one failed", audits)
			}
			if k := f.keys(t); len(k) != 0 {
				t.Errorf("Redis changed: %v", k)
			}
			if tc.alert.Actions[0].Kind == event.ActionBan {
				if got := counter(t, reg, "failed"); got != 1 {
					t.Errorf("failed counter = %v, want 1", got)
				}
			}
		})
	}
}

func TestHandleRedisOutageIsRetried(t *testing.T) {
	f := newFixture(t)
	r, _ := f.responder(t, respond.Config{})
	ctx := testCtx(t)
	a := banAlert("a", "203.0.113.7", time.Hour)

	f.srv.Stop()
	audits, retry, err := r.Handle(ctx, a)
	if err == nil || !retry {
		t.Fatalf("Handle with Redis down = retry %v, err %v; want a retryable error", retry, err)
	}
	if len(audits) != 0 {
		t.Errorf("audits = %+v; want none (a retried action is audited once it is done)", audits)
	}
	if err := r.RefreshActive(ctx); !respond.Retryable(err) {
		t.Errorf("RefreshActive with Redis down = %v; want a retryable error", err)
	}

	// The restarted server has lost its script cache too.
	f.srv.Restart(t)
	audits, retry, err = r.Handle(ctx, a)
	if err != nil || retry {
		t.Fatalf("Handle after restart = retry %v, err %v", retry, err)
	}
	if len(audits) != 1 || audits[0].Result != "applied" {
		t.Errorf("audits = %+v", audits)
	}
	if _, ok := f.record(t, "203.0.113.7"); !ok {
		t.Error("no ban after the retry")
	}
}

func TestRetryable(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)

	// A real server error caused by the request.
	if err := f.rdb.Set(ctx, f.store.IndexKey(), "not a zset", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, _, wrongType := f.store.Ban(ctx, respond.Ban{IP: single(t, "192.0.2.1"), Duration: time.Hour})
	if wrongType == nil {
		t.Fatal("Ban with the index key of the wrong type succeeded")
	}

	// A real timeout: a server that accepts and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer func() { l.Close(); <-done }()
	mute := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ReadTimeout: 50 * time.Millisecond, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer mute.Close()
	timeout := mute.Ping(ctx).Err()

	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"wrong type", wrongType, false},
		{"timeout", fmtWrap(timeout), true},
		{"deadline", fmtWrap(context.DeadlineExceeded), true},
		{"refused", fmtWrap(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}), true},
		{"closed client", fmtWrap(redis.ErrClosed), true},
		{"loading", fmtWrap(redisError("LOADING Redis is loading the dataset in memory")), true},
		{"readonly", fmtWrap(redisError("READONLY You can't write against a read only replica.")), true},
		{"clusterdown", fmtWrap(redisError("CLUSTERDOWN The cluster is down")), true},
		{"tryagain", fmtWrap(redisError("TRYAGAIN Multiple keys request during rehashing of slot")), true},
		{"bad argument", fmtWrap(redisError("ERR wrong number of arguments for 'set' command")), false},
		{"script error", fmtWrap(redisError("ERR user_script:1: Script attempted to access nonexistent global variable")), false},
		{"plain", errors.New("banning \"alice\": not an IP address"), false},
	} {
		if got := respond.Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// redisError is an error reply as go-redis types it.
type redisError string

func (e redisError) Error() string { return string(e) }
func (e redisError) RedisError()   {}

// fmtWrap wraps err as callers do.
func fmtWrap(err error) error { return fmt.Errorf("handling alert a: %w", err) }
