package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest"
	"github.com/vigil-soc/vigil/internal/natstest"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// TestReadyzStalledPublisher: while JetStream does not store what the
// collectors receive (a frozen or full server that still answers its
// connection), /readyz says so and answers 503, as the collectors answer
// their clients; once it stores again, /readyz is 200.
func TestReadyzStalledPublisher(t *testing.T) {
	js := natstest.Start(t, "readyz", false) // no streams yet: nothing is stored
	pub := ingest.NewPublisher(js, 1, ingest.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	pub.StoreTimeout = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { cancel(); <-done }()

	a := &App{log: slog.New(slog.DiscardHandler)}
	a.ready.Store(true)
	a.publisher.Store(pub)
	readyz := func() (int, map[string]string) {
		rec := httptest.NewRecorder()
		a.readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		body, _ := io.ReadAll(rec.Body)
		var r struct{ Checks map[string]string }
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return rec.Code, r.Checks
	}

	ev := event.Event{ID: "r1", Time: time.Now(), Source: event.SourceCSP, Dataset: "csp.violation", BodyBytes: -1, CSP: &event.CSP{BlockedURI: "https://evil.example/x.js"}}
	if err := pub.Publish(context.Background(), event.SourceCSP, []event.Event{ev}); !errors.Is(err, ingest.ErrSlow) {
		t.Fatalf("Publish without a stream: %v, want ErrSlow", err)
	}
	// The request's own timeout and the group's stall end together; the
	// stall is what /readyz reports.
	waitFor(t, 5*time.Second, "the stall", pub.Stalled)
	if code, checks := readyz(); code != http.StatusServiceUnavailable || !strings.HasPrefix(checks["publish"], "stalled") {
		t.Fatalf("/readyz while stalled: %d %v, want 503 and publish stalled", code, checks)
	}
	natstest.EnsureStreams(t, js)
	waitFor(t, 20*time.Second, "the stall to end", func() bool { return !pub.Stalled() })
	if _, checks := readyz(); checks["publish"] != "ok" {
		t.Fatalf("/readyz once stored again: %v, want publish ok", checks)
	}
}

// TestReadyzDetectorWaitsForEvents: a lone detector that has seen no event
// yet is not called a standby (no process holds the consumer until the
// server pins one, at the first events); once events come it is active.
func TestReadyzDetectorWaitsForEvents(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.start()
	detector := func() string {
		resp, err := http.Get(h.adminURL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct{ Checks map[string]string }
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/readyz: %d %v", resp.StatusCode, err)
		}
		return r.Checks["detector"]
	}
	if got := detector(); !strings.HasPrefix(got, "waiting") {
		t.Fatalf("detector before any event: %q, want waiting", got)
	}
	h.appendLines("access.log", []string{clf("198.51.100.1", time.Now().UTC(), "GET", "/", 200)})
	waitFor(t, 20*time.Second, "the detector to be active", func() bool { return detector() == "active" })
}
