package respond_test

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/internal/redistest"
	"github.com/vigil-soc/vigil/respond"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is where test clocks start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC)

// clock is a test clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a Store on a Redis of the test's own, with a test clock.
type fixture struct {
	srv   *redistest.Server
	rdb   *redis.Client
	clock *clock
	store *respond.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	clk := &clock{now: t0}
	// The Django mirror key goes under the test's prefix too, so that
	// tests sharing a Redis do not see each other's lockdowns and keys()
	// sees it.
	store := respond.NewStore(rdb, srv.Prefix, clk.Now).WithOptions(respond.StoreOptions{
		DjangoCacheKey: respond.DjangoKey(srv.Prefix+"django", 1, "EMERGENCY_LOCKDOWN"),
	})
	return &fixture{srv: srv, rdb: rdb, clock: clk, store: store}
}

// ctx returns a context that ends with the test, after at most 20 s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// record reads and decodes the ban record of ip; ok is false if there is
// none.
func (f *fixture) record(t *testing.T, ip string) (rec respond.BanRecord, ok bool) {
	t.Helper()
	v, err := f.rdb.Get(testCtx(t), f.store.Key(ip)).Result()
	if err == redis.Nil {
		return respond.BanRecord{}, false
	}
	if err != nil {
		t.Fatalf("GET %s: %v", f.store.Key(ip), err)
	}
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		t.Fatalf("decoding %s = %s: %v", f.store.Key(ip), v, err)
	}
	return rec, true
}

// ttl returns the real TTL of ip's ban key.
func (f *fixture) ttl(t *testing.T, ip string) time.Duration {
	t.Helper()
	d, err := f.rdb.PTTL(testCtx(t), f.store.Key(ip)).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", f.store.Key(ip), err)
	}
	return d
}

// score returns ip's index score; ok is false if it has none.
func (f *fixture) score(t *testing.T, ip string) (score int64, ok bool) {
	t.Helper()
	s, err := f.rdb.ZScore(testCtx(t), f.store.IndexKey(), ip).Result()
	if err == redis.Nil {
		return 0, false
	}
	if err != nil {
		t.Fatalf("ZSCORE %s %s: %v", f.store.IndexKey(), ip, err)
	}
	return int64(s), true
}

// keys returns every key under the test's prefix.
func (f *fixture) keys(t *testing.T) []string {
	t.Helper()
	var out []string
	iter := f.rdb.Scan(testCtx(t), 0, f.srv.Prefix+"*", 100).Iterator()
	for iter.Next(testCtx(t)) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	return out
}

// change is a message on the events channel.
type change struct {
	Type    string `json:"type"`
	IP      string `json:"ip"`
	Expires int64  `json:"expires"`
	Rule    string `json:"rule"`
}

// events is a subscription to the store's events channel.
type events struct {
	t   *testing.T
	f   *fixture
	sub *redis.PubSub
}

// subscribe subscribes to the events channel and waits until the
// subscription is in place.
func (f *fixture) subscribe(t *testing.T) *events {
	t.Helper()
	sub := f.rdb.Subscribe(testCtx(t), f.store.Channel())
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(testCtx(t)); err != nil {
		t.Fatalf("subscribing to %s: %v", f.store.Channel(), err)
	}
	return &events{t: t, f: f, sub: sub}
}

// next returns the next change published.
func (e *events) next() change {
	e.t.Helper()
	var c change
	e.decode(&c)
	return c
}

// raw returns the next change published, decoded into a map (numbers are
// float64).
func (e *events) raw() map[string]any {
	e.t.Helper()
	var m map[string]any
	e.decode(&m)
	return m
}

// decode decodes the next message published into v.
func (e *events) decode(v any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := e.sub.ReceiveMessage(ctx)
	if err != nil {
		e.t.Fatalf("receiving from %s: %v", e.f.store.Channel(), err)
	}
	if err := json.Unmarshal([]byte(msg.Payload), v); err != nil {
		e.t.Fatalf("decoding event %s: %v", msg.Payload, err)
	}
}

// none checks that nothing was published since the last message read, by
// publishing a marker and expecting it to be the next message.
func (e *events) none() {
	e.t.Helper()
	if err := e.f.rdb.Publish(testCtx(e.t), e.f.store.Channel(), `{"type":"marker"}`).Err(); err != nil {
		e.t.Fatalf("publishing marker: %v", err)
	}
	if c := e.next(); c.Type != "marker" {
		e.t.Fatalf("unexpected event %+v", c)
	}
}

// get returns the value at key; ok is false if there is none.
func (f *fixture) get(t *testing.T, key string) (v string, ok bool) {
	t.Helper()
	v, err := f.rdb.Get(testCtx(t), key).Result()
	if err == redis.Nil {
		return "", false
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v, true
}

// pttl returns the TTL of key: noTTL for none, noKey if there is no key.
func (f *fixture) pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	d, err := f.rdb.PTTL(testCtx(t), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

// What go-redis's PTTL returns for a key without a TTL and for no key.
const (
	noTTL time.Duration = -1
	noKey time.Duration = -2
)

// within reports whether got is within tol of want.
func within(got, want, tol time.Duration) bool {
	d := got - want
	return d >= -tol && d <= tol
}

// metric returns the value of the counter or gauge called name whose
// labels are exactly labels; ok is false if there is no such series.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if !maps.Equal(got, labels) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// actionCount returns vigil_respond_actions_total{action,result}.
func actionCount(t *testing.T, reg *prometheus.Registry, action, result string) float64 {
	t.Helper()
	v, ok := metric(t, reg, "vigil_respond_actions_total", map[string]string{"action": action, "result": result})
	if !ok {
		t.Fatalf("no vigil_respond_actions_total{action=%q,result=%q}", action, result)
	}
	return v
}
