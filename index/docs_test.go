package index

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
)

// TestSplitEvents checks the documents of an events batch: ids from
// event.id or a hash, non-JSON lines dead at once, unknown sources dead.
func TestSplitEvents(t *testing.T) {
	evs := events("e", 2, time.Unix(1700000000, 0))
	evs[1].ID = ""
	body := string(evs[0].AppendJSON(nil)) + "\n\n" + string(evs[1].AppendJSON(nil)) + "\n" +
		`{"event":{"id":"p"},"http":{"response":{"status_code":"abc"}}}` + "\n[1,2]\nnope"
	var u unit
	u.split(bus.StreamEvents, "vigil.events.access.3", []byte(body), time.Now(), "prod")
	if len(u.docs) != 5 {
		t.Fatalf("%d documents, want 5", len(u.docs))
	}
	want := []struct {
		id    string
		line  int
		state int
	}{{"e-0", 1, docPending}, {"", 3, docPending}, {"p", 4, docPending}, {"", 5, docDead}, {"", 6, docDead}}
	for i, w := range want {
		d := u.docs[i]
		if d.target != "logs-vigil.access-prod" || d.kind != KindAccess || d.line != w.line || d.state != w.state {
			t.Errorf("doc %d: %+v", i, d)
		}
		if w.id != "" && d.id != w.id || w.id == "" && !strings.HasPrefix(d.id, "sha256-") {
			t.Errorf("doc %d: id %q, want %q", i, d.id, w.id)
		}
	}
	// The hash is stable: a redelivery gets the same id.
	var again unit
	again.split(bus.StreamEvents, "vigil.events.access.3", []byte(body), time.Now(), "prod")
	if again.docs[1].id != u.docs[1].id {
		t.Error("hash ids differ between deliveries")
	}

	var unknown unit
	unknown.split(bus.StreamEvents, "vigil.events.ftp.0", evs[0].AppendJSON(nil), time.Now(), "prod")
	if d := unknown.docs[0]; d.kind != kindUnknown || d.state != docDead || !strings.Contains(string(d.err), "unknown_source") {
		t.Errorf("event of an unknown source: %+v", d)
	}
}

// TestSplitRecords checks that alerts get @timestamp from "at", records
// without a time get the stored time, and multi-line JSON is compacted.
func TestSplitRecords(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	data, _ := json.MarshalIndent(event.Alert{ID: "a1", Rule: "r", At: at}, "", "  ")
	var u unit
	u.split(bus.StreamAlerts, "vigil.alerts.r", data, time.Now(), "default")
	d := u.docs[0]
	if d.id != "a1" || d.target != "logs-vigil.alerts-default" || strings.ContainsAny(string(d.body), "\n") {
		t.Fatalf("alert doc: %+v %s", d, d.body)
	}
	var got struct {
		Timestamp time.Time `json:"@timestamp"`
		At        time.Time `json:"at"`
		Rule      string    `json:"rule"`
	}
	if err := json.Unmarshal(d.body, &got); err != nil || !got.Timestamp.Equal(at) || !got.At.Equal(at) || got.Rule != "r" {
		t.Fatalf("alert body %s: %v %+v", d.body, err, got)
	}

	stored := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, in := range []string{`{}`, `{"id":"x","at":5}`} {
		var r unit
		r.split(bus.StreamAudit, "vigil.audit.ban", []byte(in), stored, "default")
		var v struct {
			Timestamp time.Time `json:"@timestamp"`
		}
		if err := json.Unmarshal(r.docs[0].body, &v); err != nil || !v.Timestamp.Equal(stored) {
			t.Errorf("%s became %s", in, r.docs[0].body)
		}
	}
	audit, _ := json.Marshal(event.Audit{ID: "au", Time: at, Action: "ban"})
	var a unit
	a.split(bus.StreamAudit, "vigil.audit.ban", audit, stored, "default")
	if string(a.docs[0].body) != string(audit) {
		t.Errorf("audit entry with @timestamp changed: %s", a.docs[0].body)
	}
	var bad unit
	bad.split(bus.StreamAlerts, "vigil.alerts.r", []byte("[1]"), stored, "default")
	if bad.docs[0].state != docDead {
		t.Errorf("a non-object alert is not dead: %+v", bad.docs[0])
	}
}

// TestClassify checks which bulk item statuses are retried.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		op     string
		status int
		want   int
	}{
		{"index", 201, docDone}, {"index", 200, docDone}, {"create", 201, docDone},
		{"create", 409, docDone}, {"index", 409, docDead},
		{"index", 429, docRetry}, {"index", 500, docRetry}, {"index", 503, docRetry}, {"index", 404, docRetry},
		{"index", 401, docRetry}, {"index", 403, docRetry},
		{"index", 400, docDead}, {"create", 400, docDead}, {"index", 413, docDead},
	} {
		if got := classify(c.op, c.status); got != c.want {
			t.Errorf("classify(%s, %d) = %d, want %d", c.op, c.status, got, c.want)
		}
	}
}

// TestValidate checks that every bad field is reported, named as in the
// config file, and that secrets are redacted.
func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := Config{
		Addresses: []string{"es:9200"}, Namespace: "Prod-1", Mode: "cluster", RolloverMaxSize: "big",
		FlushInterval: -time.Second, Workers: -1, CACert: "ca.pem", CertificateFingerprint: "ab",
	}.Validate()
	for _, key := range []string{"es_addresses", "es_namespace", "es_mode", "es_rollover_max_size", "es_flush_interval", "es_workers", "es_certificate_fingerprint"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("no error for %s in %v", key, err)
		}
	}
	r := Config{APIKey: "k", Username: "u", Password: "p"}.Redacted()
	if r.APIKey != "<secret>" || r.Password != "<secret>" || r.Username != "u" {
		t.Errorf("Redacted: %+v", r)
	}
}

// TestTemplateBody checks the data stream and index variants of a
// template.
func TestTemplateBody(t *testing.T) {
	cfg := Config{DataRetention: 90 * 24 * time.Hour}.withDefaults()
	ds, _ := json.Marshal(cfg.templateBody(KindAccess, ModeDataStream))
	for _, want := range []string{`"data_stream":{}`, `"lifecycle":{"data_retention":"7776000s","enabled":true}`, `"index_patterns":["logs-vigil.access-*"]`, `"priority":501`} {
		if !strings.Contains(string(ds), want) {
			t.Errorf("data stream template lacks %s: %s", want, ds)
		}
	}
	cfg.ILMPolicy = "logs"
	ds, _ = json.Marshal(cfg.templateBody(KindAccess, ModeDataStream))
	if !strings.Contains(string(ds), `"index.lifecycle.name":"logs"`) || strings.Contains(string(ds), "lifecycle\":{") {
		t.Errorf("data stream template with an ILM policy: %s", ds)
	}
	ix, _ := json.Marshal(cfg.templateBody(KindAlerts, ModeIndex))
	if strings.Contains(string(ix), "data_stream") || strings.Contains(string(ix), "lifecycle") {
		t.Errorf("index template has data stream settings: %s", ix)
	}
	if Mapping("nope") != nil || !json.Valid(Mapping(KindAudit)) {
		t.Error("Mapping")
	}
	if got := TemplateNames(); len(got) != 5 || got[0] != "logs-vigil.access" || got[4] != "logs-vigil.audit" {
		t.Errorf("TemplateNames() = %v", got)
	}
}

// FuzzSplit feeds arbitrary message bodies to split: it must not panic,
// and every document it would send is one line of JSON with an _id.
func FuzzSplit(f *testing.F) {
	ev := events("f", 1, time.Unix(1700000000, 0))
	f.Add(string(ev[0].AppendJSON(nil)), true)
	f.Add(`{"event":{"id":"x"},"http":{"response":{"status_code":"abc"}}}`+"\nnope\n", true)
	f.Add(`{"id":"a","at":"2026-01-02T03:04:05Z","rule":"r"}`, false)
	f.Add("{\n \"id\": \"a\"\n}", false)
	f.Add(`{}`, false)
	f.Fuzz(func(t *testing.T, data string, isEvents bool) {
		stream, subject := bus.StreamAlerts, "vigil.alerts.r"
		if isEvents {
			stream, subject = bus.StreamEvents, "vigil.events.access.0"
		}
		var u unit
		u.split(stream, subject, []byte(data), time.Unix(0, 0), "default")
		for _, d := range u.docs {
			if d.id == "" || len(d.id) > maxIDBytes {
				t.Fatalf("bad _id %q", d.id)
			}
			if d.state == docDead {
				continue
			}
			if !json.Valid(d.body) || d.body[0] != '{' || strings.ContainsAny(string(d.body), "\n\r") {
				t.Fatalf("would send %q", d.body)
			}
		}
	})
}

// BenchmarkSplitEvents measures turning a 500-event batch into documents.
func BenchmarkSplitEvents(b *testing.B) {
	batch := bus.Batch{Subject: "vigil.events.access.0"}
	evs := events("b", 500, time.Unix(1700000000, 0))
	for i := range evs {
		batch.Add(&evs[i])
	}
	b.SetBytes(int64(len(batch.Buf)))
	b.ReportAllocs()
	for b.Loop() {
		var u unit
		u.split(bus.StreamEvents, batch.Subject, batch.Buf, time.Time{}, "default")
	}
}
