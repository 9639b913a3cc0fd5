// Package accesslog parses web server access log lines into event.Event
// values: nginx "combined" and stock "main", Apache "combined", and nginx
// JSON (log_format escape=json).
//
// The parser is hand-written for the ingest hot path: no regular
// expressions, no encoding/json, no reflection, and no allocation per line
// once its scratch buffer has grown to fit the longest escaped line seen.
//
// # Memory rule
//
// To avoid copying, the string fields a Parser sets on an Event are views
// (built with unsafe.String) either into the line passed to Parse or into the
// Parser's own scratch buffer, which holds decoded escapes. Such an Event is
// valid only until the next call to Parse on the same Parser, and only while
// the caller leaves the line's bytes alone. A consumer that keeps an Event or
// any of its strings beyond that must copy them (strings.Clone, or encode the
// event with AppendJSON). Errors returned by Parse never point into the line
// or the scratch buffer and may be kept.
package accesslog

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/vigil-soc/vigil/event"
)

// MaxLineBytes is the longest line Parse accepts, not counting a trailing
// newline; longer lines fail with reason "too-long".
const MaxLineBytes = 64 << 10

// Reasons a line is rejected, as LineError.Reason. The set is fixed and small
// so that it can be used as a metric label.
const (
	// ReasonEmpty means the line is empty or only white space.
	ReasonEmpty = "empty"
	// ReasonTruncated means the line ends before all required fields did, as a
	// line cut by a crash, a rotation or a size limit does.
	ReasonTruncated = "truncated"
	// ReasonBadIP means the client address is not an IPv4 or IPv6 address (for
	// example a hostname, or "unix:").
	ReasonBadIP = "bad-ip"
	// ReasonBadTime means the timestamp is missing or invalid.
	ReasonBadTime = "bad-time"
	// ReasonBadStatus means the status is not a number from 100 to 999.
	ReasonBadStatus = "bad-status"
	// ReasonBadJSON means a JSON line is not a well-formed object or lacks a
	// required key.
	ReasonBadJSON = "bad-json"
	// ReasonTooLong means the line is longer than MaxLineBytes.
	ReasonTooLong = "too-long"
	// ReasonMalformed means a text line has the wrong shape between or inside
	// fields not covered above (a missing quote or space, a non-numeric byte
	// count).
	ReasonMalformed = "malformed"
)

// Reasons returns every LineError.Reason value, for example to initialise a
// labelled counter so that all series exist from the start.
func Reasons() []string {
	return []string{
		ReasonEmpty, ReasonTruncated, ReasonBadIP, ReasonBadTime,
		ReasonBadStatus, ReasonBadJSON, ReasonTooLong, ReasonMalformed,
	}
}

// LineError is returned by Parse for a line that is not a usable access log
// entry.
type LineError struct {
	// Reason is one of the Reason* constants; see Reasons.
	Reason string
	// Detail says which field was wrong and, where useful, quotes (a copy
	// of) the first bytes of the bad value. It is for humans, not matching.
	Detail string
}

// Error returns "access log line: <reason>: <detail>".
func (e *LineError) Error() string {
	if e.Detail == "" {
		return "access log line: " + e.Reason
	}
	return "access log line: " + e.Reason + ": " + e.Detail
}

// lineErr builds a LineError with a static detail.
func lineErr(reason, detail string) *LineError {
	return &LineError{Reason: reason, Detail: detail}
}

// maxDetailValue bounds how much of a bad value a LineError quotes.
const maxDetailValue = 48

// valueErr builds a LineError whose detail quotes a copy of val, clipped.
// strconv.Quote always builds a new string, so the error never holds a view
// of the line or the scratch buffer.
func valueErr(reason, field, val string) *LineError {
	if len(val) > maxDetailValue {
		val = val[:maxDetailValue]
	}
	return &LineError{Reason: reason, Detail: field + " " + strconv.Quote(val)}
}

// Parser parses access log lines of one format into event.Event values.
//
// It reuses internal scratch buffers: the string fields it sets may point
// into the line or into that scratch (see the package comment), so an Event
// is valid only until the next Parse call or until the line is modified. A
// Parser is not safe for concurrent use; use one per goroutine.
type Parser struct {
	format Format
	// scratch holds decoded escapes of the current line. Parse truncates
	// it, so views into it die at the next Parse call.
	scratch []byte
	times   timeCache
	json    jsonFields
}

// NewParser returns a Parser for format f. FormatUnknown (or any value that
// is not a known Format) makes it choose per line, cheaply: a line starting
// with '{' is parsed as nginx JSON, anything else as the combined text family,
// and the event's dataset is "nginx.access" either way. Use DetectFormat or
// configuration to tell Apache apart.
func NewParser(f Format) *Parser {
	if f > FormatNginxJSON {
		f = FormatUnknown
	}
	return &Parser{format: f}
}

// Probe actions. A line whose request the web server refused before it was
// an HTTP request is still a sound line: Parse returns an event with the
// client, time, status and user agent, no request fields, one of these as
// its event.action, and the request as it was logged (clipped to
// MaxProbeRequestBytes) as its message. Port and protocol scanners
// (masscan, zgrab, nmap) leave these lines, and rules count them by action
// (http-probe in the default pack).
const (
	// ActionTLSHandshake is a TLS ClientHello sent to a plain-HTTP port,
	// as nginx logs it ("\x16\x03\x01...").
	ActionTLSHandshake = "tls-handshake"
	// ActionNoRequest is a request line of "-" or "": the client sent
	// nothing before it closed the connection or timed out. Browsers'
	// unused preconnections leave these too, so they say little alone.
	ActionNoRequest = "no-request"
	// ActionBadRequest is any other request line that is not METHOD SP
	// TARGET [SP HTTP/x.y] with an HTTP token as the method: binary, an SSH
	// banner, a bad protocol version.
	ActionBadRequest = "bad-request-line"
)

// MaxProbeRequestBytes bounds the request text a probe event keeps as its
// message.
const MaxProbeRequestBytes = 256

// probe records on ev that its request line req was refused for action.
// The message is the request as nginx logs it, bytes that are not
// printable text as \xHH (a TLS handshake reads "\x16\x03\x01..." in an
// alert, not as replacement characters); it is a view into the scratch
// buffer, like the other fields.
func (p *Parser) probe(ev *event.Event, action, req string) {
	ev.Method, ev.Target, ev.Path, ev.Query, ev.HTTPVersion = "", "", "", "", ""
	ev.Action = action
	if req == "-" {
		req = ""
	}
	start := len(p.scratch)
	p.scratch = appendLogged(p.scratch, req, MaxProbeRequestBytes)
	ev.Message = view(p.scratch[start:])
}

// appendLogged appends s to dst with control bytes, DEL, '\\' and bytes
// that are not UTF-8 written as \xHH, stopping before the appended text
// would pass max bytes.
func appendLogged(dst []byte, s string, max int) []byte {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == '\\' || r == utf8.RuneError && size == 1 {
			if n+4 > max {
				break
			}
			dst = append(dst, '\\', 'x', hex[s[i]>>4], hex[s[i]&15])
			n += 4
			i++
			continue
		}
		if n+size > max {
			break
		}
		dst = append(dst, s[i:i+size]...)
		n += size
		i += size
	}
	return dst
}

// Format returns the format the Parser was made for.
func (p *Parser) Format() Format { return p.format }

// Parse parses one line (a trailing "\n" or "\r\n" is ignored) into ev. It
// calls ev.Reset first and sets every field but ID, which is the caller's.
//
// The strings set on ev may be views into line or into the Parser's scratch
// buffer: they are valid until the next Parse call and while line is
// unchanged.
//
// A line that is not a usable entry yields a *LineError and an empty ev. A
// sound line recording a request the server refused before it was HTTP (a
// scanner's probe) is an entry: see the probe actions.
func (p *Parser) Parse(line []byte, ev *event.Event) error {
	ev.Reset()
	line = trimSpace(line)
	if len(line) > MaxLineBytes {
		return lineErr(ReasonTooLong, "line is "+strconv.Itoa(len(line))+" bytes")
	}
	if len(line) == 0 {
		return lineErr(ReasonEmpty, "")
	}
	p.scratch = p.scratch[:0]
	ev.Source = event.SourceAccess
	var err error
	switch f := p.format; {
	case f == FormatNginxJSON || f == FormatUnknown && line[0] == '{':
		ev.Dataset = datasetNginx
		err = p.parseJSON(line, ev)
	case f == FormatApacheCombined:
		ev.Dataset = datasetApache
		err = p.parseText(line, ev, false)
	default:
		ev.Dataset = datasetNginx
		err = p.parseText(line, ev, f == FormatNginxMain)
	}
	if err != nil {
		// A refused line yields an empty event, whatever the parser saw
		// before (fuzzing found half-filled fields that depended on
		// earlier lines).
		ev.Reset()
	}
	return err
}

// trimSpace drops spaces, tabs, CR and LF from both ends of b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// view returns a string sharing b's memory, without copying. The caller
// must only use it while b's bytes are unchanged: in this package that is the
// memory rule of the package comment.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parseIP parses a client address without allocating. netip.ParseAddr
// keeps no reference to its input on success (an IPv6 zone is interned as a
// copy by package unique), so passing it a view is safe; on failure its error
// would hold the view, which is why the error is dropped here.
func parseIP(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// setRequest splits an HTTP request line "METHOD SP target [SP HTTP/x.y]"
// into ev's Method, Target, Path, Query and HTTPVersion. The target is
// everything between the first and the last space, so a target with spaces
// in it (which old nginx versions accept) survives. It returns the probe
// action when the line is no HTTP request, "" when it is.
func setRequest(req string, ev *event.Event) string {
	if req == "" || req == "-" {
		return ActionNoRequest
	}
	if req[0] == 0x16 {
		return ActionTLSHandshake
	}
	sp := strings.IndexByte(req, ' ')
	if sp < 0 {
		return ActionBadRequest
	}
	method, rest := req[:sp], req[sp+1:]
	version := ""
	if ls := strings.LastIndexByte(rest, ' '); ls >= 0 && strings.HasPrefix(rest[ls+1:], "HTTP/") {
		version = rest[ls+1+len("HTTP/"):]
		rest = rest[:ls]
		if !validVersion(version) {
			return ActionBadRequest
		}
	}
	return setMethodTarget(method, rest, version, ev)
}

// setMethodTarget checks and stores the parts of a request. It returns
// ActionBadRequest for a method that is no HTTP token or an empty target,
// "" otherwise.
func setMethodTarget(method, target, version string, ev *event.Event) string {
	if !isToken(method) || target == "" {
		return ActionBadRequest
	}
	ev.Method = method
	ev.Target = target
	ev.Path = target
	if q := strings.IndexByte(target, '?'); q >= 0 {
		ev.Path = target[:q]
		ev.Query = target[q+1:]
	}
	ev.HTTPVersion = version
	return ""
}

// validVersion reports whether v is an HTTP version number: "1.1", "2.0",
// "2" or "3" (digits, optionally '.' and digits).
func validVersion(v string) bool {
	dot := false
	digits := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0 && i+1 < len(v):
			dot = true
			digits = 0
		default:
			return false
		}
	}
	return digits > 0 && len(v) <= 8
}

// isToken reports whether s is a non-empty RFC 9110 token, the syntax of an
// HTTP method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// setStatus parses a three-digit status code into ev.Status and ev.Outcome.
func setStatus(s string, ev *event.Event) *LineError {
	if len(s) != 3 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return valueErr(ReasonBadStatus, "status", s)
	}
	ev.Status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	ev.Outcome = event.OutcomeFromStatus(ev.Status)
	return nil
}

// parseBytes parses a body byte count: decimal digits, or "-" (Apache's
// zero) and "" for unknown, both -1.
func parseBytes(s string) (int64, bool) {
	if s == "-" || s == "" {
		return -1, true
	}
	if len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// dash maps the log's "-" placeholder to "".
func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}
