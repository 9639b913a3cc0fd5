package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// harness runs an App in-process against a real Redis, with the embedded
// NATS in a temporary directory.
type harness struct {
	t      *testing.T
	cfg    Config
	app    *App
	cancel context.CancelFunc
	done   chan error
	logDir string
	redis  *redistest.Server
	rc     *redis.Client
}

func newHarness(t *testing.T, rs *redistest.Server, dataDir string) *harness {
	t.Helper()
	logDir := t.TempDir()
	cfg := Default()
	cfg.Redis = rs.URL
	cfg.RedisPrefix = rs.Prefix
	cfg.DataDir = dataDir
	cfg.Admin = "127.0.0.1:0"
	cfg.Listen = "127.0.0.1:0"
	cfg.EventsToken = "test-events-token-0123456789"
	cfg.AccessLogs = []string{filepath.Join(logDir, "*.log")}
	return &harness{t: t, cfg: cfg, logDir: logDir, redis: rs, rc: rs.Client(t)}
}

func (h *harness) start() {
	h.t.Helper()
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	a, err := New(h.cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.app, h.cancel, h.done = a, cancel, make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	if _, err := a.AdminAddr(actx); err != nil {
		h.t.Fatalf("app did not start: %v", err)
	}
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("app stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("app did not stop within 30s")
	}
}

// appendLines appends lines to the log file name.
func (h *harness) appendLines(name string, lines []string) {
	h.t.Helper()
	f, err := os.OpenFile(filepath.Join(h.logDir, name), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, strings.Join(lines, "")); err != nil {
		h.t.Fatal(err)
	}
}

func clf(ip string, at time.Time, method, target string, status int) string {
	return fmt.Sprintf("%s - - [%s] \"%s %s HTTP/1.1\" %d 153 \"-\" \"test-agent/1.0\"\n",
		ip, at.Format("02/Jan/2006:15:04:05 -0700"), method, target, status)
}

func scanLines(ip string, at time.Time, n int) []string {
	var out []string
	for i := range n {
		out = append(out, clf(ip, at, "GET", fmt.Sprintf("/probe/%s/%d", ip, i), 404))
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) banTTL(ip string) time.Duration {
	d, err := h.rc.TTL(context.Background(), h.cfg.RedisPrefix+"ban:ip:"+ip).Result()
	if err != nil {
		return -2
	}
	return d
}

// streamMessages reads every message of a stream through the embedded server.
func streamMessages(t *testing.T, a *App, stream string) []jetstream.Msg {
	t.Helper()
	nc, err := a.Embedded().Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	return readStream(t, nc, stream)
}

// readStream reads every message of a stream.
func readStream(t *testing.T, nc *nats.Conn, stream string) []jetstream.Msg {
	t.Helper()
	msgs, err := tryReadStream(nc, stream)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// tryReadStream reads every message of a stream, or says why it could not
// (a cluster electing a new leader answers "no responders" for a while).
func tryReadStream(nc *nats.Conn, stream string) ([]jetstream.Msg, error) {
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for uint64(len(msgs)) < info.State.Msgs {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w after %d of %d", stream, err, len(msgs), info.State.Msgs)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// TestLinesBecomeBans: lines appended to a watched file end as Redis keys
// with the right TTL, an index entry and an audit entry; decoys and
// allow-listed clients are not banned; old lines at start-up ban no one.
func TestLinesBecomeBans(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	now := time.Now().UTC()
	// A week-old scan already in the log when Vigil starts: live mode
	// must not ban anyone for last week.
	h.appendLines("access.log", scanLines("198.51.100.200", now.Add(-7*24*time.Hour), 80))
	h.start()

	lines := scanLines("203.0.113.7", now, 60)
	lines = append(lines, scanLines("10.9.8.7", now, 60)...) // allow-listed
	for range 300 {
		lines = append(lines, clf("198.51.100.10", now, "GET", "/old-logo.png", 404)) // one distinct path
	}
	for i := range 25 {
		lines = append(lines, clf("2001:db8::77", now.Add(time.Duration(i)*time.Second), "POST", "/api/token/", 401))
	}
	h.appendLines("access.log", lines)
	// A file that appears later, matched by the glob.
	h.appendLines("other.log", scanLines("::ffff:192.0.2.44", now, 55))

	for _, ip := range []string{"203.0.113.7", "2001:db8::77", "192.0.2.44"} {
		waitFor(t, 20*time.Second, "ban of "+ip, func() bool { return h.banTTL(ip) > 0 })
		if ttl := h.banTTL(ip); ttl < 72*time.Hour-time.Minute || ttl > 72*time.Hour {
			t.Errorf("ban of %s: TTL %s, want 72h", ip, ttl)
		}
		score, err := h.rc.ZScore(context.Background(), h.cfg.RedisPrefix+"bans", ip).Result()
		if err != nil || time.Unix(int64(score), 0).Before(now.Add(71*time.Hour)) {
			t.Errorf("ban index entry of %s: score %v err %v", ip, score, err)
		}
	}
	// Let the pipeline drain, then check what must not exist.
	waitFor(t, 10*time.Second, "alerts for the allow-listed scanner", func() bool {
		return len(streamMessages(t, h.app, bus.StreamAlerts)) >= 4
	})
	for _, ip := range []string{"10.9.8.7", "198.51.100.10", "198.51.100.200"} {
		if ttl := h.banTTL(ip); ttl != -2 {
			t.Errorf("%s banned (TTL %s), want no ban", ip, ttl)
		}
	}
	audits := streamMessages(t, h.app, bus.StreamAudit)
	applied := 0
	for _, m := range audits {
		if strings.Contains(string(m.Data()), `"result":"applied"`) {
			applied++
		}
	}
	if applied != 3 {
		t.Errorf("audit has %d applied entries, want 3:\n%v", applied, audits)
	}
}

// TestRedisOutageDelaysBans: with Redis stopped, detections wait in
// JetStream; when it is back every ban arrives.
func TestRedisOutageDelaysBans(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.start()
	rs.Stop()
	now := time.Now().UTC()
	ips := []string{"203.0.113.21", "203.0.113.22", "203.0.113.23"}
	for _, ip := range ips {
		h.appendLines("access.log", scanLines(ip, now, 50))
	}
	waitFor(t, 20*time.Second, "three alerts published", func() bool {
		return len(streamMessages(t, h.app, bus.StreamAlerts)) == 3
	})
	time.Sleep(2 * time.Second) // the responder fails and retries meanwhile
	rs.Restart(t)
	h.rc = rs.Client(t)
	for _, ip := range ips {
		waitFor(t, 60*time.Second, "ban of "+ip+" after Redis came back", func() bool { return h.banTTL(ip) > 0 })
	}
}

// TestRestartLosesAndDuplicatesNothing: stopping Vigil in the middle of a
// stream of lines and starting it again publishes every line exactly once.
func TestRestartLosesAndDuplicatesNothing(t *testing.T) {
	rs := redistest.Start(t)
	dataDir := t.TempDir()
	h := newHarness(t, rs, dataDir)
	h.start()
	now := time.Now().UTC()
	const total = 20000
	write := func(from, to int) {
		var lines []string
		for i := from; i < to; i++ {
			lines = append(lines, clf("198.51.100.1", now, "GET", fmt.Sprintf("/page/%d", i), 200))
		}
		h.appendLines("access.log", lines)
	}
	// Write in slices while stopping half-way.
	for i := 0; i < total/2; i += 1000 {
		write(i, i+1000)
	}
	h.stop()
	write(total/2, total*3/4)
	h2 := newHarness(t, rs, dataDir)
	h2.logDir, h2.cfg.AccessLogs = h.logDir, h.cfg.AccessLogs
	h2.start()
	write(total*3/4, total)

	seen := map[string]int{}
	waitFor(t, 30*time.Second, "all lines on the bus", func() bool {
		clear(seen)
		for _, m := range streamMessages(t, h2.app, bus.StreamEvents) {
			bus.DecodeBatch(m.Data(), func(ev *event.Event) { seen[ev.Target]++ })
		}
		return len(seen) == total
	})
	for target, n := range seen {
		if n != 1 {
			t.Errorf("%s published %d times", target, n)
		}
	}
}

// TestScanStraddlingARestartIsCaught: the detector rebuilds its windows from
// the stream after a restart, so 30 paths before and 20 after still fire.
func TestScanStraddlingARestartIsCaught(t *testing.T) {
	rs := redistest.Start(t)
	dataDir := t.TempDir()
	h := newHarness(t, rs, dataDir)
	h.start()
	now := time.Now().UTC()
	lines := scanLines("203.0.113.99", now, 50)
	h.appendLines("access.log", lines[:30])
	waitFor(t, 10*time.Second, "30 events on the bus", func() bool { return len(streamMessages(t, h.app, bus.StreamEvents)) > 0 })
	time.Sleep(500 * time.Millisecond) // let the detector acknowledge them
	h.stop()
	h2 := newHarness(t, rs, dataDir)
	h2.logDir, h2.cfg.AccessLogs = h.logDir, h.cfg.AccessLogs
	h2.start()
	h2.appendLines("access.log", lines[30:])
	waitFor(t, 20*time.Second, "ban after the restart", func() bool { return h2.banTTL("203.0.113.99") > 0 })
}

// TestWarmAtStartUp: a restarted detector rebuilds its windows from the
// stream as it starts, not when the first batch arrives (the server pins it
// only then), so the first scan after a restart meets warm windows.
func TestWarmAtStartUp(t *testing.T) {
	rs := redistest.Start(t)
	dataDir := t.TempDir()
	h := newHarness(t, rs, dataDir)
	h.start()
	h.appendLines("access.log", scanLines("203.0.113.98", time.Now().UTC(), 30))
	waitFor(t, 10*time.Second, "30 events evaluated", func() bool { return h.app.detectedEvents() >= 30 })
	time.Sleep(500 * time.Millisecond) // let the detector acknowledge them
	h.stop()
	h2 := newHarness(t, rs, dataDir)
	h2.logDir, h2.cfg.AccessLogs = h.logDir, h.cfg.AccessLogs
	h2.start()
	// No new event: the windows of the 30 are back all the same.
	waitFor(t, 10*time.Second, "the windows rebuilt", func() bool {
		_, metrics := h2.adminGet("/metrics")
		return strings.Contains(metrics, "\nvigil_detect_keys_tracked ") && !strings.Contains(metrics, "\nvigil_detect_keys_tracked 0\n")
	})
}

// fastScanRules writes a rules directory with one rule, fast-scan: five
// distinct 404 paths from one IP within 2 s bans it for an hour.
func fastScanRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fast.yaml"), []byte(`rules:
  - id: fast-scan
    match: {status: [404]}
    distinct: url.path
    threshold: 5
    window: 2s
    actions: {ban: 1h}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCooldownSurvivesARestart: a key that fired before the span the
// restarted detector rebuilds its windows from (the longest window) stays
// in its cooldown: the same scanner scanning again after the restart is
// not alerted on twice, while a new one is. The cooldown comes back from
// the alerts stream.
func TestCooldownSurvivesARestart(t *testing.T) {
	rs := redistest.Start(t)
	rulesDir := fastScanRules(t)
	dataDir := t.TempDir()
	h := newHarness(t, rs, dataDir)
	h.cfg.Rules, h.cfg.Lateness = rulesDir, time.Second
	h.start()
	h.appendLines("access.log", scanLines("203.0.113.60", time.Now().UTC(), 5))
	waitFor(t, 20*time.Second, "the first ban", func() bool { return h.banTTL("203.0.113.60") > 0 })
	// Past the window and the lateness, one more event: the restarted
	// detector's warm-up starts after the scan.
	time.Sleep(3500 * time.Millisecond)
	h.appendLines("access.log", []string{clf("198.51.100.1", time.Now().UTC(), "GET", "/", 200)})
	waitFor(t, 10*time.Second, "every event evaluated", func() bool { return h.app.detectedEvents() == 6 })
	time.Sleep(300 * time.Millisecond) // let the detector acknowledge
	h.stop()

	h2 := newHarness(t, rs, dataDir)
	h2.logDir, h2.cfg.AccessLogs, h2.cfg.Rules, h2.cfg.Lateness = h.logDir, h.cfg.AccessLogs, rulesDir, time.Second
	h2.start()
	now := time.Now().UTC()
	h2.appendLines("access.log", append(scanLines("203.0.113.60", now, 5), scanLines("203.0.113.61", now, 5)...))
	waitFor(t, 20*time.Second, "the new scanner's ban", func() bool { return h2.banTTL("203.0.113.61") > 0 })
	waitFor(t, 10*time.Second, "every event evaluated", func() bool { return h2.app.detectedEvents() == 10 })
	per := map[string]int{}
	for _, m := range streamMessages(t, h2.app, bus.StreamAlerts) {
		var a event.Alert
		if err := json.Unmarshal(m.Data(), &a); err != nil {
			t.Fatal(err)
		}
		per[a.Key]++
	}
	if per["203.0.113.60"] != 1 || per["203.0.113.61"] != 1 {
		t.Fatalf("alerts per key %v, want one each: .60 is in its cooldown after the restart", per)
	}
}

// TestUnbanLetsTheNextOffenceBan: an address an operator unbans starts
// afresh in the detector, live and after a restart: its next scan is
// banned again, though the rule's cooldown (its ban) has not passed.
func TestUnbanLetsTheNextOffenceBan(t *testing.T) {
	rs := redistest.Start(t)
	rulesDir := fastScanRules(t)
	dataDir := t.TempDir()
	const ip = "203.0.113.62"
	start := func() *harness {
		h := newHarness(t, rs, dataDir)
		h.cfg.Rules, h.cfg.Lateness, h.cfg.AdminToken = rulesDir, time.Second, adminToken
		h.start()
		return h
	}
	scan := func(h *harness, what string) {
		// Log times are whole seconds, and an alert's id derives from its
		// rule, key and time: a scan in the same second as the last would
		// be the same alert.
		time.Sleep(1100 * time.Millisecond)
		h.appendLines("access.log", scanLines(ip, time.Now().UTC(), 5))
		waitFor(t, 20*time.Second, what, func() bool { return h.banTTL(ip) > 0 })
	}
	unban := func(h *harness, n float64) {
		if code, body := h.call(adminToken, "DELETE", "/api/v1/bans/"+ip, ""); code != 200 {
			t.Fatalf("unban: %d %v", code, body)
		}
		waitFor(t, 10*time.Second, "the detector to hear of the unban", func() bool {
			return float64(h.app.detector.Load().unbans.Load()) >= n
		})
	}
	h := start()
	scan(h, "the first ban")
	unban(h, 1)
	scan(h, "a ban of the unbanned address's next scan")
	unban(h, 2)
	h.stop()

	// The restarted detector restores the cooldowns of both bans from the
	// alerts stream, and then reads the unbans back before it evaluates
	// anything new.
	h = start() // a log directory of its own: only the new scan is read
	scan(h, "a ban of the next scan after a restart")
}

// TestBacklogAfterDowntimeIsEvaluated: lines written while Vigil was down
// are older than "start minus the window" when it comes back, but they are a
// backlog, not an old log: they must still be evaluated.
func TestBacklogAfterDowntimeIsEvaluated(t *testing.T) {
	rs := redistest.Start(t)
	rulesDir := fastScanRules(t)
	dataDir := t.TempDir()
	h := newHarness(t, rs, dataDir)
	h.cfg.Rules = rulesDir
	h.start()
	h.appendLines("access.log", []string{clf("198.51.100.1", time.Now().UTC(), "GET", "/", 200)})
	waitFor(t, 10*time.Second, "the first event acknowledged", func() bool { return h.app.detectedEvents() == 1 })
	time.Sleep(300 * time.Millisecond)
	h.stop()

	h.appendLines("access.log", scanLines("203.0.113.50", time.Now().UTC(), 5))
	time.Sleep(3 * time.Second) // longer than the window: the scan is now "old"

	h2 := newHarness(t, rs, dataDir)
	h2.logDir, h2.cfg.AccessLogs, h2.cfg.Rules = h.logDir, h.cfg.AccessLogs, rulesDir
	h2.start()
	waitFor(t, 20*time.Second, "ban from the backlog", func() bool { return h2.banTTL("203.0.113.50") > 0 })
}
