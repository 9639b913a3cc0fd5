package csp

import (
	"strings"
	"testing"
	"time"
)

// parseOne parses body, expects exactly one kept event and returns it.
func parseOne(t *testing.T, contentType, body string, f *Filter) (ev eventView) {
	t.Helper()
	res, err := Parse(contentType, []byte(body), testMeta, f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(res.Events) != 1 {
		t.Fatalf("%d events (Filtered %v, Other %v), want 1", len(res.Events), res.Filtered, res.Other)
	}
	checkEvent(t, &res.Events[0])
	e := res.Events[0]
	return eventView{
		Doc: e.CSP.DocumentURI, Path: e.Path, Query: e.Query, Blocked: e.CSP.BlockedURI, Origin: e.CSP.BlockedOrigin,
		Effective: e.CSP.EffectiveDirective, Violated: e.CSP.ViolatedDirective, Disposition: e.CSP.Disposition,
		Outcome: e.Outcome, Sample: e.CSP.Sample, SourceFile: e.CSP.SourceFile, Line: e.CSP.LineNumber,
		Col: e.CSP.ColumnNumber, Status: e.CSP.StatusCode, Format: e.CSP.Format, Age: e.CSP.AgeMillis,
		UA: e.UserAgent, Referrer: e.Referrer, Policy: e.CSP.OriginalPolicy, Time: e.Time,
	}
}

// eventView flattens the fields the shape tests compare.
type eventView struct {
	Doc, Path, Query, Blocked, Origin, Effective, Violated, Disposition, Outcome string
	Sample, SourceFile                                                           string
	Line, Col, Status                                                            int
	Format                                                                       string
	Age                                                                          int64
	UA, Referrer, Policy                                                         string
	Time                                                                         time.Time
}

// TestBrowserShapes parses bodies shaped like other browsers' and old
// versions'. The Firefox ones follow published samples
// (Kurios/cspreportparser README, nico3333fr/CSP-useful csp-wtf). The Safari
// one follows what WebKit's source builds (ContentSecurityPolicy::
// reportViolation in Source/WebCore/page/csp/ContentSecurityPolicy.cpp: the
// CSP2 keys, integers, status-code 0 for an HTTPS document, source-file with
// line and column only when known, no disposition); no Safari was available
// to capture from. The "numbers as strings, few keys" cases are robustness
// cases for old browsers and rewriting proxies, not a known browser's shape.
func TestBrowserShapes(t *testing.T) {
	tests := []struct {
		name, ct, body string
		want           eventView
	}{
		{
			name: "old Firefox: violated-directive with sources, no effective-directive",
			ct:   "application/csp-report",
			body: `{"csp-report":{"document-uri":"http://example.com/signup.html","referrer":"","blocked-uri":"http://example.com/css/style.css","violated-directive":"style-src cdn.example.com","original-policy":"default-src 'none'; style-src cdn.example.com; report-uri /_/csp-reports","disposition":"report"}}`,
			want: eventView{
				Doc: "http://example.com/signup.html", Path: "/signup.html", Blocked: "http://example.com/css/style.css",
				Origin: "http://example.com", Effective: "style-src", Violated: "style-src cdn.example.com",
				Disposition: "report", Outcome: "unknown", Format: FormatReportURI, UA: testMeta.UserAgent,
				Policy: "default-src 'none'; style-src cdn.example.com; report-uri /_/csp-reports", Time: testMeta.Received,
			},
		},
		{
			name: `old Firefox: blocked-uri "self" for inline code`,
			ct:   "application/csp-report",
			body: `{"csp-report":{"blocked-uri":"self","document-uri":"https://www.example.info/","line-number":1,"original-policy":"default-src 'none'; script-src https://www.example.info","referrer":"","script-sample":"window.script1528893700887=1;","source-file":"https://www.example.info/","violated-directive":"script-src https://www.example.info"}}`,
			want: eventView{
				Doc: "https://www.example.info/", Path: "/", Blocked: "self", Origin: "self", Effective: "script-src",
				Violated: "script-src https://www.example.info", Disposition: "enforce", Outcome: "failure",
				Sample: "window.script1528893700887=1;", SourceFile: "https://www.example.info/", Line: 1,
				Format: FormatReportURI, UA: testMeta.UserAgent, Policy: "default-src 'none'; script-src https://www.example.info", Time: testMeta.Received,
			},
		},
		{
			name: `Firefox: empty blocked-uri`,
			ct:   "application/csp-report",
			body: `{"csp-report":{"blocked-uri":"","document-uri":"https://www.example.info/","line-number":1,"script-sample":"(function (DOCUMENT, dispatchEvent, CUST...","violated-directive":"script-src"}}`,
			want: eventView{
				Doc: "https://www.example.info/", Path: "/", Origin: OriginNone, Effective: "script-src", Violated: "script-src",
				Disposition: "enforce", Outcome: "failure", Sample: "(function (DOCUMENT, dispatchEvent, CUST...", Line: 1,
				Format: FormatReportURI, UA: testMeta.UserAgent, Time: testMeta.Received,
			},
		},
		{
			name: "current Firefox: full key set, numbers",
			ct:   "application/csp-report; charset=UTF-8",
			body: `{"csp-report":{"blocked-uri":"https://apis.google.com/js/platform.js","column-number":1,"disposition":"enforce","document-uri":"https://localhost:5000/?q=1","effective-directive":"script-src-elem","line-number":12,"original-policy":"script-src 'self'","referrer":"https://www.google.com/","source-file":"https://localhost:5000/","status-code":200,"violated-directive":"script-src-elem"}}`,
			want: eventView{
				Doc: "https://localhost:5000/?q=1", Path: "/", Query: "q=1", Blocked: "https://apis.google.com/js/platform.js",
				Origin: "https://apis.google.com", Effective: "script-src-elem", Violated: "script-src-elem",
				Disposition: "enforce", Outcome: "failure", SourceFile: "https://localhost:5000/", Line: 12, Col: 1, Status: 200,
				Format: FormatReportURI, UA: testMeta.UserAgent, Referrer: "https://www.google.com/", Policy: "script-src 'self'", Time: testMeta.Received,
			},
		},
		{
			name: "Safari (WebKit's report-uri body): integers, status-code 0 on HTTPS, no disposition",
			ct:   "application/csp-report",
			body: `{"csp-report":{"document-uri":"https://shop.example.com/cart","referrer":"https://shop.example.com/","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"default-src 'self'; report-uri /csp-report","blocked-uri":"https://evil.example/x.js","status-code":0,"source-file":"https://shop.example.com/static/app.js","line-number":3,"column-number":17}}`,
			want: eventView{
				Doc: "https://shop.example.com/cart", Path: "/cart", Blocked: "https://evil.example/x.js", Origin: "https://evil.example",
				Effective: "script-src-elem", Violated: "script-src-elem", Disposition: "enforce", Outcome: "failure",
				SourceFile: "https://shop.example.com/static/app.js", Line: 3, Col: 17, Format: FormatReportURI, UA: testMeta.UserAgent,
				Referrer: "https://shop.example.com/", Policy: "default-src 'self'; report-uri /csp-report", Time: testMeta.Received,
			},
		},
		{
			name: "numeric strings, few keys (old browsers, rewriting proxies)",
			ct:   "application/csp-report",
			body: `{"csp-report":{"document-uri":"https://shop.example.com/cart","violated-directive":"script-src 'self'","blocked-uri":"https://EVIL.example:443/x.js","line-number":"12","column-number":" 7 ","status-code":"200"}}`,
			want: eventView{
				Doc: "https://shop.example.com/cart", Path: "/cart", Blocked: "https://EVIL.example:443/x.js", Origin: "https://evil.example",
				Effective: "script-src", Violated: "script-src 'self'", Disposition: "enforce", Outcome: "failure",
				Line: 12, Col: 7, Status: 200, Format: FormatReportURI, UA: testMeta.UserAgent, Time: testMeta.Received,
			},
		},
		{
			name: "empty and null numbers",
			ct:   "application/json",
			body: `{"csp-report":{"document-uri":"https://shop.example.com/","effective-directive":"img-src","blocked-uri":"https://ads.example.net:8443/p.gif","line-number":"","column-number":null,"status-code":"0"}}`,
			want: eventView{
				Doc: "https://shop.example.com/", Path: "/", Blocked: "https://ads.example.net:8443/p.gif", Origin: "https://ads.example.net:8443",
				Effective: "img-src", Disposition: "enforce", Outcome: "failure", Format: FormatReportURI, UA: testMeta.UserAgent, Time: testMeta.Received,
			},
		},
		{
			name: "unwrapped legacy object",
			ct:   "application/json",
			body: `{"document-uri":"https://a.example/p","blocked-uri":"blob:https://a.example/0b5c","effective-directive":"worker-src","line-number":5.0}`,
			want: eventView{
				Doc: "https://a.example/p", Path: "/p", Blocked: "blob:https://a.example/0b5c", Origin: "blob", Effective: "worker-src",
				Disposition: "enforce", Outcome: "failure", Line: 5, Format: FormatReportURI, UA: testMeta.UserAgent, Time: testMeta.Received,
			},
		},
		{
			name: "relative blocked-uri resolves against the document",
			ct:   "application/csp-report",
			body: `{"csp-report":{"document-uri":"https://a.example:8443/p","blocked-uri":"/static/x.js","effective-directive":"script-src-elem","disposition":"ENFORCE"}}`,
			want: eventView{
				Doc: "https://a.example:8443/p", Path: "/p", Blocked: "/static/x.js", Origin: "https://a.example:8443", Effective: "script-src-elem",
				Disposition: "enforce", Outcome: "failure", Format: FormatReportURI, UA: testMeta.UserAgent, Time: testMeta.Received,
			},
		},
		{
			name: "Reporting API under application/json, no user_agent, url as document",
			ct:   "application/json",
			body: `[{"type":"csp-violation","age":"1500","url":"https://a.example/page?x=1","body":{"blockedURL":"wasm-eval","effectiveDirective":"script-src","disposition":"report","statusCode":"200","sample":""}}]`,
			want: eventView{
				Doc: "https://a.example/page?x=1", Path: "/page", Query: "x=1", Blocked: "wasm-eval", Origin: "wasm-eval",
				Effective: "script-src", Disposition: "report", Outcome: "unknown", Status: 200, Format: FormatReportingAPI,
				Age: 1500, UA: testMeta.UserAgent, Time: testMeta.Received.Add(-1500 * time.Millisecond),
			},
		},
		{
			name: `draft type "csp", single report without the array`,
			ct:   "application/reports+json",
			body: `{"type":"csp","age":0,"url":"https://a.example/","user_agent":"UA/2","body":{"blockedURL":"trusted-types-sink","effectiveDirective":"require-trusted-types-for","documentURL":"https://a.example/","sample":"Element innerHTML|<img src=x>"}}`,
			want: eventView{
				Doc: "https://a.example/", Path: "/", Blocked: "trusted-types-sink", Origin: "trusted-types-sink",
				Effective: "require-trusted-types-for", Disposition: "enforce", Outcome: "failure", Sample: "Element innerHTML|<img src=x>",
				Format: FormatReportingAPI, UA: "UA/2", Time: testMeta.Received,
			},
		},
		{
			name: "SecurityPolicyViolationEvent names posted by a page script",
			ct:   "application/json",
			body: `{"documentURI":"https://a.example/","blockedURI":"https://cdn.example/lib.js","violatedDirective":"script-src-elem","lineNumber":3}`,
			want: eventView{
				Doc: "https://a.example/", Path: "/", Blocked: "https://cdn.example/lib.js", Origin: "https://cdn.example",
				Effective: "script-src-elem", Violated: "script-src-elem", Disposition: "enforce", Outcome: "failure", Line: 3,
				Format: FormatReportURI, UA: testMeta.UserAgent, Time: testMeta.Received,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseOne(t, tt.ct, tt.body, nil)
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestBatchedLegacy parses an array of wrapped reports, as some proxies
// send.
func TestBatchedLegacy(t *testing.T) {
	body := `[{"csp-report":{"document-uri":"https://a.example/","blocked-uri":"inline","effective-directive":"script-src-elem"}},
	          {"csp-report":{"document-uri":"https://a.example/","blocked-uri":"eval","effective-directive":"script-src"}}]`
	res, err := Parse("application/csp-report", []byte(body), testMeta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 || res.Events[0].CSP.BlockedOrigin != "inline" || res.Events[1].CSP.BlockedOrigin != "eval" {
		t.Fatalf("events %+v", res.Events)
	}
	if res.Events[0].ID == res.Events[1].ID {
		t.Error("two reports of one batch share an ID")
	}
}

// TestOtherReportTypes counts Reporting API reports that are not CSP
// violations and keeps the violations among them.
func TestOtherReportTypes(t *testing.T) {
	body := `[
	 {"type":"deprecation","age":10,"url":"https://a.example/","body":{"id":"X","message":"m"}},
	 {"type":"csp-violation","age":10,"url":"https://a.example/","body":{"blockedURL":"inline","effectiveDirective":"script-src-elem","documentURL":"https://a.example/"}},
	 {"type":"intervention","body":null},
	 {"type":"deprecation","body":"not even an object"},
	 {"type":"made-up-type-123","body":{}}
	]`
	res, err := Parse("application/reports+json", []byte(body), testMeta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 {
		t.Fatalf("%d events, want 1", len(res.Events))
	}
	want := map[string]int{"deprecation": 2, "intervention": 1, "other": 1}
	if len(res.Other) != len(want) {
		t.Errorf("Other = %v, want %v", res.Other, want)
	}
	for k, n := range want {
		if res.Other[k] != n {
			t.Errorf("Other[%q] = %d, want %d", k, res.Other[k], n)
		}
	}
}

// TestTruncation checks that long strings are cut, at a rune boundary.
func TestTruncation(t *testing.T) {
	policy := "default-src 'self'; " + strings.Repeat("img-src é; ", 600)
	blocked := "https://a.example/" + strings.Repeat("ü", 2000)
	sample := strings.Repeat("x", 300)
	ua := strings.Repeat("u", 5000)
	body := `[{"type":"csp-violation","user_agent":"` + ua + `","body":{"originalPolicy":"` + policy + `","blockedURL":"` + blocked +
		`","sample":"` + sample + `","documentURL":"https://a.example/` + strings.Repeat("d", 3000) + `","effectiveDirective":"script-src"}}]`
	res, err := Parse("application/reports+json", []byte(body), testMeta, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Events[0].CSP
	for _, ck := range []struct {
		name  string
		s     string
		limit int
	}{
		{"OriginalPolicy", c.OriginalPolicy, 4096},
		{"BlockedURI", c.BlockedURI, 2048},
		{"Sample", c.Sample, 256},
		{"DocumentURI", c.DocumentURI, 2048},
		{"UserAgent", res.Events[0].UserAgent, 1024},
	} {
		if len(ck.s) > ck.limit || len(ck.s) < ck.limit-3 {
			t.Errorf("%s: %d bytes, want about %d", ck.name, len(ck.s), ck.limit)
		}
		if !validUTF8(ck.s) {
			t.Errorf("%s is not valid UTF-8 after truncation", ck.name)
		}
	}
	if c.BlockedOrigin != "https://a.example" {
		t.Errorf("BlockedOrigin %q", c.BlockedOrigin)
	}
}

// TestBlockedOrigin covers the keyword and URL cases directly.
func TestBlockedOrigin(t *testing.T) {
	doc := "https://www.example.com/page"
	tests := map[string]string{
		"":                                    OriginNone,
		"   ":                                 OriginNone,
		"inline":                              "inline",
		"eval":                                "eval",
		"wasm-eval":                           "wasm-eval",
		"data":                                "data",
		"blob":                                "blob",
		"trusted-types-policy":                "trusted-types-policy",
		"trusted-types-sink":                  "trusted-types-sink",
		"self":                                "self",
		"'self'":                              "self",
		"Inline":                              "inline",
		"chrome-extension":                    "chrome-extension",
		"http://127.0.0.1:8082/evil.js":       "http://127.0.0.1:8082",
		"HTTPS://CDN.Example.COM/a.js":        "https://cdn.example.com",
		"https://cdn.example.com:443/a.js":    "https://cdn.example.com",
		"http://cdn.example.com:80":           "http://cdn.example.com",
		"http://cdn.example.com:8080/":        "http://cdn.example.com:8080",
		"https://user:pw@cdn.example.com/x":   "https://cdn.example.com",
		"wss://push.example.com/s":            "wss://push.example.com",
		"http://[::1]:8080/x":                 "http://[::1]:8080",
		"http://[2001:DB8::1]/x":              "http://[2001:db8::1]",
		"data:image/png;base64,iVBOR":         "data",
		"blob:https://www.example.com/uuid":   "blob",
		"about:blank":                         "about",
		"javascript:alert(1)":                 "javascript",
		"chrome-extension://abcdef/inject.js": "chrome-extension://abcdef",
		"/static/app.js":                      "https://www.example.com",
		"app.js":                              "https://www.example.com",
		"//cdn.other.net/x.js":                "https://cdn.other.net",
		"http://%zz":                          OriginInvalid,
		"::::":                                OriginInvalid,
	}
	for in, want := range tests {
		if got := BlockedOrigin(in, doc); got != want {
			t.Errorf("BlockedOrigin(%q) = %q, want %q", in, got, want)
		}
	}
	if got := BlockedOrigin("/x.js", ""); got != OriginInvalid {
		t.Errorf("relative without document: %q, want %q", got, OriginInvalid)
	}
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
