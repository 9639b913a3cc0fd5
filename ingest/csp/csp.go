// Package csp parses the Content Security Policy violation reports browsers
// POST and normalises them to event.Event.
//
// Two wire formats exist. The legacy report-uri format
// (application/csp-report) is one object {"csp-report": {...}} with
// hyphenated keys per request; Chromium, Firefox and Safari send it. The
// Reporting API (application/reports+json) is an array of
// {age, body, type, url, user_agent} reports with camelCase body keys,
// batched; Chromium and Firefox (153) send it, to HTTPS endpoints only,
// and then ignore report-uri. Parse picks the parser from
// the Content-Type header; ParseLegacy and ParseReports can be called
// directly.
//
// The package does no I/O. The HTTP listener reads the body (capped at
// 64 KiB), calls Parse, answers 2xx, 400 or 415 (an *Error carries the
// status) and publishes Result.Events. Reports are outside input from
// anyone who can reach the endpoint: every key is optional, numbers may be
// strings, strings are truncated, and at most MaxReports reports are read
// per request.
package csp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// Limits on one request body.
const (
	// MaxReports is the most reports one request may carry; more is a 400.
	MaxReports = 100
	// MaxDepth is the deepest JSON nesting accepted; deeper is a 400.
	// Real reports nest three levels (array, report, body).
	MaxDepth = 16
	// MaxAge is the largest Reporting API age accepted. Browsers queue
	// reports for minutes, not days, so a larger age is malformed and
	// would move the event's time far into the past.
	MaxAge = 24 * time.Hour
)

// Truncation limits, in bytes, for the strings of a report. Longer values
// are cut at a UTF-8 boundary without a marker.
const (
	maxURI       = 2 << 10 // document, blocked, source file, referrer
	maxPolicy    = 4 << 10 // original policy, violated directive
	maxSample    = 256     // script sample
	maxDirective = 128     // effective directive
	maxUserAgent = 1 << 10 // user agent
)

// Report formats, stored in event.CSP.Format.
const (
	FormatReportURI    = "report-uri"
	FormatReportingAPI = "reporting-api"
)

// Event constants for every CSP violation.
const (
	// Dataset is the event.Dataset of CSP violation events.
	Dataset = "csp.violation"
	// Action is the event.Action of CSP violation events.
	Action = "csp-violation"
)

// Meta is what the HTTP layer knows about the request a body came in.
type Meta struct {
	// ClientIP is the client address (after the listener's proxy handling);
	// IPv4-mapped IPv6 addresses are unmapped.
	ClientIP netip.Addr
	// UserAgent is the request's User-Agent header. It is used when the
	// report carries no user_agent of its own (always for report-uri).
	UserAgent string
	// Received is when the request arrived. Event times are Received minus
	// the Reporting API age. The zero time is replaced by time.Now().
	Received time.Time
	// Request names the request, uniquely (the listener's per-process
	// nonce and a count). Event ids hash it with the client, the second of
	// arrival, the report's place in the body and its JSON, so reports
	// alike to the byte are events of their own: browsers send such for
	// distinct violations (three style attributes of one page, from
	// Firefox), and Elasticsearch, which indexes events by id, would keep
	// one.
	Request string
}

// Result is what one request body held.
type Result struct {
	// Events are the normalised violations to publish, in body order. Each
	// event owns its strings and its CSP.
	Events []event.Event
	// Filtered counts violations dropped as noise, by reason (one of
	// Reasons()). Nil when nothing was dropped.
	Filtered map[string]int
	// Other counts Reporting API reports of other types, which are not
	// kept. Known types are counted by name (deprecation, intervention,
	// crash, coep, coop, document-policy-violation,
	// permissions-policy-violation,
	// potential-permissions-policy-violation, network-error,
	// integrity-violation, csp-hash, test); any other as "other", so the
	// keys stay few enough for metric labels. Nil when there were none.
	Other map[string]int
}

// Error is a client error. Status is 400 (malformed body) or 415
// (unsupported content type). Field names the JSON key at fault when there
// is one ("csp-report", "body", "line-number", ...); Msg says what is wrong
// and where, as a path like `[2].body.lineNumber`.
type Error struct {
	Status int
	Field  string
	Msg    string
}

// Error returns the message with the status, e.g.
// `csp report: 400: [0].body.lineNumber: want an integer, got "x"`.
func (e *Error) Error() string {
	return fmt.Sprintf("csp report: %d: %s", e.Status, e.Msg)
}

// Parse parses a request body by its Content-Type header value. The media
// type is matched case-insensitively and parameters such as charset are
// ignored. application/csp-report goes to ParseLegacy, and so does
// application/json unless the body is a JSON array of Reporting-API-shaped
// reports (the first has a "type" key and no "csp-report"), which goes to
// ParseReports like application/reports+json (so does a single such
// object). Any other type is an *Error with Status 415. A nil f means
// DefaultFilter().
func Parse(contentType string, body []byte, meta Meta, f *Filter) (Result, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch mt {
	case "application/csp-report":
		return ParseLegacy(body, meta, f)
	case "application/reports+json":
		return ParseReports(body, meta, f)
	case "application/json":
		elems, isArray, err := decodeTop(body)
		if err != nil {
			return Result{}, err
		}
		if looksLikeReport(elems) {
			return parseReports(elems, isArray, meta, f)
		}
		return parseLegacy(elems, isArray, meta, f)
	default:
		return Result{}, &Error{Status: 415, Msg: fmt.Sprintf("unsupported content type %s; want application/csp-report, application/reports+json or application/json", quote(contentType))}
	}
}

// looksLikeReport reports whether the first element of a body is a
// Reporting API report rather than a legacy one.
func looksLikeReport(elems []element) bool {
	if len(elems) == 0 || elems[0].text[0] != '{' {
		return false
	}
	var o object
	if o.decode(elems[0].text, "", "") != nil {
		return false
	}
	return o.has(mType) && !o.has(mCSPReport)
}

// element is one top-level value of a body (a report, normally): its text,
// a sub-string of the one string copy of the body that every decoded
// string shares, and the same bytes of the body, for the report's ID.
type element struct {
	text string
	raw  []byte
}

// decodeTop checks and splits a body: an array gives its elements, an
// object gives itself. A leading UTF-8 byte order mark is skipped. It
// enforces the empty-body, depth and count limits and turns JSON syntax
// errors into a 400 that says where.
func decodeTop(body []byte) (elems []element, isArray bool, err error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(bytes.TrimRight(trimmed, " \t\r\n")) == 0 {
		return nil, false, &Error{Status: 400, Msg: "empty body"}
	}
	if !valid(body) { // explain why
		if off, ok := checkDepth(body, MaxDepth); !ok {
			return nil, false, &Error{Status: 400, Msg: fmt.Sprintf("JSON nested deeper than %d at %s", MaxDepth, position(body, off))}
		}
		var raw json.RawMessage
		return nil, false, syntaxError(body, json.Unmarshal(body, &raw))
	}
	trimmed = bytes.TrimRight(trimmed, " \t\r\n")
	text := string(trimmed) // the one copy: decoded strings are parts of it
	if trimmed[0] != '[' {
		if trimmed[0] != '{' {
			return nil, false, &Error{Status: 400, Msg: fmt.Sprintf("want a JSON object or array, got %s", kind(text))}
		}
		return []element{{text, trimmed}}, false, nil
	}
	spans, ok := splitArray(text)
	if !ok { // cannot happen on valid JSON
		return nil, false, &Error{Status: 400, Msg: "malformed JSON array"}
	}
	if len(spans) > MaxReports {
		return nil, false, &Error{Status: 400, Msg: fmt.Sprintf("too many reports: %d, the limit is %d", len(spans), MaxReports)}
	}
	elems = make([]element, len(spans))
	for i, sp := range spans {
		elems[i] = element{text[sp.start:sp.end], trimmed[sp.start:sp.end:sp.end]}
	}
	return elems, true, nil
}

// syntaxError turns an encoding/json error into a 400 naming the position
// of the offending byte.
func syntaxError(body []byte, err error) *Error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &Error{Status: 400, Msg: fmt.Sprintf("malformed JSON: %v", err)}
	}
	if se.Offset >= int64(len(body)) && strings.HasPrefix(se.Error(), "unexpected end") {
		return &Error{Status: 400, Msg: fmt.Sprintf("malformed JSON: unexpected end of input at %s", position(body, len(body)))}
	}
	// Offset counts the bytes read, the offending one included.
	return &Error{Status: 400, Msg: fmt.Sprintf("malformed JSON at %s: %v", position(body, int(se.Offset)-1), se)}
}

// position describes byte offset off of body as line, column and byte.
func position(body []byte, off int) string {
	off = min(max(off, 0), len(body))
	line := 1 + bytes.Count(body[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(body[:off], '\n')
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, off)
}

// checkDepth scans JSON text for nesting deeper than limit without
// decoding it, so encoding/json never recurses deeply. It returns the
// offset of the first bracket too deep. Unbalanced input is left to the
// decoder.
func checkDepth(b []byte, limit int) (int, bool) {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > limit {
				return i, false
			}
		case ']', '}':
			depth--
		}
	}
	return 0, true
}

// kind names the JSON type of a raw value for messages.
func kind(raw string) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// quote quotes s for a message, cut to 40 bytes: error messages may end up
// in logs and responses, and s is outside input.
func quote(s string) string {
	const n = 40
	if len(s) > n {
		return fmt.Sprintf("%q…", truncate(s, n))
	}
	return fmt.Sprintf("%q", s)
}
