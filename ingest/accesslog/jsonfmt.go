package accesslog

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/vigil-soc/vigil/event"
)

// nginx JSON lines come from a log_format with escape=json, one object per
// line, keyed by nginx variable names:
//
//	{"time_local":"10/Oct/2026:13:55:36 +0200","remote_addr":"192.0.2.1",
//	 "remote_user":"","request":"GET / HTTP/1.1","status":"200",
//	 "body_bytes_sent":"612","http_referer":"","http_user_agent":"curl/8.5"}
//
// Keys may come in any order and unknown keys are skipped, whatever their
// value. Values are usually strings; status, body_bytes_sent and msec may
// also be bare numbers, and null reads as "-". The time may be given as
// msec, time_iso8601 or time_local (preferred in that order), and the request
// either as request or as request_method, request_uri and server_protocol
// (preferred when the method is not empty). A key written with escapes
// ("\u0073tatus") is treated as unknown.
//
// The scanner is hand-written: it validates the structure it walks, decodes
// string escapes into the scratch buffer only when a value holds a
// backslash, and is lenient where nginx is (raw bytes >= 0x80 that are not
// UTF-8, and raw control bytes, are passed through).

// jsonFields collects the values of the keys the parser knows; each is a
// view into the line or the scratch buffer.
type jsonFields struct {
	vals [numJSONKeys]string
	has  uint16 // bit k set when vals[k] was seen
}

// Known keys, as indexes into jsonFields.vals.
const (
	jkTimeLocal = iota
	jkTimeISO
	jkMsec
	jkAddr
	jkUser
	jkRequest
	jkMethod
	jkURI
	jkProto
	jkStatus
	jkBytes
	jkReferer
	jkUA
	numJSONKeys
)

// jsonKey returns the index of a known key, or -1.
func jsonKey(k string) int {
	switch k {
	case "time_local":
		return jkTimeLocal
	case "time_iso8601":
		return jkTimeISO
	case "msec":
		return jkMsec
	case "remote_addr":
		return jkAddr
	case "remote_user":
		return jkUser
	case "request":
		return jkRequest
	case "request_method":
		return jkMethod
	case "request_uri":
		return jkURI
	case "server_protocol":
		return jkProto
	case "status":
		return jkStatus
	case "body_bytes_sent":
		return jkBytes
	case "http_referer":
		return jkReferer
	case "http_user_agent":
		return jkUA
	}
	return -1
}

// get returns the value of key k and whether the line had it; "" when it
// did not (vals[k] may still hold an earlier line's value).
func (f *jsonFields) get(k int) (string, bool) {
	if f.has&(1<<k) == 0 {
		return "", false
	}
	return f.vals[k], true
}

// maxJSONDepth bounds the nesting of skipped values.
const maxJSONDepth = 32

var (
	errJSONTruncated = &LineError{Reason: ReasonTruncated, Detail: "line ends inside the JSON object"}
	errJSONSyntax    = &LineError{Reason: ReasonBadJSON, Detail: "not a JSON object"}
)

// jsonErr returns a fresh copy of a template error, so that a caller
// changing the error it got cannot change the next one.
func jsonErr(tmpl *LineError) *LineError {
	e := *tmpl
	return &e
}

// parseJSON parses an nginx JSON line.
func (p *Parser) parseJSON(line []byte, ev *event.Event) error {
	f := &p.json
	f.has = 0 // vals[k] is read only when its bit is set
	if err := p.scanJSONObject(line, f); err != nil {
		return err
	}

	addr, ok := f.get(jkAddr)
	if !ok {
		return lineErr(ReasonBadJSON, "missing key remote_addr")
	}
	if ev.SourceIP, ok = parseIP(addr); !ok {
		return valueErr(ReasonBadIP, "remote_addr", addr)
	}

	switch {
	case f.has&(1<<jkMsec) != 0:
		ev.Time, ok = parseMsec(f.vals[jkMsec])
	case f.has&(1<<jkTimeISO) != 0:
		ev.Time, ok = p.times.parseISO(f.vals[jkTimeISO])
	case f.has&(1<<jkTimeLocal) != 0:
		ev.Time, ok = p.times.parseLocal(f.vals[jkTimeLocal])
	default:
		return lineErr(ReasonBadJSON, "missing key time_local, time_iso8601 or msec")
	}
	if !ok {
		return lineErr(ReasonBadTime, "bad time value")
	}

	if user, ok := f.get(jkUser); ok {
		ev.UserName = dash(user)
	}

	// As for text lines, a probe is recorded once the rest parsed.
	var probeAction, probeReq string
	method, hasMethod := f.get(jkMethod)
	uri, hasURI := f.get(jkURI)
	req, hasReq := f.get(jkRequest)
	switch {
	case hasMethod && hasURI && method != "":
		proto, _ := f.get(jkProto)
		version := ""
		switch {
		case len(proto) > len("HTTP/") && proto[:len("HTTP/")] == "HTTP/" && validVersion(proto[len("HTTP/"):]):
			version = proto[len("HTTP/"):]
		case proto != "" && proto != "-":
			probeAction = ActionBadRequest
		}
		if probeAction == "" {
			probeAction = setMethodTarget(method, uri, version, ev)
		}
		if probeAction != "" { // allocates for probes only
			probeReq = strings.TrimSpace(method + " " + uri + " " + proto)
		}
	case hasReq:
		probeAction, probeReq = setRequest(req, ev), req
	case hasMethod || hasURI:
		probeAction = ActionNoRequest
	default:
		return lineErr(ReasonBadJSON, "missing key request")
	}

	status, ok := f.get(jkStatus)
	if !ok {
		return lineErr(ReasonBadJSON, "missing key status")
	}
	if err := setStatus(status, ev); err != nil {
		return err
	}
	if b, ok := f.get(jkBytes); ok {
		if ev.BodyBytes, ok = parseBytes(b); !ok {
			ev.BodyBytes = -1
			return valueErr(ReasonBadJSON, "body_bytes_sent", b)
		}
	}
	if ref, ok := f.get(jkReferer); ok {
		ev.Referrer = dash(ref)
	}
	if ua, ok := f.get(jkUA); ok {
		ev.UserAgent = dash(ua)
	}
	if probeAction != "" {
		p.probe(ev, probeAction, probeReq)
	}
	return nil
}

// scanJSONObject walks the one object on the line, storing known keys'
// values in f.
func (p *Parser) scanJSONObject(line []byte, f *jsonFields) *LineError {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return jsonErr(errJSONSyntax)
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			if i >= len(line) {
				return jsonErr(errJSONTruncated)
			}
			if line[i] != '"' {
				return lineErr(ReasonBadJSON, "expected a key")
			}
			end, esc, ok := quotedEnd(line, i+1)
			if !ok {
				return jsonErr(errJSONTruncated)
			}
			key := -1
			if !esc {
				key = jsonKey(view(line[i+1 : end]))
			}
			i = skipWS(line, end+1)
			if i >= len(line) {
				return jsonErr(errJSONTruncated)
			}
			if line[i] != ':' {
				return lineErr(ReasonBadJSON, "expected ':'")
			}
			i = skipWS(line, i+1)
			var err *LineError
			if key < 0 {
				i, err = skipJSONValue(line, i, 0)
			} else {
				f.vals[key], i, err = p.jsonScalar(line, i)
				f.has |= 1 << key
			}
			if err != nil {
				return err
			}
			i = skipWS(line, i)
			if i >= len(line) {
				return jsonErr(errJSONTruncated)
			}
			if line[i] == '}' {
				i++
				break
			}
			if line[i] != ',' {
				return lineErr(ReasonBadJSON, "expected ',' or '}'")
			}
			i = skipWS(line, i+1)
		}
	}
	if skipWS(line, i) != len(line) {
		return lineErr(ReasonBadJSON, "data after the object")
	}
	return nil
}

// jsonScalar reads the value of a known key at line[i]: a string (decoded
// when needed), a number or literal (as its text; null as "-"). It returns
// the value and the index after it.
func (p *Parser) jsonScalar(line []byte, i int) (string, int, *LineError) {
	if i >= len(line) {
		return "", 0, jsonErr(errJSONTruncated)
	}
	switch c := line[i]; {
	case c == '"':
		end, esc, ok := quotedEnd(line, i+1)
		if !ok {
			return "", 0, jsonErr(errJSONTruncated)
		}
		raw := line[i+1 : end]
		if !esc {
			return view(raw), end + 1, nil
		}
		s, ok := p.unescapeJSON(raw)
		if !ok {
			return "", 0, lineErr(ReasonBadJSON, "bad string escape")
		}
		return s, end + 1, nil
	case c == '{' || c == '[':
		return "", 0, lineErr(ReasonBadJSON, "object or array where a scalar belongs")
	default:
		end, err := skipJSONValue(line, i, 0)
		if err != nil {
			return "", 0, err
		}
		if c == 'n' {
			return "-", end, nil
		}
		return view(line[i:end]), end, nil
	}
}

// skipJSONValue returns the index after the JSON value starting at line[i].
func skipJSONValue(line []byte, i, depth int) (int, *LineError) {
	if i >= len(line) {
		return 0, jsonErr(errJSONTruncated)
	}
	switch c := line[i]; {
	case c == '"':
		end, _, ok := quotedEnd(line, i+1)
		if !ok {
			return 0, jsonErr(errJSONTruncated)
		}
		return end + 1, nil
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return 0, lineErr(ReasonBadJSON, "nested too deeply")
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(line, i+1)
		if i < len(line) && line[i] == closer {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(line) {
					return 0, jsonErr(errJSONTruncated)
				}
				if line[i] != '"' {
					return 0, lineErr(ReasonBadJSON, "expected a key")
				}
				end, _, ok := quotedEnd(line, i+1)
				if !ok {
					return 0, jsonErr(errJSONTruncated)
				}
				i = skipWS(line, end+1)
				if i >= len(line) {
					return 0, jsonErr(errJSONTruncated)
				}
				if line[i] != ':' {
					return 0, lineErr(ReasonBadJSON, "expected ':'")
				}
				i = skipWS(line, i+1)
			}
			var err *LineError
			if i, err = skipJSONValue(line, i, depth+1); err != nil {
				return 0, err
			}
			i = skipWS(line, i)
			if i >= len(line) {
				return 0, jsonErr(errJSONTruncated)
			}
			if line[i] == closer {
				return i + 1, nil
			}
			if line[i] != ',' {
				return 0, lineErr(ReasonBadJSON, "expected ',' or a closing bracket")
			}
			i = skipWS(line, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(line) && isNumberByte(line[j]) {
			j++
		}
		if c == '-' && j == i+1 {
			return 0, lineErr(ReasonBadJSON, "bad number")
		}
		return j, nil
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(line)-i >= len(lit) && string(line[i:i+len(lit)]) == lit {
				return i + len(lit), nil
			}
			if len(line)-i < len(lit) && string(line[i:]) == lit[:len(line)-i] {
				return 0, jsonErr(errJSONTruncated)
			}
		}
		return 0, lineErr(ReasonBadJSON, "unexpected byte")
	}
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

func skipWS(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n') {
		i++
	}
	return i
}

// unescapeJSON decodes the escapes of a JSON string's content into the
// scratch buffer and returns a view of the result. \uXXXX escapes become
// UTF-8, surrogate pairs are joined, and a lone surrogate becomes U+FFFD.
func (p *Parser) unescapeJSON(raw []byte) (string, bool) {
	start := len(p.scratch)
	for {
		bs := bytes.IndexByte(raw, '\\')
		if bs < 0 {
			break
		}
		p.scratch = append(p.scratch, raw[:bs]...)
		raw = raw[bs:]
		if len(raw) < 2 {
			return "", false
		}
		n := 2
		switch raw[1] {
		case '"', '\\', '/':
			p.scratch = append(p.scratch, raw[1])
		case 'b':
			p.scratch = append(p.scratch, '\b')
		case 'f':
			p.scratch = append(p.scratch, '\f')
		case 'n':
			p.scratch = append(p.scratch, '\n')
		case 'r':
			p.scratch = append(p.scratch, '\r')
		case 't':
			p.scratch = append(p.scratch, '\t')
		case 'u':
			r, ok := hex4(raw[2:])
			if !ok {
				return "", false
			}
			n = 6
			if utf16IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if r < 0xDC00 && len(raw) >= 12 && raw[6] == '\\' && raw[7] == 'u' {
					r2, ok2 = hex4(raw[8:])
				}
				if ok2 && r2 >= 0xDC00 && r2 <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					n = 12
				} else {
					r = utf8.RuneError
				}
			}
			p.scratch = utf8.AppendRune(p.scratch, r)
		default:
			return "", false
		}
		raw = raw[n:]
	}
	p.scratch = append(p.scratch, raw...)
	return view(p.scratch[start:]), true
}

func utf16IsSurrogate(r rune) bool { return r >= 0xD800 && r <= 0xDFFF }

// hex4 parses the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}
