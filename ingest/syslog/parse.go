package syslog

import (
	"bytes"
	"net/netip"
	"time"
)

// The values of Message.Format.
const (
	FormatRFC3164 = "rfc3164"
	FormatRFC5424 = "rfc5424"
)

// Message is one syslog message, as handed to the handler given to New.
//
// The byte slices (Content, StructuredData) point into the buffer the
// message was read into: they are valid only during the handler call (or,
// from Parse, as long as its input is). The strings are the receiver's own
// and may be kept.
type Message struct {
	// Format is FormatRFC3164 or FormatRFC5424. A message with no valid
	// RFC 3164 header is reported as FormatRFC3164 with everything after
	// the priority in Content.
	Format string
	// Facility (0-23) and Severity (0-7) come from the priority, <PRI>.
	Facility, Severity int
	// Time is the header timestamp, zero when absent or unparseable. An
	// RFC 3164 timestamp has no year and no zone: it is read in the zone of
	// the receiver's clock, in the year that puts it no more than a week
	// after the receiver's time (a December message read in January belongs
	// to the previous year).
	Time time.Time
	// Hostname, AppName, ProcID and MsgID are the header fields, empty when
	// absent or "-". An RFC 3164 TAG "nginx[42]:" gives AppName "nginx" and
	// ProcID "42"; RFC 3164 has no MsgID.
	Hostname, AppName, ProcID, MsgID string
	// StructuredData is RFC 5424 STRUCTURED-DATA as sent, brackets and
	// escapes included ("[id@1 a=\"b\"][x]"); nil when "-" or RFC 3164.
	StructuredData []byte
	// Content is the MSG part: for nginx, the access log line without the
	// "tag: " prefix. A UTF-8 BOM (RFC 5424) and trailing '\n', "\r\n" and
	// NUL bytes are removed.
	Content []byte
	// Peer is the sender's address (set by the Server, not by Parse).
	Peer netip.Addr
}

// The reasons of a ParseError, and the keys of Stats.MalformedByReason.
const (
	ReasonEmpty       = "empty"        // nothing but line ends or NULs
	ReasonNoPriority  = "no-priority"  // no leading '<'
	ReasonBadPriority = "bad-priority" // <PRI> not 0-191, or not closed
	ReasonBadHeader   = "bad-header"   // an RFC 5424 header cut short or with bad STRUCTURED-DATA
	ReasonTooLong     = "too-long"     // a TCP frame longer than Config.MaxMessage, skipped
	ReasonBadFraming  = "bad-framing"  // a TCP stream with a bad octet count or cut inside a frame; the connection is closed
)

// reason indexes the fixed set of reasons; rOK is no error.
type reason uint8

const (
	rOK reason = iota
	rEmpty
	rNoPriority
	rBadPriority
	rBadHeader
	rTooLong
	rBadFraming
	numReasons
)

var reasonNames = [numReasons]string{
	"", ReasonEmpty, ReasonNoPriority, ReasonBadPriority, ReasonBadHeader, ReasonTooLong, ReasonBadFraming,
}

// Reasons returns every reason a message can be counted as malformed for,
// so that a metric can create its labels up front.
func Reasons() []string {
	return append([]string(nil), reasonNames[1:]...)
}

// ParseError is the error of Parse. Reason is one of the Reason constants,
// fit for a metric label; Detail says more, for a log.
type ParseError struct {
	Reason string
	Detail string
}

// Error returns "syslog: <reason>: <detail>".
func (e *ParseError) Error() string {
	if e.Detail == "" {
		return "syslog: " + e.Reason
	}
	return "syslog: " + e.Reason + ": " + e.Detail
}

// Parse parses one syslog message without framing (one UDP datagram, or one
// TCP frame without its length or newline), RFC 5424 when the priority is
// followed by version "1 ", RFC 3164 otherwise. now is the receiver's time,
// used to complete RFC 3164 timestamps. Content and StructuredData point
// into b. Errors are *ParseError.
func Parse(b []byte, now time.Time) (Message, error) {
	var p parser
	var m Message
	if r, detail := p.parse(b, now, &m); r != rOK {
		return Message{}, &ParseError{Reason: reasonNames[r], Detail: detail}
	}
	return m, nil
}

// maxInterned bounds a parser's string cache; it is emptied when full.
const maxInterned = 1024

// parser parses messages. With a non-nil strs, header fields are interned
// so that a stream of messages from the same senders does not allocate; a
// parser is then owned by one goroutine.
type parser struct {
	strs map[string]string
}

// str returns b as a string, from the cache when there is one.
func (p *parser) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if p.strs == nil || len(b) > 255 {
		return string(b)
	}
	if s, ok := p.strs[string(b)]; ok {
		return s
	}
	if len(p.strs) >= maxInterned {
		clear(p.strs)
	}
	s := string(b)
	p.strs[s] = s
	return s
}

// parse fills m from b, leaving Peer alone. On error it returns the reason
// and a constant detail, and m is partly filled.
func (p *parser) parse(b []byte, now time.Time, m *Message) (reason, string) {
	peer := m.Peer
	*m = Message{Peer: peer}
	for len(b) > 0 {
		if c := b[len(b)-1]; c != '\n' && c != '\r' && c != 0 {
			break
		}
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return rEmpty, ""
	}
	if b[0] != '<' {
		return rNoPriority, "message does not start with '<'"
	}
	pri, i := 0, 1
	for i < len(b) && i <= 4 && isDigit(b[i]) {
		pri = pri*10 + int(b[i]-'0')
		i++
	}
	switch {
	case i == 1:
		return rBadPriority, "no digits after '<'"
	case i >= len(b) || b[i] != '>':
		return rBadPriority, "priority not closed by '>' after at most 3 digits"
	case i > 4 || pri > 191:
		return rBadPriority, "priority above 191 or longer than 3 digits"
	}
	m.Facility, m.Severity = pri/8, pri%8
	b = b[i+1:]
	if len(b) >= 2 && b[0] == '1' && b[1] == ' ' {
		m.Format = FormatRFC5424
		return p.parse5424(b[2:], m)
	}
	m.Format = FormatRFC3164
	p.parse3164(b, now, m)
	return rOK, ""
}

// parse3164 reads "TIMESTAMP [HOSTNAME] TAG: MSG" leniently: without a
// timestamp (RFC 3164 or RFC 3339) the whole of b is the content; a first
// word that ends in ':' (or "[pid]:") is the tag, as nginx sends with
// nohostname; otherwise it is the hostname, and the tag follows if there is
// one.
func (p *parser) parse3164(b []byte, now time.Time, m *Message) {
	if t, n, ok := parse3164Time(b, now); ok {
		m.Time = t
		b = b[n:]
	} else if tok := word(b); len(tok) >= 20 && tok[4] == '-' {
		// rsyslog's RSYSLOG_ForwardFormat: an RFC 3339 timestamp.
		t, ok := parseRFC3339(tok)
		if !ok {
			m.Content = b
			return
		}
		m.Time = t
		b = b[len(tok):]
	} else {
		m.Content = b
		return
	}
	if len(b) > 0 {
		b = b[1:] // the space after the timestamp
	}
	if p.tag(b, m) {
		return
	}
	host := word(b)
	if !validHostname(host) {
		m.Content = b
		return
	}
	m.Hostname = p.str(host)
	b = b[len(host):]
	if len(b) > 0 {
		b = b[1:]
	}
	if !p.tag(b, m) {
		m.Content = b
	}
}

// tag reads an RFC 3164 TAG, "app:" or "app[pid]:" (or "app[pid]" without
// the colon) followed by a space or the end, at the start of b; on success
// it sets AppName, ProcID and Content (what follows, one space dropped).
// A colon followed by anything but a space does not end a tag, so that an
// IPv6 hostname is not read as one.
func (p *parser) tag(b []byte, m *Message) bool {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == ':':
			if i == 0 || (i+1 < len(b) && b[i+1] != ' ') {
				return false
			}
			m.AppName = p.str(b[:i])
			m.Content = trimSpace1(b[i+1:])
			return true
		case c == '[':
			end := bytes.IndexByte(b[i:], ']')
			if i == 0 || end < 0 {
				return false
			}
			pid := b[i+1 : i+end]
			if bytes.IndexByte(pid, ' ') >= 0 {
				return false
			}
			rest := b[i+end+1:]
			if len(rest) > 0 && rest[0] == ':' {
				rest = rest[1:]
			}
			if len(rest) > 0 && rest[0] != ' ' {
				return false
			}
			m.AppName = p.str(b[:i])
			m.ProcID = p.str(pid)
			m.Content = trimSpace1(rest)
			return true
		case c <= ' ' || c == 0x7f:
			return false
		}
	}
	return false
}

// validHostname reports whether b looks like a host name or address:
// letters, digits and ".-_:%" only.
func validHostname(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		case c == '.', c == '-', c == '_', c == ':', c == '%':
		default:
			return false
		}
	}
	return true
}

// parse5424 reads "TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]", the
// part after "<PRI>1 ".
func (p *parser) parse5424(b []byte, m *Message) (reason, string) {
	var f [5][]byte
	for i := range f {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return rBadHeader, "header field missing or empty"
		}
		f[i], b = b[:sp], b[sp+1:]
	}
	if len(f[0]) != 1 || f[0][0] != '-' {
		m.Time, _ = parseRFC3339(f[0])
	}
	m.Hostname = p.nilValue(f[1])
	m.AppName = p.nilValue(f[2])
	m.ProcID = p.nilValue(f[3])
	m.MsgID = p.nilValue(f[4])
	n, r := skipSD(b)
	if r != "" {
		return rBadHeader, r
	}
	if b[0] == '[' {
		m.StructuredData = b[:n]
	}
	b = b[n:]
	if len(b) == 0 {
		return rOK, ""
	}
	if b[0] != ' ' {
		return rBadHeader, "STRUCTURED-DATA not followed by a space"
	}
	b = b[1:]
	m.Content = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	return rOK, ""
}

// nilValue returns f as a string, "" for the RFC 5424 NILVALUE "-".
func (p *parser) nilValue(f []byte) string {
	if len(f) == 1 && f[0] == '-' {
		return ""
	}
	return p.str(f)
}

// skipSD returns the length of the STRUCTURED-DATA at the start of b: "-",
// or one or more "[...]" elements whose quoted values may hold \" \\ and \]
// escapes (and, sloppily, unescaped ']'). It returns a reason when b holds
// none or an element is not closed.
func skipSD(b []byte) (int, string) {
	if len(b) == 0 {
		return 0, "no STRUCTURED-DATA"
	}
	if b[0] == '-' {
		return 1, ""
	}
	if b[0] != '[' {
		return 0, "STRUCTURED-DATA neither '-' nor '['"
	}
	i := 0
	for i < len(b) && b[i] == '[' {
		i++
		inQuote := false
	element:
		for {
			if i >= len(b) {
				return 0, "STRUCTURED-DATA element not closed"
			}
			switch c := b[i]; {
			case inQuote && c == '\\':
				i++ // the escaped byte is skipped below
			case c == '"':
				inQuote = !inQuote
			case !inQuote && c == ']':
				i++
				break element
			}
			i++
		}
	}
	return i, ""
}

// word returns b up to its first space.
func word(b []byte) []byte {
	if sp := bytes.IndexByte(b, ' '); sp >= 0 {
		return b[:sp]
	}
	return b
}

// trimSpace1 drops one leading space.
func trimSpace1(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}
