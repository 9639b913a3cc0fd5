package event

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sample() Event {
	return Event{
		ID: "fd01-1a2b-0:1234", Time: time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC),
		Source: SourceAccess, Dataset: "nginx.access", Outcome: "failure",
		SourceIP: netip.MustParseAddr("2001:db8::7"), Method: "GET",
		Target: "/search?q=\"<script>\"&x=\u2028\x01", Path: "/search", Query: "q=\"<script>\"&x=\u2028\x01",
		HTTPVersion: "1.1", Status: 404, BodyBytes: 0, Referrer: "https://example.com/",
		UserAgent: "Mozilla/5.0 \\ \"quoted\"", UserName: "alice", UserID: "42",
		RequestID: "req-1", Message: "Invalid HTTP_HOST header", Name: "DisallowedHost", JTI: "a1b2",
	}
}

func TestRoundTrip(t *testing.T) {
	csp := Event{Time: time.Unix(0, 0).UTC(), Source: SourceCSP, BodyBytes: -1, CSP: &CSP{
		DocumentURI: "https://shop.example/cart", BlockedURI: "inline", BlockedOrigin: "inline",
		EffectiveDirective: "script-src-elem", Disposition: "enforce", LineNumber: 5, ColumnNumber: 9,
		StatusCode: 200, Format: "reporting-api", AgeMillis: 60126, Sample: "alert(1)", SourceFile: "https://shop.example/cart",
		OriginalPolicy: "default-src 'self'", ViolatedDirective: "script-src-elem",
	}}
	for _, ev := range []Event{sample(), {Time: time.Unix(0, 0).UTC(), Source: SourceApp, BodyBytes: -1}, csp} {
		data := ev.AppendJSON(nil)
		if !json.Valid(data) {
			t.Fatalf("AppendJSON wrote invalid JSON: %s", data)
		}
		var got Event
		if err := got.UnmarshalJSON(data); err != nil {
			t.Fatalf("decoding %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("round trip:\n got %+v\nwant %+v\njson %s", got, ev, data)
		}
	}
}

func TestECSFieldNames(t *testing.T) {
	ev := sample()
	var doc map[string]any
	if err := json.Unmarshal(ev.AppendJSON(nil), &doc); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var v any = doc
		for _, k := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	want := map[string]any{
		"@timestamp": "2026-11-23T10:00:00.123456789Z", "event.id": ev.ID, "event.kind": "event",
		"event.dataset": "nginx.access", "source.ip": "2001:db8::7", "http.request.method": "GET",
		"http.response.status_code": 404.0, "http.response.body.bytes": 0.0, "url.path": "/search",
		"url.original": ev.Target, "user_agent.original": ev.UserAgent, "user.name": "alice", "vigil.source": "access",
	}
	for path, w := range want {
		if g := get(path); !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v, want %#v", path, g, w)
		}
	}
	if cats, _ := get("event.category").([]any); len(cats) != 1 || cats[0] != "web" {
		t.Errorf("event.category = %v", get("event.category"))
	}
}

func TestDecodeForeignDocuments(t *testing.T) {
	// Another producer: different key order, unknown fields, escapes, nulls.
	doc := `{"unknown":{"a":[1,2,{"b":null}],"c":true},"source":{"ip":"::ffff:192.0.2.1","port":443},
	 "url":{"path":"/caf\u00e9/\ud83d\ude00","query":null},"http":{"response":{"status_code":403}},
	 "@timestamp":"2026-11-23T10:00:00+02:00","vigil":{"source":"app"},"event":{"action":"login-failed"}}`
	var ev Event
	if err := ev.UnmarshalJSON([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	if ev.SourceIP.String() != "192.0.2.1" || ev.Path != "/café/😀" || ev.Status != 403 || ev.Source != "app" ||
		ev.Action != "login-failed" || !ev.Time.Equal(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)) || ev.BodyBytes != -1 {
		t.Fatalf("decoded %+v", ev)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, doc := range []string{``, `[]`, `{"source":{"ip":"not-an-ip"}}`, `{"@timestamp":"yesterday"}`,
		`{"http":{"response":{"status_code":"404"}}}`, `{"a":1`, `{"a":tru}`, `{"a":"\x"}`, `{"a":1} x`, `{"a":"` + "\x01" + `"}`} {
		var ev Event
		if err := ev.UnmarshalJSON([]byte(doc)); err == nil {
			t.Errorf("%q decoded without error", doc)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	s := sample()
	f.Add(s.AppendJSON(nil))
	f.Add([]byte(`{"a":[{"b":"\ud800"}],"url":{"original":"\u0000"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev Event
		if err := ev.UnmarshalJSON(data); err != nil {
			return
		}
		// What decodes re-encodes to valid JSON that decodes the same.
		out := ev.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("re-encoding gave invalid JSON: %s", out)
		}
		var again Event
		if err := again.UnmarshalJSON(out); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if again.AppendJSON(nil); string(again.AppendJSON(nil)) != string(out) {
			t.Fatalf("not stable:\n%s\n%s", out, again.AppendJSON(nil))
		}
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	s := sample()
	data := s.AppendJSON(nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ev Event
	for b.Loop() {
		if err := ev.UnmarshalJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	s := sample()
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = s.AppendJSON(buf[:0])
	}
}
