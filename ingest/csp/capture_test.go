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
		{"chromium/01-001.http", []want{{
			doc: docURIOnly, path: "/page/uri-only", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sourceFile: docURIOnly, line: 5, col: 9,
			policySuffix: "report-uri /csp-report", legacyCapture: true,
		}}},
		{"chromium/01-002.http", []want{{
			doc: docURIOnly, path: "/page/uri-only", blocked: evil, origin: evilOrigin,
			directive: "script-src-elem", legacyCapture: true,
		}}},
		{"chromium/01-003.http", []want{{
			doc: docURIOnly, path: "/page/uri-only", blocked: "data", origin: "data",
			directive: "img-src", sourceFile: docURIOnly, line: 8, col: 31, legacyCapture: true,
		}}},
		{"chromium/03-001.http", []want{{
			doc: docToOnly, path: "/page/s-to-only", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sourceFile: docToOnly, line: 5, col: 9,
			policySuffix: "report-to csp-endpoint",
		}}},
		{"chromium/03-002.http", []want{
			{doc: docToOnly, path: "/page/s-to-only", blocked: "data", origin: "data", directive: "img-src", sourceFile: docToOnly, line: 8, col: 31, age: 101},
			{doc: docToOnly, path: "/page/s-to-only", blocked: evil, origin: evilOrigin, directive: "script-src-elem", age: 101},
		}},
		{"chromium/06-008.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-ro-xorigin", path: "/page/s-ro-xorigin", blocked: "inline", origin: "inline",
			directive: "script-src-elem", disposition: "report", sourceFile: "https://127.0.0.1:8443/page/s-ro-xorigin", line: 5, col: 9, age: 1,
		}}},
		{"chromium/06-010.http", []want{
			{doc: "https://127.0.0.1:8443/page/s-ro-xorigin", path: "/page/s-ro-xorigin", blocked: evil, origin: evilOrigin, directive: "script-src-elem", disposition: "report", age: 115},
			{doc: "https://127.0.0.1:8443/page/s-ro-xorigin", path: "/page/s-ro-xorigin", blocked: "data", origin: "data", directive: "img-src", disposition: "report", sourceFile: "https://127.0.0.1:8443/page/s-ro-xorigin", line: 8, col: 31, age: 90},
		}},
		{"chromium/08-019.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-uri-xorigin-nocors", path: "/page/s-uri-xorigin-nocors", blocked: evil, origin: evilOrigin,
			directive: "script-src-elem", legacyCapture: true, policySuffix: "report-uri https://127.0.0.1:8444/csp-report-nocors",
		}}},
		{"chromium/09-021.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-legacy-report-to", path: "/page/s-legacy-report-to", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sourceFile: "https://127.0.0.1:8443/page/s-legacy-report-to", line: 5, col: 9, age: 2,
			policySuffix: "report-to csp-group",
		}}},
		{"chromium/10-023.http", []want{{
			doc: "http://127.0.0.1:8080/page/eval", path: "/page/eval", blocked: "eval", origin: "eval",
			directive: "script-src", sourceFile: "http://127.0.0.1:8080/page/eval", line: 1, col: 40, legacyCapture: true,
		}}},
		{"chromium/10-024.http", []want{{
			doc: "http://127.0.0.1:8080/page/eval", path: "/page/eval", blocked: "eval", origin: "eval",
			directive: "script-src", sourceFile: "http://127.0.0.1:8080/page/eval", line: 1, col: 93, legacyCapture: true,
		}}},
		{"chromium/11-001.http", []want{{
			doc: "https://127.0.0.1:8443/page/s-sample", path: "/page/s-sample", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sample: `document.title = "inline ran";`, sourceFile: "https://127.0.0.1:8443/page/s-sample", line: 5, col: 9,
		}}},
		{"chromium/12-003.http", []want{{
			doc: "http://127.0.0.1:8080/page/sample-uri", path: "/page/sample-uri", blocked: "inline", origin: "inline",
			directive: "script-src-elem", sample: `document.title = "inline ran";`, sourceFile: "http://127.0.0.1:8080/page/sample-uri", line: 5, col: 9, legacyCapture: true,
		}}},
		{"chromium/13-007.http", []want{
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

// TestFirefoxCaptures parses requests Firefox ESR 153 (headless, default
// preferences) really sent, and checks the fields where its reports differ
// from Chromium's: violated-directive as the directive name, a style
// attribute without a line, status-code 0 for a frame (left out), a frame's
// blocked URI cut to its origin, nulls in Reporting API bodies, and a
// srcdoc frame reported with the document "about" (noise by default).
func TestFirefoxCaptures(t *testing.T) {
	const ua = "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0"
	type fx struct {
		doc, blocked, origin, directive, disposition, sourceFile string
		line, col, status                                        int
		age                                                      int64
	}
	page := func(p string) string { return "http://127.0.0.1:18485/" + p }
	tests := []struct {
		file string
		want []fx
	}{
		{"firefox/01-inline-script.http", []fx{{doc: page("inline-script"), blocked: "inline", origin: "inline", directive: "script-src-elem", sourceFile: page("inline-script"), line: 1, col: 112, status: 200}}},
		{"firefox/02-eval.http", []fx{{doc: page("eval"), blocked: "eval", origin: "eval", directive: "script-src", sourceFile: page("eval.js"), line: 3, col: 11, status: 200}}},
		{"firefox/03-style-attr.http", []fx{{doc: page("style-attr"), blocked: "inline", origin: "inline", directive: "style-src-attr", sourceFile: page("style-attr"), col: 1, status: 200}}},
		{"firefox/04-frame.http", []fx{{doc: page("frame"), blocked: "http://evil.example.com", origin: "http://evil.example.com", directive: "frame-src", col: 1}}},
		{"firefox/05-report-only.http", []fx{{doc: page("report-only"), blocked: "inline", origin: "inline", directive: "style-src-attr", disposition: "report", sourceFile: page("report-only"), col: 1, status: 200}}},
		{"firefox/06-reporting-api.http", []fx{
			{doc: "https://localhost:18486/rapi-https", blocked: "inline", origin: "inline", directive: "script-src-elem", sourceFile: "https://localhost:18486/rapi-https", line: 1, col: 96, status: 200, age: 43},
			{doc: "https://localhost:18486/rapi-https", blocked: "http://evil.example.com/rapi.png", origin: "http://evil.example.com", directive: "img-src", status: 200, age: 11},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := mustParse(t, readCapture(t, tt.file), nil)
			if len(res.Events) != len(tt.want) || len(res.Filtered) != 0 {
				t.Fatalf("%d events, Filtered %v; want %d and none", len(res.Events), res.Filtered, len(tt.want))
			}
			for i, w := range tt.want {
				ev := &res.Events[i]
				checkEvent(t, ev)
				p := ev.CSP
				if w.disposition == "" {
					w.disposition = "enforce"
				}
				violated := w.directive // Firefox sends the name only, as Chromium does
				if p.Format == FormatReportingAPI {
					violated = ""
				}
				got := fx{doc: p.DocumentURI, blocked: p.BlockedURI, origin: p.BlockedOrigin, directive: p.EffectiveDirective, disposition: p.Disposition,
					sourceFile: p.SourceFile, line: p.LineNumber, col: p.ColumnNumber, status: p.StatusCode, age: p.AgeMillis}
				if got != w || p.ViolatedDirective != violated || ev.UserAgent != ua || p.Sample != "" {
					t.Errorf("event %d:\n got %+v violated %q UA %q sample %q\nwant %+v violated %q UA %q", i, got, p.ViolatedDirective, ev.UserAgent, p.Sample, w, violated, ua)
				}
			}
		})
	}
	noise := mustParse(t, readCapture(t, "firefox/noise-07-srcdoc.http"), nil)
	if len(noise.Events) != 0 || noise.Filtered[ReasonAboutDocument] != 1 {
		t.Errorf("srcdoc frame (document \"about\"): %d events, Filtered %v; want it dropped as %s", len(noise.Events), noise.Filtered, ReasonAboutDocument)
	}
	keep := DefaultFilter()
	keep.KeepAboutBlank = true
	if kept := mustParse(t, readCapture(t, "firefox/noise-07-srcdoc.http"), &keep); len(kept.Events) != 1 || kept.Events[0].CSP.BlockedURI != "inline" {
		t.Errorf("srcdoc frame with KeepAboutBlank: %d events, want its inline script", len(kept.Events))
	}
}

// TestAllCaptures parses every capture: all are violations, none is noise
// under the default filter, and IDs are unique across them.
func TestAllCaptures(t *testing.T) {
	ids := map[string]string{}
	total := 0
	for _, name := range captures(t, false) {
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
	if total != 39 {
		t.Errorf("%d events from the captures, want 39 (32 from Chromium, 7 from Firefox)", total)
	}
}

// TestReportID: an id is the same when the same request is parsed again,
// and differs for the same report in another request, from another
// client or in another second, and for reports alike to the byte in one
// request (Firefox sends such for distinct violations).
func TestReportID(t *testing.T) {
	c := readCapture(t, "chromium/01-001.http")
	id := func(meta Meta) string {
		res, err := Parse(c.contentType, c.body, meta, nil)
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("Parse: %v, %d events", err, len(res.Events))
		}
		return res.Events[0].ID
	}
	meta := testMeta
	meta.Request = "r1"
	base := id(meta)
	if got := id(meta); got != base {
		t.Errorf("the same request parsed again: ID %s, want %s", got, base)
	}
	unmapped := meta
	unmapped.ClientIP = netip.MustParseAddr("127.0.0.1")
	if got := id(unmapped); got != base {
		t.Errorf("unmapped client address: ID %s, want %s", got, base)
	}
	later, other, again := meta, meta, meta
	later.Received = meta.Received.Add(time.Second)
	other.ClientIP = netip.MustParseAddr("10.0.0.1")
	again.Request = "r2"
	for name, m := range map[string]Meta{"next second": later, "other client": other, "another request": again} {
		if got := id(m); got == base {
			t.Errorf("%s: ID unchanged", name)
		}
	}
	twin := `{"csp-report":{"document-uri":"https://shop.example/","effective-directive":"style-src-attr","blocked-uri":"inline","disposition":"enforce"}}`
	res, err := Parse("application/csp-report", []byte("["+twin+","+twin+"]"), meta, nil)
	if err != nil || len(res.Events) != 2 {
		t.Fatalf("two identical reports in one body: %v, %d events", err, len(res.Events))
	}
	if res.Events[0].ID == res.Events[1].ID {
		t.Errorf("two identical reports in one body: both have id %s, want two", res.Events[0].ID)
	}
}
