package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// roleHarness is a Vigil process running only roles, against the external
// NATS server ns.
func roleHarness(t *testing.T, rs *redistest.Server, ns *natsServer, logDir string, roles ...string) *harness {
	t.Helper()
	h := newHarness(t, rs, t.TempDir())
	h.cfg.NATS = ns.url()
	h.cfg.Roles = roles
	if logDir != "" {
		h.logDir, h.cfg.AccessLogs = logDir, []string{logDir + "/*.log"}
	}
	return h
}

// adminGet fetches path from h's admin listener.
func (h *harness) adminGet(path string) (int, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := h.app.AdminAddr(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestSplitRoles: ingest, detect and respond in three processes sharing
// one NATS server ban a scanner as one process does, and each process runs
// only its own parts.
func TestSplitRoles(t *testing.T) {
	rs := redistest.Start(t)
	ns := startNATS(t)
	in := roleHarness(t, rs, ns, "", RoleIngest)
	in.start()
	det := roleHarness(t, rs, ns, t.TempDir(), RoleDetect)
	det.start()
	resp := roleHarness(t, rs, ns, t.TempDir(), RoleRespond)
	resp.cfg.InsecureAdmin = true
	resp.start()

	in.appendLines("access.log", scanLines("203.0.113.61", time.Now().UTC(), 50))
	waitFor(t, 20*time.Second, "ban of 203.0.113.61", func() bool { return in.banTTL("203.0.113.61") > 0 })
	if det.app.detectedEvents() != 50 {
		t.Errorf("the detect process read %d events, want 50", det.app.detectedEvents())
	}
	// Lines in the detect and respond processes' access_log globs are
	// not theirs to follow.
	det.appendLines("access.log", scanLines("203.0.113.62", time.Now().UTC(), 50))
	time.Sleep(time.Second)
	if n := det.app.detectedEvents(); n != 50 {
		t.Errorf("the detect process read %d events after lines were written to its own log glob, want 50", n)
	}

	for _, c := range []struct {
		h           *harness
		roles       string
		has, hasNot []string
	}{
		{in, `["ingest"]`, []string{"vigil_ingest_events_total"}, []string{"vigil_detect_events_total", "vigil_respond_lockdown_active", `"redis"`}},
		{det, `["detect"]`, []string{"vigil_detect_events_total"}, []string{"vigil_ingest_events_total", "vigil_respond_lockdown_active", `"redis"`}},
		{resp, `["respond"]`, []string{"vigil_respond_lockdown_active", "vigil_respond_state_refreshed_timestamp_seconds 1", `"redis":"ok"`}, []string{"vigil_ingest_events_total", "vigil_detect_events_total"}},
	} {
		code, ready := c.h.adminGet("/readyz")
		_, metrics := c.h.adminGet("/metrics")
		all := ready + metrics
		if code != http.StatusOK || !strings.Contains(ready, `"roles":`+c.roles) {
			t.Errorf("%s: /readyz %d %s", c.roles, code, ready)
		}
		for _, s := range c.has {
			if !strings.Contains(all, s) {
				t.Errorf("%s: /readyz and /metrics lack %s", c.roles, s)
			}
		}
		for _, s := range c.hasNot {
			if strings.Contains(all, s) {
				t.Errorf("%s: /readyz or /metrics has %s", c.roles, s)
			}
		}
	}
	if in.app.public.Load() == nil || det.app.public.Load() != nil || resp.app.public.Load() != nil {
		t.Error("the public listener must run in the ingest process only")
	}

	// The admin API lives with the responder; elsewhere /api says where.
	code, body := in.adminGet("/api/v1/bans")
	if code != http.StatusNotFound || !strings.Contains(body, "served by the process that runs respond") {
		t.Errorf("ingest process /api/v1/bans: %d %s", code, body)
	}
	code, body = resp.adminGet("/api/v1/bans")
	if code != http.StatusOK || !strings.Contains(body, "203.0.113.61") {
		t.Errorf("respond process /api/v1/bans: %d %s", code, body)
	}
	code, body = resp.adminGet("/api/v1/explain/203.0.113.61")
	var ex struct {
		Rules     any    `json:"rules"`
		RulesNote string `json:"rules_note"`
		Ban       any    `json:"ban"`
	}
	if err := json.Unmarshal([]byte(body), &ex); code != http.StatusOK || err != nil || ex.Rules != nil || ex.RulesNote == "" || ex.Ban == nil {
		t.Errorf("respond process explain: %d %s", code, body)
	}
}

// TestStandbyDetectorTakesOver: a second detector waits while the first is
// active and takes over when it stops, with the windows the first had
// built: a scan that straddles the hand-over is caught.
func TestStandbyDetectorTakesOver(t *testing.T) {
	rs := redistest.Start(t)
	ns := startNATS(t)
	h := roleHarness(t, rs, ns, "", RoleIngest, RoleRespond)
	h.start()
	d1 := roleHarness(t, rs, ns, "", RoleDetect)
	d1.start()
	now := time.Now().UTC()
	h.appendLines("access.log", scanLines("203.0.113.71", now, 50))
	waitFor(t, 20*time.Second, "ban of 203.0.113.71", func() bool { return h.banTTL("203.0.113.71") > 0 })

	d2 := roleHarness(t, rs, ns, "", RoleDetect)
	d2.start()
	straddling := scanLines("203.0.113.72", now, 50)
	h.appendLines("access.log", straddling[:30])
	waitFor(t, 10*time.Second, "30 more events at the active detector", func() bool { return d1.app.detectedEvents() == 80 })
	time.Sleep(time.Second)
	if n := d2.app.detectedEvents(); n != 0 {
		t.Fatalf("the standby detector read %d events while the first was active", n)
	}

	waitFor(t, 10*time.Second, "the first detector active, the second a standby", func() bool {
		_, r1 := d1.adminGet("/readyz")
		_, r2 := d2.adminGet("/readyz")
		_, m2 := d2.adminGet("/metrics")
		return strings.Contains(r1, `"detector":"active"`) && strings.Contains(r2, `"detector":"standby"`) && strings.Contains(m2, "vigil_detect_active 0")
	})
	d1.stop() // unpins: the standby takes over at once, not after the pinned TTL
	h.appendLines("access.log", straddling[30:])
	waitFor(t, detectPinnedTTL/2, "ban of 203.0.113.72 by the standby", func() bool { return h.banTTL("203.0.113.72") > 0 })
	if ttl := h.banTTL("203.0.113.71"); ttl <= 0 {
		t.Errorf("ban of 203.0.113.71 gone: %s", ttl)
	}
	waitFor(t, 10*time.Second, "the second detector active", func() bool {
		_, m2 := d2.adminGet("/metrics")
		return strings.Contains(m2, "vigil_detect_active 1")
	})
	// The take-over's warm-up keeps the first scanner quiet: one alert.
	h.appendLines("access.log", scanLines("203.0.113.71", now.Add(time.Second), 50))
	time.Sleep(2 * time.Second)
	alerts := 0
	for _, m := range readStream(t, natsConn(t, ns), bus.StreamAlerts) {
		if strings.Contains(string(m.Data()), `"key":"203.0.113.71"`) {
			alerts++
		}
	}
	if alerts != 1 {
		t.Errorf("%d alerts for 203.0.113.71, want 1 (the take-over must rebuild its cooldown)", alerts)
	}
}

// TestTakeOverEvaluatesUnacknowledged: batches a detector received but
// never acknowledged (it was killed) are evaluated by the next one at once,
// not after the two-minute ack wait, when they would be too late to count.
func TestTakeOverEvaluatesUnacknowledged(t *testing.T) {
	rs := redistest.Start(t)
	ns := startNATS(t)
	h := roleHarness(t, rs, ns, "", RoleIngest, RoleRespond)
	h.start()
	h.appendLines("access.log", scanLines("203.0.113.81", time.Now().UTC(), 50))
	nc := natsConn(t, ns)
	waitFor(t, 10*time.Second, "the scan on the bus", func() bool {
		n := 0
		for _, m := range readStream(t, nc, bus.StreamEvents) {
			n += strings.Count(string(m.Data()), "203.0.113.81")
		}
		return n >= 50
	})

	// A detector that takes every batch and dies before acknowledging one.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, detectConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(detectGroup))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got == 0 {
		t.Fatal("the dying detector received nothing")
	}
	// Its pin would lapse after the pinned TTL; release it now to keep the
	// test short (what matters here is the unacknowledged batches).
	if s, err := js.Stream(ctx, bus.StreamEvents); err != nil || s.UnpinConsumer(ctx, consumerDetect, detectGroup) != nil {
		t.Fatalf("unpinning: %v", err)
	}

	d := roleHarness(t, rs, ns, "", RoleDetect)
	d.start()
	h.appendLines("access.log", []string{clf("198.51.100.9", time.Now().UTC(), "GET", "/", 200)}) // wakes the new detector
	waitFor(t, 20*time.Second, "ban of 203.0.113.81 from the unacknowledged batches", func() bool { return h.banTTL("203.0.113.81") > 0 })
}

// natsConn connects to ns for the test.
func natsConn(t *testing.T, ns *natsServer) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestDetectorUpgradesItsConsumer: a detector consumer created by an older
// Vigil, without the priority group, is updated in place and goes on from
// where it was.
func TestDetectorUpgradesItsConsumer(t *testing.T) {
	rs := redistest.Start(t)
	ns := startNATS(t)
	h := roleHarness(t, rs, ns, "", RoleIngest, RoleRespond)
	h.start()
	js, err := jetstream.New(natsConn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	old := detectConsumerConfig()
	old.PriorityGroups, old.PriorityPolicy, old.PinnedTTL = nil, jetstream.PriorityPolicyNone, 0
	if _, err := js.CreateConsumer(ctx, bus.StreamEvents, old); err != nil {
		t.Fatal(err)
	}
	d := roleHarness(t, rs, ns, "", RoleDetect)
	d.start()
	h.appendLines("access.log", scanLines("203.0.113.91", time.Now().UTC(), 50))
	waitFor(t, 20*time.Second, "ban of 203.0.113.91", func() bool { return h.banTTL("203.0.113.91") > 0 })
	cons, err := js.Consumer(ctx, bus.StreamEvents, consumerDetect)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := cons.CachedInfo().Config; cfg.PriorityPolicy != jetstream.PriorityPolicyPinned {
		t.Errorf("consumer priority policy %v, want pinned", cfg.PriorityPolicy)
	}
}

// TestDetectorGetsItsPinBack: a detector whose pin lapsed (here: released
// by an operator's unpin) and that gets it back goes on with its own
// windows instead of rebuilding them, and a scan straddling that is caught.
func TestDetectorGetsItsPinBack(t *testing.T) {
	h := newHarness(t, redistest.Start(t), t.TempDir())
	h.start()
	lines := scanLines("203.0.113.95", time.Now().UTC(), 50)
	h.appendLines("access.log", lines[:30])
	waitFor(t, 10*time.Second, "30 events detected", func() bool { return h.app.detectedEvents() == 30 })

	nc, err := h.app.Embedded().Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(ctx, consumerDetect, detectGroup); err != nil {
		t.Fatal(err)
	}
	h.appendLines("access.log", lines[30:])
	waitFor(t, 20*time.Second, "ban of 203.0.113.95", func() bool { return h.banTTL("203.0.113.95") > 0 })
	_, metrics := h.adminGet("/metrics")
	for _, want := range []string{`vigil_detect_takeovers_total{rebuilt="true"} 1`, `vigil_detect_takeovers_total{rebuilt="false"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "vigil_detect_takeovers_total"))
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
