package csp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestErrors checks every client error: its status, the field it names and
// that the message says where.
func TestErrors(t *testing.T) {
	const (
		csp  = "application/csp-report"
		rep  = "application/reports+json"
		json = "application/json"
	)
	many := "[" + strings.Repeat(`{"type":"deprecation","body":{}},`, MaxReports) + `{"type":"deprecation","body":{}}]`
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	tests := []struct {
		name, ct, body string
		status         int
		field          string
		msg            string // substring of Msg
	}{
		{"text/plain", "text/plain", `{"csp-report":{}}`, 415, "", `"text/plain"`},
		{"no content type", "", `{"csp-report":{}}`, 415, "", "unsupported content type"},
		{"form", "application/x-www-form-urlencoded", "a=b", 415, "", "unsupported"},
		{"empty body", csp, "", 400, "", "empty body"},
		{"blank body", rep, " \r\n\t", 400, "", "empty body"},
		{"truncated JSON", csp, `{"csp-report":{"document-uri":"x"`, 400, "", "malformed JSON: unexpected end of input at line 1, column 34 (byte 33)"},
		{"garbage on line 2", rep, "[\n{\"type\": x}]", 400, "", "malformed JSON at line 2, column 10"},
		{"trailing garbage", csp, `{"csp-report":{}} {}`, 400, "", "malformed JSON"},
		{"too deep", csp, deep, 400, "", "nested deeper than 16"},
		{"too many reports", rep, many, 400, "", "too many reports: 101"},
		{"string body", csp, `"csp-report"`, 400, "", "want a JSON object or array, got string"},
		{"number body", rep, `42`, 400, "", "got number"},
		{"csp-report missing", csp, `{"foo":1}`, 400, "csp-report", `body: "csp-report" missing`},
		{"csp-report missing in batch", csp, `[{"csp-report":{"document-uri":"https://a.example/"}},{"x":1}]`, 400, "csp-report", `[1]: "csp-report" missing`},
		{"empty violation", csp, `{"csp-report":{}}`, 400, "csp-report", "csp-report: an empty violation"},
		{"empty violation in batch", json, `[{"csp-report":{"blocked-uri":"inline"}},{"csp-report":{"referrer":""}}]`, 400, "csp-report", "[1].csp-report: an empty violation"},
		{"csp-report not object", csp, `{"csp-report":"x"}`, 400, "csp-report", "csp-report: want an object, got string"},
		{"csp-report null", json, `{"csp-report":null}`, 400, "csp-report", "got null"},
		{"array element not object", csp, `[1]`, 400, "", "[0]: want an object, got number"},
		{"line-number not numeric", csp, `{"csp-report":{"line-number":"abc"}}`, 400, "line-number", `csp-report.line-number: want an integer, got "abc"`},
		{"line-number bool", csp, `{"csp-report":{"line-number":true}}`, 400, "line-number", "got boolean"},
		{"line-number fraction", csp, `{"csp-report":{"line-number":1.5}}`, 400, "line-number", `got "1.5"`},
		{"line-number negative", csp, `{"csp-report":{"line-number":-1}}`, 400, "line-number", "out of range"},
		{"column-number too big", csp, `{"csp-report":{"column-number":99999999999}}`, 400, "column-number", "out of range"},
		{"status-code NaN", csp, `{"csp-report":{"status-code":"NaN"}}`, 400, "status-code", "want an integer"},
		{"status-code object", csp, `{"csp-report":{"status-code":{}}}`, 400, "status-code", "got object"},
		{"document-uri number", csp, `{"csp-report":{"document-uri":5}}`, 400, "document-uri", "want a string, got number"},
		{"disposition unknown", csp, `{"csp-report":{"disposition":"block"}}`, 400, "disposition", `want "enforce" or "report", got "block"`},
		{"type missing", rep, `[{"body":{}}]`, 400, "type", `[0]: "type" missing`},
		{"type not string", rep, `[{"type":5,"body":{}}]`, 400, "type", "[0].type: want a string"},
		{"body missing", rep, `[{"type":"csp-violation"}]`, 400, "body", `[0]: "body" missing`},
		{"body null", rep, `[{"type":"csp-violation","body":null}]`, 400, "body", `"body" missing`},
		{"body not object", rep, `[{"type":"csp-violation","body":[]}]`, 400, "body", "[0].body: want an object, got array"},
		{"lineNumber not numeric", rep, `[{"type":"csp-violation","body":{"effectiveDirective":"img-src"}},{"type":"csp-violation","body":{"lineNumber":"x"}}]`, 400, "lineNumber", `[1].body.lineNumber: want an integer, got "x"`},
		{"age not numeric", rep, `[{"type":"csp-violation","age":"soon","body":{}}]`, 400, "age", `[0].age: want an integer, got "soon"`},
		{"empty body", rep, `[{"type":"csp-violation","body":{}}]`, 400, "body", "[0].body: an empty violation"},
		{"age negative", rep, `[{"type":"csp-violation","age":-5,"body":{}}]`, 400, "age", "out of range"},
		{"age over a day", rep, `[{"type":"csp-violation","age":86400001,"body":{}}]`, 400, "age", "out of range"},
		{"user_agent not string", rep, `[{"type":"csp-violation","user_agent":1,"body":{}}]`, 400, "user_agent", "want a string"},
		{"url not string", rep, `[{"type":"csp-violation","url":[],"body":{}}]`, 400, "url", "want a string"},
		{"reports element not object", rep, `["x"]`, 400, "", "[0]: want an object, got string"},
		{"json legacy missing wrapper", json, `[{"foo":1}]`, 400, "csp-report", `[0]: "csp-report" missing`},
		{"json reports bad field", json, `[{"type":"csp-violation","body":{"statusCode":"x"}}]`, 400, "statusCode", "[0].body.statusCode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse(tt.ct, []byte(tt.body), testMeta, nil)
			if err == nil {
				t.Fatalf("no error; result %+v", res)
			}
			if res.Events != nil || res.Filtered != nil || res.Other != nil {
				t.Errorf("result not empty on error: %+v", res)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			if e.Status != tt.status || e.Field != tt.field {
				t.Errorf("Status, Field = %d, %q; want %d, %q (%v)", e.Status, e.Field, tt.status, tt.field, e)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg %q does not contain %q", e.Msg, tt.msg)
			}
			if !strings.Contains(e.Error(), e.Msg) {
				t.Errorf("Error() %q lacks Msg", e.Error())
			}
		})
	}
}

// TestLenientNumbers checks the number forms accepted.
func TestLenientNumbers(t *testing.T) {
	for in, want := range map[string]int{
		`5`: 5, `"5"`: 5, `" 5 "`: 5, `5.0`: 5, `"5.0"`: 5, `5e1`: 50, `""`: 0, `null`: 0, `0`: 0, `"0"`: 0,
	} {
		body := `{"csp-report":{"document-uri":"https://a.example/","line-number":` + in + `}}`
		res, err := Parse("application/csp-report", []byte(body), testMeta, nil)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := res.Events[0].CSP.LineNumber; got != want {
			t.Errorf("%s: LineNumber %d, want %d", in, got, want)
		}
	}
}

// TestContentTypes checks media type matching in Parse.
func TestContentTypes(t *testing.T) {
	legacyBody := []byte(legacy("document-uri", "https://a.example/", "blocked-uri", "inline"))
	reportsBody := []byte(`[{"type":"csp-violation","body":{"documentURL":"https://a.example/","blockedURL":"inline"}}]`)
	tests := []struct {
		ct     string
		body   []byte
		format string
	}{
		{"application/csp-report", legacyBody, FormatReportURI},
		{"Application/CSP-Report; charset=utf-8", legacyBody, FormatReportURI},
		{" application/json ;charset=UTF-8", legacyBody, FormatReportURI},
		{"application/json", reportsBody, FormatReportingAPI},
		{"APPLICATION/REPORTS+JSON", reportsBody, FormatReportingAPI},
		{"application/reports+json; charset=utf-8", reportsBody, FormatReportingAPI},
	}
	for _, tt := range tests {
		res, err := Parse(tt.ct, tt.body, testMeta, nil)
		if err != nil {
			t.Errorf("%q: %v", tt.ct, err)
			continue
		}
		if len(res.Events) != 1 || res.Events[0].CSP.Format != tt.format {
			t.Errorf("%q: %d events, want one of format %s", tt.ct, len(res.Events), tt.format)
		}
	}
	// An empty array is valid and holds nothing.
	for _, ct := range []string{"application/json", "application/reports+json", "application/csp-report"} {
		res, err := Parse(ct, []byte(" [ ] "), testMeta, nil)
		if err != nil || len(res.Events) != 0 {
			t.Errorf("%s, []: %v, %d events", ct, err, len(res.Events))
		}
	}
}

// TestOddBodies covers bodies that are odd but acceptable.
func TestOddBodies(t *testing.T) {
	// A byte order mark before the JSON.
	res, err := Parse("application/csp-report", append([]byte("\xef\xbb\xbf"), legacy("document-uri", "https://a.example/", "blocked-uri", "inline")...), testMeta, nil)
	if err != nil || len(res.Events) != 1 {
		t.Errorf("BOM: %v, %d events", err, len(res.Events))
	}
	// One Reporting API report, not in an array, as application/json.
	res, err = Parse("application/json", []byte(`{"type":"csp-violation","age":5,"body":{"documentURL":"https://a.example/","blockedURL":"eval"}}`), testMeta, nil)
	if err != nil || len(res.Events) != 1 || res.Events[0].CSP.Format != FormatReportingAPI || res.Events[0].CSP.AgeMillis != 5 {
		t.Errorf("single report as application/json: %v, %+v", err, res.Events)
	}
	// No Received: the time of parsing is used.
	meta := testMeta
	meta.Received = time.Time{}
	before := time.Now()
	res, err = Parse("application/csp-report", []byte(legacy("document-uri", "https://a.example/")), meta, nil)
	if err != nil || len(res.Events) != 1 || res.Events[0].Time.Before(before) || res.Events[0].Time.After(time.Now()) {
		t.Errorf("zero Received: %v, %+v", err, res.Events)
	}
	// No client address: the event has none, and still an ID.
	meta = testMeta
	meta.ClientIP = netip.Addr{}
	res, err = Parse("application/csp-report", []byte(legacy("document-uri", "https://a.example/")), meta, nil)
	if err != nil || len(res.Events) != 1 || res.Events[0].SourceIP.IsValid() || len(res.Events[0].ID) != 64 {
		t.Errorf("no client address: %v, %+v", err, res.Events)
	}
}
