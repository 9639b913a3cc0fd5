package csp

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-soc/vigil/event"
)

// FuzzParse feeds arbitrary content types and bodies to Parse. Seeds are
// the browsers' captures in testdata/chromium and testdata/firefox plus the corpus in
// testdata/fuzz/FuzzParse/ (captures, other browsers' shapes, errors).
func FuzzParse(f *testing.F) {
	for _, name := range captures(f, true) {
		c := readCapture(f, name)
		f.Add(c.contentType, c.body)
	}
	f.Add("application/json", []byte(`[{"csp-report":{"blocked-uri":"self","violated-directive":"style-src a b"}}]`))
	f.Add("application/reports+json", []byte(`[{"type":"deprecation","body":{}},{"type":"csp-violation","age":"7","body":{"documentURL":"about:blank"}}]`))
	filters := []*Filter{nil, {}, {
		DropSchemes:    DefaultFilter().DropSchemes,
		DropHosts:      []string{"*.example.com", "[::1]", "evil.example"},
		Documents:      []string{"https://*.example.org:8443", "http://127.0.0.1:8080", "https://[::1]"},
		KeepAboutBlank: true,
	}}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		orig := string(body)
		for _, flt := range filters {
			res, err := Parse(contentType, body, testMeta, flt)
			if string(body) != orig {
				t.Fatal("Parse modified its input")
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is %T, not *Error", err, err)
				}
				if e.Status != 400 && e.Status != 415 {
					t.Fatalf("Status %d", e.Status)
				}
				if res.Events != nil || res.Filtered != nil || res.Other != nil {
					t.Fatalf("non-empty result with error %v", err)
				}
				continue
			}
			n := len(res.Events)
			for _, k := range res.Filtered {
				n += k
			}
			for _, k := range res.Other {
				n += k
			}
			if n > MaxReports {
				t.Fatalf("%d reports accepted", n)
			}
			for i := range res.Events {
				checkFuzzEvent(t, &res.Events[i])
			}
		}
	})
}

// checkFuzzEvent checks the invariants of any event Parse returns.
func checkFuzzEvent(t *testing.T, ev *event.Event) {
	t.Helper()
	if ev.Source != event.SourceCSP || ev.CSP == nil {
		t.Fatalf("Source %q, CSP %v", ev.Source, ev.CSP)
	}
	c := ev.CSP
	if c.Disposition != "enforce" && c.Disposition != "report" {
		t.Fatalf("Disposition %q", c.Disposition)
	}
	if (c.Disposition == "enforce") != (ev.Outcome == "failure") {
		t.Fatalf("Disposition %q, Outcome %q", c.Disposition, ev.Outcome)
	}
	if c.BlockedOrigin == "" || len(ev.ID) != 64 {
		t.Fatalf("BlockedOrigin %q, ID %q", c.BlockedOrigin, ev.ID)
	}
	if c.LineNumber < 0 || c.ColumnNumber < 0 || c.StatusCode < 0 || c.AgeMillis < 0 || c.AgeMillis > MaxAge.Milliseconds() {
		t.Fatalf("negative or huge number: %+v", c)
	}
	if ev.Time.After(testMeta.Received) || ev.Time.Before(testMeta.Received.Add(-MaxAge)) {
		t.Fatalf("Time %v out of range", ev.Time)
	}
	for _, s := range []struct {
		name  string
		v     string
		limit int
	}{
		{"DocumentURI", c.DocumentURI, maxURI}, {"BlockedURI", c.BlockedURI, maxURI}, {"SourceFile", c.SourceFile, maxURI},
		{"Referrer", ev.Referrer, maxURI}, {"OriginalPolicy", c.OriginalPolicy, maxPolicy}, {"ViolatedDirective", c.ViolatedDirective, maxPolicy},
		{"Sample", c.Sample, maxSample}, {"EffectiveDirective", c.EffectiveDirective, maxDirective}, {"UserAgent", ev.UserAgent, maxUserAgent},
	} {
		if len(s.v) > s.limit {
			t.Fatalf("%s: %d bytes, limit %d", s.name, len(s.v), s.limit)
		}
		if !utf8.ValidString(s.v) {
			t.Fatalf("%s: invalid UTF-8 %q", s.name, s.v)
		}
	}
	if ev.Target != c.DocumentURI || !strings.HasPrefix(c.Format, "report") {
		t.Fatalf("Target %q, DocumentURI %q, Format %q", ev.Target, c.DocumentURI, c.Format)
	}
}
