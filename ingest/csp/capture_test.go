package csp

import (
	"net/netip"
	"testing"
	"time"
)

// want is the part of a normalised violation a capture test checks.
type want struct {
	doc, path     string
	blocked       string
	origin        string
	directive     string // effective and, for report-uri, violated
	disposition   string
	sample        string
	sourceFile    string
	line, col     int
	age           int64
	policySuffix  string
	legacyCapture bool
}

const (
	docURIOnly = "http://127.0.0.1:8080/page/uri-only"
	docToOnly  = "https://127.0.0.1:8443/page/s-to-only"
	evil       = "http://127.0.0.1:8082/evil.js"
	evilOrigin = "http://127.0.0.1:8082"
)

// TestChromiumCaptures parses requests Chromium 156 really sent and checks
// every normalised field.
func TestChromiumCaptures(t *testing.T) {
	tests := []struct {
		file string
		want []want
	}{
		{"01-001.http", []want{{
			doc: docURIOnly, path: "/page/uri-only", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sourceFile: docURIOnly, line: 5, col: 9,
			policySuffix: "report-uri /csp-report", legacyCapture: true,
		}}},
		{"01-002.http", []want{{
			doc: docURIOnly, path: "/page/uri-only", blocked: evil, origin: evilOrigin,
			directive: "script-src-elem", legacyCapture: true,
		}}},
		{"01-003.http", []want{{
			doc: docURIOnly, path: "/page/uri-only", blocked: "data", origin: "data",
			directive: "img-src", sourceFile: docURIOnly, line: 8, col: 31, legacyCapture: true,
		}}},
		{"03-001.http", []want{{
			doc: docToOnly, path: "/page/s-to-only", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sourceFile: docToOnly, line: 5, col: 9,
			policySuffix: "report-to csp-endpoint",
		}}},
		{"03-002.http", []want{
			{doc: docToOnly, path: "/page/s-to-only", blocked: "data", origin: "data", directive: "img-src", sourceFile: docToOnly, line: 8, col: 31, age: 101},
			{doc: docToOnly, path: "/page/s-to-only", blocked: evil, origin: evilOrigin, directive: "script-src-elem", age: 101},
		}},
		{"06-008.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-ro-xorigin", path: "/page/s-ro-xorigin", blocked: "inline", origin: "inline",
			directive: "script-src-elem", disposition: "report", sourceFile: "https://127.0.0.1:8443/page/s-ro-xorigin", line: 5, col: 9, age: 1,
		}}},
		{"06-010.http", []want{
			{doc: "https://127.0.0.1:8443/page/s-ro-xorigin", path: "/page/s-ro-xorigin", blocked: evil, origin: evilOrigin, directive: "script-src-elem", disposition: "report", age: 115},
			{doc: "https://127.0.0.1:8443/page/s-ro-xorigin", path: "/page/s-ro-xorigin", blocked: "data", origin: "data", directive: "img-src", disposition: "report", sourceFile: "https://127.0.0.1:8443/page/s-ro-xorigin", line: 8, col: 31, age: 90},
		}},
		{"08-019.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-uri-xorigin-nocors", path: "/page/s-uri-xorigin-nocors", blocked: evil, origin: evilOrigin,
			directive: "script-src-elem", legacyCapture: true, policySuffix: "report-uri https://127.0.0.1:8444/csp-report-nocors",
		}}},
		{"09-021.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-legacy-report-to", path: "/page/s-legacy-report-to", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sourceFile: "https://127.0.0.1:8443/page/s-legacy-report-to", line: 5, col: 9, age: 2,
			policySuffix: "report-to csp-group",
		}}},
		{"10-023.http", []want{{
			doc: "http://127.0.0.1:8080/page/eval", path: "/page/eval", blocked: "eval", origin: "eval",
			directive: "script-src", sourceFile: "http://127.0.0.1:8080/page/eval", line: 1, col: 40, legacyCapture: true,
		}}},
		{"10-024.http", []want{{
			doc: "http://127.0.0.1:8080/page/eval", path: "/page/eval", blocked: "eval", origin: "eval",
			directive: "script-src", sourceFile: "http://127.0.0.1:8080/page/eval", line: 1, col: 93, legacyCapture: true,
		}}},
		{"11-001.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-sample", path: "/page/s-sample", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sample: `document.title = "inline ran";`, sourceFile: "https://127.0.0.1:8443/page/s-sample", line: 5, col: 9,
		}}},
		{"12-003.http", []want{{
			doc: "http://127.0.0.1:8080/page/sample-uri", path: "/page/sample-uri", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sample: `document.title = "inline ran";`, sourceFile: "http://127.0.0.1:8080/page/sample-uri", line: 5, col: 9, legacyCapture: true,
		}}},
		{"13-007.http", []want{
			{doc: docToOnly, path: "/page/s-to-only", blocked: "data", origin: "data", directive: "img-src", sourceFile: docToOnly, line: 8, col: 31, age: 60126},
			{doc: docToOnly, path: "/page/s-to-only", blocked: evil, origin: evilOrigin, directive: "script-src-elem", age: 60126},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := readCapture(t, tt.file)
			res := mustParse(t, c, nil)
			if len(res.Filtered) != 0 || len(res.Other) != 0 {
				t.Errorf("Filtered %v, Other %v; want none", res.Filtered, res.Other)
			}
			if len(res.Events) != len(tt.want) {
				t.Fatalf("%d events, want %d", len(res.Events), len(tt.want))
			}
			for i, w := range tt.want {
				ev := &res.Events[i]
				checkEvent(t, ev)
				p := ev.CSP
				if w.disposition == "" {
					w.disposition = "enforce"
				}
				format := FormatReportingAPI
				wantViolated := ""
				if w.legacyCapture {
					format = FormatReportURI
					wantViolated = w.directive // Chromium sends the directive name only
				}
				checks := []struct {
					name      string
					got, want any
				}{
					{"DocumentURI", p.DocumentURI, w.doc},
					{"Target", ev.Target, w.doc},
					{"Path", ev.Path, w.path},
					{"BlockedURI", p.BlockedURI, w.blocked},
					{"BlockedOrigin", p.BlockedOrigin, w.origin},
					{"EffectiveDirective", p.EffectiveDirective, w.directive},
					{"ViolatedDirective", p.ViolatedDirective, wantViolated},
					{"Disposition", p.Disposition, w.disposition},
					{"Sample", p.Sample, w.sample},
					{"SourceFile", p.SourceFile, w.sourceFile},
					{"LineNumber", p.LineNumber, w.line},
					{"ColumnNumber", p.ColumnNumber, w.col},
					{"StatusCode", p.StatusCode, 200},
					{"Format", p.Format, format},
					{"AgeMillis", p.AgeMillis, w.age},
					{"Time", ev.Time, testMeta.Received.Add(-time.Duration(w.age) * time.Millisecond)},
					{"SourceIP", ev.SourceIP, netip.MustParseAddr("127.0.0.1")},
					{"UserAgent", ev.UserAgent, chromeUA},
					{"Referrer", ev.Referrer, ""},
				}
				for _, ck := range checks {
					if ck.got != ck.want {
						t.Errorf("event %d: %s = %#v, want %#v", i, ck.name, ck.got, ck.want)
					}
				}
				if len(p.OriginalPolicy) < len(w.policySuffix) || p.OriginalPolicy[len(p.OriginalPolicy)-len(w.policySuffix):] != w.policySuffix {
					t.Errorf("event %d: OriginalPolicy %q does not end in %q", i, p.OriginalPolicy, w.policySuffix)
				}
			}
		})
	}
}

// TestAllCaptures parses every capture: all are violations, none is noise
// under the default filter, and IDs are unique across them.
func TestAllCaptures(t *testing.T) {
	ids := map[string]string{}
	total := 0
	for _, name := range captures(t) {
		c := readCapture(t, name)
		res := mustParse(t, c, nil)
		if len(res.Events) == 0 || len(res.Filtered) != 0 || len(res.Other) != 0 {
			t.Errorf("%s: %d events, Filtered %v, Other %v", name, len(res.Events), res.Filtered, res.Other)
		}
		for i := range res.Events {
			checkEvent(t, &res.Events[i])
			if prev, dup := ids[res.Events[i].ID]; dup {
				t.Errorf("%s: event %d has the ID of %s", name, i, prev)
			}
			ids[res.Events[i].ID] = name
			total++
		}
	}
	if total != 32 {
		t.Errorf("%d events from the captures, want 32", total)
	}
}

// TestReportID checks that a replayed report keeps its ID and that the
// client and the second of arrival are part of it.
func TestReportID(t *testing.T) {
	c := readCapture(t, "01-001.http")
	id := func(meta Meta) string {
		res, err := Parse(c.contentType, c.body, meta, nil)
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("Parse: %v, %d events", err, len(res.Events))
		}
		return res.Events[0].ID
	}
	base := id(testMeta)
	sameSecond := testMeta
	sameSecond.Received = testMeta.Received.Add(100 * time.Millisecond)
	if got := id(sameSecond); got != base {
		t.Errorf("replay in the same second: ID %s, want %s", got, base)
	}
	unmapped := testMeta
	unmapped.ClientIP = netip.MustParseAddr("127.0.0.1")
	if got := id(unmapped); got != base {
		t.Errorf("unmapped client address: ID %s, want %s", got, base)
	}
	later := testMeta
	later.Received = testMeta.Received.Add(time.Second)
	other := testMeta
	other.ClientIP = netip.MustParseAddr("10.0.0.1")
	for name, m := range map[string]Meta{"next second": later, "other client": other} {
		if got := id(m); got == base {
			t.Errorf("%s: ID unchanged", name)
		}
	}
}
