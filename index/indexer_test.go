package index

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
)

// fieldMapping returns the mapping of field in target's indices (the first
// index's), such as {"type":"ip"}, or nil when the field is not mapped.
func (e *env) fieldMapping(t *testing.T, target, field string) map[string]any {
	t.Helper()
	status, body := e.es.Request(t, "GET", "/"+target+"/_mapping/field/"+field, nil)
	if status != 200 {
		t.Fatalf("GET %s/_mapping/field/%s: %d %s", target, field, status, body)
	}
	var r map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]map[string]any `json:"mapping"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	for _, idx := range r {
		if f, ok := idx.Mappings[field]; ok {
			for _, m := range f.Mapping {
				return m
			}
		}
	}
	return nil
}

// fieldType returns the type of field in target, "" when unmapped.
func (e *env) fieldType(t *testing.T, target, field string) string {
	t.Helper()
	s, _ := e.fieldMapping(t, target, field)["type"].(string)
	return s
}

// search returns the _source of the documents of target with id.
func (e *env) source(t *testing.T, target, id string) map[string]any {
	t.Helper()
	status, body := e.es.Request(t, "POST", "/"+target+"/_search", map[string]any{"query": map[string]any{"ids": map[string]any{"values": []string{id}}}})
	if status != 200 {
		t.Fatalf("search %s: %d %s", target, status, body)
	}
	var r struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Hits.Hits) != 1 {
		t.Fatalf("%s: %d documents with _id %s, want 1: %s", target, len(r.Hits.Hits), id, body)
	}
	return r.Hits.Hits[0].Source
}

// waitAcked waits until the durable consumer on stream has acknowledged
// every message in it.
func (e *env) waitAcked(t *testing.T, stream, durable string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		s, err := e.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		si, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Consumer(ctx, durable)
		if err == nil {
			ci, err := c.Info(ctx)
			if err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream == si.State.LastSeq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s has not acknowledged all of %s after %s", durable, stream, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIndexAllKinds indexes documents of every kind and checks they arrive
// with the template's mappings.
func TestIndexAllKinds(t *testing.T) {
	e := newEnv(t)
	_, _ = e.run(t, e.config())
	now := time.Now().UTC().Truncate(time.Millisecond)

	e.publishEvents(t, event.SourceAccess, "access-1", events("acc", 3, now))
	e.publishEvents(t, event.SourceCSP, "csp-1", []event.Event{{
		ID: "csp-1", Time: now, Source: event.SourceCSP, Dataset: "vigil.csp", Outcome: "failure",
		SourceIP: netip.MustParseAddr("2001:db8::7"), Target: "https://shop.example/cart", UserAgent: "Mozilla/5.0",
		CSP: &event.CSP{
			DocumentURI: "https://shop.example/cart", BlockedURI: "https://evil.example/x.js", BlockedOrigin: "https://evil.example",
			EffectiveDirective: "script-src-elem", Disposition: "enforce", SourceFile: "https://shop.example/app.js",
			LineNumber: 12, ColumnNumber: 7, StatusCode: 200, Format: "reporting-api", AgeMillis: 1500,
		},
	}})
	e.publishEvents(t, event.SourceApp, "app-1", []event.Event{{
		ID: "app-1", Time: now, Source: event.SourceApp, Action: "login-failed", Outcome: "failure",
		SourceIP: netip.MustParseAddr("198.51.100.9"), UserName: "alice", UserID: "42", JTI: "jti-1", Name: "DisallowedHost",
		Message: "failed login for alice", BodyBytes: -1,
	}})
	alert := event.Alert{
		ID: "alert-1", Rule: "http-404-scan", Severity: "high", KeyField: "source.ip", Key: "203.0.113.1",
		At: now, FirstSeen: now.Add(-30 * time.Second), Window: event.Duration(time.Minute), Count: 50,
		Actions:  []event.ActionSpec{{Kind: event.ActionBan, Duration: event.Duration(72 * time.Hour)}},
		Evidence: []string{"/wp-admin/0.php", "/wp-admin/1.php"}, Source: event.SourceAccess,
	}
	e.publishJSON(t, bus.AlertSubject(alert.Rule), alert.ID, alert)
	audit := event.Audit{
		ID: "audit-1", Time: now, Action: event.ActionBan, Target: "203.0.113.1", Actor: "rule:http-404-scan",
		Reason: "50 distinct 404 paths", AlertID: alert.ID, Result: "applied", Duration: event.Duration(72 * time.Hour),
		Expires: now.Add(72 * time.Hour), Offence: 1,
	}
	e.publishJSON(t, bus.AuditSubject(audit.Action), audit.ID, audit)

	for kind, n := range map[string]int{KindAccess: 3, KindCSP: 1, KindApp: 1, KindAlerts: 1, KindAudit: 1} {
		e.waitCount(t, Target(kind, e.ns), n, 30*time.Second)
	}

	for _, c := range []struct{ kind, field, typ string }{
		{KindAccess, "@timestamp", "date"},
		{KindAccess, "source.ip", "ip"},
		{KindAccess, "http.response.status_code", "long"},
		{KindAccess, "http.response.body.bytes", "long"},
		{KindAccess, "url.original", "keyword"},
		{KindAccess, "url.original.text", "text"},
		{KindAccess, "url.path", "keyword"},
		{KindAccess, "user_agent.original", "keyword"},
		{KindAccess, "user_agent.original.text", "text"},
		{KindAccess, "event.outcome", "keyword"},
		{KindAccess, "event.category", "keyword"},
		{KindCSP, "vigil.csp.blocked_origin", "keyword"},
		{KindCSP, "vigil.csp.line_number", "long"},
		{KindCSP, "vigil.csp.age_ms", "long"},
		{KindCSP, "source.ip", "ip"},
		{KindApp, "user.name", "keyword"},
		{KindApp, "user.id", "keyword"},
		{KindApp, "vigil.token.jti", "keyword"},
		{KindApp, "vigil.app.name", "keyword"},
		{KindApp, "message", "text"},
		{KindAlerts, "@timestamp", "date"},
		{KindAlerts, "at", "date"},
		{KindAlerts, "first_seen", "date"},
		{KindAlerts, "count", "long"},
		{KindAlerts, "allowlisted", "boolean"},
		{KindAlerts, "severity", "keyword"},
		{KindAlerts, "actions.kind", "keyword"},
		{KindAlerts, "evidence", "keyword"},
		{KindAlerts, "evidence.text", "text"},
		{KindAudit, "@timestamp", "date"},
		{KindAudit, "expires", "date"},
		{KindAudit, "offence", "long"},
		{KindAudit, "result", "keyword"},
	} {
		if got := e.fieldType(t, Target(c.kind, e.ns), c.field); got != c.typ {
			t.Errorf("%s: %s is mapped as %q, want %q", Target(c.kind, e.ns), c.field, got, c.typ)
		}
	}

	// Alerts get @timestamp = at; the ids are the alert's and the event's.
	src := e.source(t, Target(KindAlerts, e.ns), alert.ID)
	if src["@timestamp"] != src["at"] || src["at"] == nil {
		t.Errorf("alert @timestamp %v, at %v: want equal", src["@timestamp"], src["at"])
	}
	if src := e.source(t, Target(KindAccess, e.ns), "acc-2"); !strings.HasPrefix(src["url"].(map[string]any)["original"].(string), "/wp-admin/2.php") {
		t.Errorf("access event acc-2: %v", src)
	}
	if got := e.docsMetric(KindAccess, ResultIndexed); got != 3 {
		t.Errorf("vigil_index_documents_total{kind=access,result=indexed} = %v, want 3", got)
	}
	if got := metricValue(e.reg, "vigil_index_bulk_seconds", nil); got == 0 {
		t.Error("vigil_index_bulk_seconds has no observations")
	}
}

// TestRedeliveryNoDuplicates sends the same documents again, in a new
// message and by replaying the whole stream to a new consumer: the indices
// keep one copy of each.
func TestRedeliveryNoDuplicates(t *testing.T) {
	e := newEnv(t)
	_, stop := e.run(t, e.config())
	now := time.Now().UTC()
	evs := events("dup", 200, now)
	target := Target(KindAccess, e.ns)

	e.publishEvents(t, event.SourceAccess, "batch-1", evs)
	e.waitCount(t, target, 200, 30*time.Second)

	// The same batch again under another message id (a collector that
	// re-read its input after losing its checkpoint), plus one new event.
	e.publishEvents(t, event.SourceAccess, "batch-1-again", append(evs[:100:100], events("new", 1, now)...))
	e.waitAcked(t, bus.StreamEvents, ConsumerEvents, 30*time.Second)
	e.waitCount(t, target, 201, 5*time.Second)

	// Every message delivered again: a new consumer replays the stream.
	stop()
	if err := e.js.DeleteConsumer(context.Background(), bus.StreamEvents, ConsumerEvents); err != nil {
		t.Fatal(err)
	}
	_, _ = e.run(t, e.config())
	e.waitAcked(t, bus.StreamEvents, ConsumerEvents, 30*time.Second)
	if n := e.count(t, target); n != 201 {
		t.Fatalf("after replaying the stream %s holds %d documents, want 201", target, n)
	}
	if got := e.docsMetric(KindAccess, ResultIndexed); got < 200+101+301 {
		t.Errorf("indexed %v documents, want every delivery counted (>= 602)", got)
	}
}

// TestPoisonDocument sends a batch with a document whose status code is a
// string and a line that is not JSON: both land in VIGIL_DEADLETTER with
// their error, the rest of the batch is indexed and the message is
// acknowledged.
func TestPoisonDocument(t *testing.T) {
	e := newEnv(t)
	_, _ = e.run(t, e.config())
	good := events("good", 2, time.Now().UTC())
	body := string(good[0].AppendJSON(nil)) + "\n" +
		`{"@timestamp":"2026-01-02T03:04:05Z","event":{"id":"poison-1","kind":"event"},"vigil":{"source":"access"},"http":{"response":{"status_code":"abc"}}}` + "\n" +
		"this is not json\n" +
		string(good[1].AppendJSON(nil)) + "\n"
	e.publishRaw(t, event.SourceAccess, "poison-batch", body)

	e.waitCount(t, Target(KindAccess, e.ns), 2, 30*time.Second)
	e.waitAcked(t, bus.StreamEvents, ConsumerEvents, 30*time.Second)

	ctx := context.Background()
	dls, err := e.js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dls.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("%s holds %d messages, want 2", StreamDeadLetter, info.State.Msgs)
	}
	byLine := map[int]DeadLetter{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := dls.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != DeadLetterSubject(KindAccess) {
			t.Errorf("dead letter on %s, want %s", m.Subject, DeadLetterSubject(KindAccess))
		}
		var dl DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatal(err)
		}
		byLine[dl.Line] = dl
	}
	poison := byLine[2]
	if poison.ID != "poison-1" || poison.Status != 400 || poison.Stream != bus.StreamEvents || poison.Sequence == 0 ||
		!strings.Contains(string(poison.Error), "status_code") || !strings.Contains(string(poison.Document), `"abc"`) {
		t.Errorf("poison document's dead letter: %+v", poison)
	}
	if bad := byLine[3]; bad.Raw != "this is not json" || !strings.Contains(string(bad.Error), "invalid_json") {
		t.Errorf("non-JSON line's dead letter: %+v", bad)
	}
	if got := e.docsMetric(KindAccess, ResultDeadLetter); got != 2 {
		t.Errorf("vigil_index_documents_total{kind=access,result=deadletter} = %v, want 2", got)
	}
	if got := e.docsMetric(KindAccess, ResultIndexed); got != 2 {
		t.Errorf("vigil_index_documents_total{kind=access,result=indexed} = %v, want 2", got)
	}
}
