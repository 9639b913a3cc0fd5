package index

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/estest"
)

// TestOutage stops Elasticsearch while events and alerts keep coming: they
// wait in JetStream and are all indexed, once, when it is back.
func TestOutage(t *testing.T) {
	if os.Getenv(estest.EnvURL) != "" {
		t.Skip("stopping Elasticsearch needs a self-started node")
	}
	e := newEnv(t)
	_, _ = e.run(t, e.config())
	now := time.Now().UTC()
	target := Target(KindAccess, e.ns)

	e.publishEvents(t, event.SourceAccess, "before", events("before", 100, now))
	e.waitCount(t, target, 100, 30*time.Second)

	e.es.Stop(t)
	e.publishEvents(t, event.SourceAccess, "during-1", events("during1", 150, now))
	e.publishEvents(t, event.SourceAccess, "during-2", events("during2", 150, now))
	alert := event.Alert{ID: "outage-alert", Rule: "http-404-scan", Severity: "high", Key: "203.0.113.1", At: now, FirstSeen: now, Count: 50}
	e.publishJSON(t, bus.AlertSubject(alert.Rule), alert.ID, alert)

	// The indexer notices, retries, and the backlog stays in JetStream.
	deadline := time.Now().Add(30 * time.Second)
	for e.docsMetric(KindAccess, ResultRetried) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no retries counted while Elasticsearch is down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := metricValue(e.reg, "vigil_index_errors_total", map[string]string{"kind": KindAccess}); got == 0 {
		t.Error("vigil_index_errors_total{kind=access} = 0 while Elasticsearch is down")
	}
	c, err := e.js.Consumer(context.Background(), bus.StreamEvents, ConsumerEvents)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumPending+uint64(ci.NumAckPending) < 2 {
		t.Errorf("backlog while Elasticsearch is down: %d pending, %d awaiting ack; want the 2 batches", ci.NumPending, ci.NumAckPending)
	}
	time.Sleep(2 * time.Second) // a few redeliveries while down

	e.es.Restart(t)
	e.waitCount(t, target, 400, 60*time.Second)
	e.waitCount(t, Target(KindAlerts, e.ns), 1, 30*time.Second)
	e.waitAcked(t, bus.StreamEvents, ConsumerEvents, 30*time.Second)
	if n := e.count(t, target); n != 400 {
		t.Fatalf("%s holds %d documents after the outage, want 400", target, n)
	}
	if got := e.docsMetric(KindAccess, ResultDeadLetter); got != 0 {
		t.Errorf("%v documents dead-lettered during an outage, want 0", got)
	}
}
