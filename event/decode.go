package event

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// UnmarshalJSON decodes one ECS document such as AppendJSON writes. It is a
// hand-written scanner (the bus carries 100k+ events/s and reflection was
// most of the detector's time): fields Vigil knows are set, every other key
// and value is skipped, and malformed JSON is an error naming the offset.
func (e *Event) UnmarshalJSON(data []byte) error {
	*e = Event{BodyBytes: -1}
	// One copy of the document: the strings of the event are parts of it
	// (but those with escapes), which costs one allocation, not one per
	// field.
	d := decoder{data: data, text: string(data)}
	d.ws()
	if err := d.object(e, objTop); err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.data) {
		return d.errorf("unexpected data after the document")
	}
	return nil
}

// decoder scans one JSON document.
type decoder struct {
	data  []byte
	text  string // data as a string
	i     int
	buf   []byte
	depth int
}

// maxDepth bounds nesting, so a hostile document cannot exhaust the stack.
const maxDepth = 64

var errSyntax = errors.New("invalid JSON")

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, d.i, fmt.Sprintf(format, args...))
}

// Objects of the document, so one method handles every key without
// allocating a closure per object.
const (
	objSkip = iota
	objTop
	objEvent
	objVigil
	objSource
	objHTTP
	objRequest
	objResponse
	objBody
	objURL
	objUserAgent
	objUser
	objApp
	objToken
	objCSP
)

// field consumes the value of key in object obj.
func (e *Event) field(d *decoder, obj int, key []byte) error {
	switch obj {
	case objTop:
		switch string(key) {
		case "@timestamp":
			s, err := d.rawString()
			if err != nil {
				return err
			}
			t, err := time.Parse(time.RFC3339Nano, string(s))
			if err != nil {
				return fmt.Errorf("@timestamp: %w", err)
			}
			e.Time = t
			return nil
		case "event":
			return d.object(e, objEvent)
		case "vigil":
			return d.object(e, objVigil)
		case "source":
			return d.object(e, objSource)
		case "http":
			return d.object(e, objHTTP)
		case "url":
			return d.object(e, objURL)
		case "user_agent":
			return d.object(e, objUserAgent)
		case "user":
			return d.object(e, objUser)
		case "message":
			return d.strTo(&e.Message)
		}
	case objEvent:
		switch string(key) {
		case "id":
			return d.strTo(&e.ID)
		case "dataset":
			return d.strTo(&e.Dataset)
		case "action":
			return d.strTo(&e.Action)
		case "outcome":
			return d.strTo(&e.Outcome)
		}
	case objVigil:
		switch string(key) {
		case "source":
			return d.strTo(&e.Source)
		case "app":
			return d.object(e, objApp)
		case "token":
			return d.object(e, objToken)
		case "csp":
			if e.CSP == nil {
				e.CSP = &CSP{}
			}
			return d.object(e, objCSP)
		}
	case objApp:
		if string(key) == "name" {
			return d.strTo(&e.Name)
		}
	case objToken:
		if string(key) == "jti" {
			return d.strTo(&e.JTI)
		}
	case objCSP:
		return e.CSP.field(d, key)
	case objSource:
		if string(key) == "ip" {
			s, err := d.rawString()
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(string(s))
			if err != nil {
				return fmt.Errorf("source.ip: %w", err)
			}
			e.SourceIP = ip.Unmap()
			return nil
		}
	case objHTTP:
		switch string(key) {
		case "request":
			return d.object(e, objRequest)
		case "response":
			return d.object(e, objResponse)
		case "version":
			return d.strTo(&e.HTTPVersion)
		}
	case objRequest:
		switch string(key) {
		case "method":
			return d.strTo(&e.Method)
		case "referrer":
			return d.strTo(&e.Referrer)
		case "id":
			return d.strTo(&e.RequestID)
		}
	case objResponse:
		switch string(key) {
		case "status_code":
			n, err := d.int()
			e.Status = int(n)
			return err
		case "body":
			return d.object(e, objBody)
		}
	case objBody:
		if string(key) == "bytes" {
			n, err := d.int()
			e.BodyBytes = n
			return err
		}
	case objURL:
		switch string(key) {
		case "original":
			return d.strTo(&e.Target)
		case "path":
			return d.strTo(&e.Path)
		case "query":
			return d.strTo(&e.Query)
		}
	case objUserAgent:
		if string(key) == "original" {
			return d.strTo(&e.UserAgent)
		}
	case objUser:
		switch string(key) {
		case "name":
			return d.strTo(&e.UserName)
		case "id":
			return d.strTo(&e.UserID)
		}
	}
	return d.skip()
}

// field consumes the value of key in the vigil.csp object.
func (c *CSP) field(d *decoder, key []byte) error {
	switch string(key) {
	case "document_uri":
		return d.strTo(&c.DocumentURI)
	case "blocked_uri":
		return d.strTo(&c.BlockedURI)
	case "blocked_origin":
		return d.strTo(&c.BlockedOrigin)
	case "effective_directive":
		return d.strTo(&c.EffectiveDirective)
	case "violated_directive":
		return d.strTo(&c.ViolatedDirective)
	case "original_policy":
		return d.strTo(&c.OriginalPolicy)
	case "disposition":
		return d.strTo(&c.Disposition)
	case "sample":
		return d.strTo(&c.Sample)
	case "source_file":
		return d.strTo(&c.SourceFile)
	case "report_format":
		return d.strTo(&c.Format)
	case "line_number":
		return d.intTo(&c.LineNumber)
	case "column_number":
		return d.intTo(&c.ColumnNumber)
	case "status_code":
		return d.intTo(&c.StatusCode)
	case "age_ms":
		n, err := d.int()
		c.AgeMillis = n
		return err
	}
	return d.skip()
}

func (d *decoder) intTo(dst *int) error {
	n, err := d.int()
	*dst = int(n)
	return err
}

func (d *decoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object scans an object, handing each key, positioned at its value, to
// e.field (e may be nil for objSkip). The key is only valid during the call.
func (d *decoder) object(e *Event, obj int) error {
	if d.depth++; d.depth > maxDepth {
		return d.errorf("nested deeper than %d", maxDepth)
	}
	defer func() { d.depth-- }()
	d.ws()
	if d.i >= len(d.data) || d.data[d.i] != '{' {
		return d.errorf("expected an object")
	}
	d.i++
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		key, err := d.rawString()
		if err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return d.errorf("expected ':' after a key")
		}
		d.i++
		d.ws()
		if err := e.field(d, obj, key); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.data) {
			return d.errorf("unterminated object")
		}
		switch d.data[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("expected ',' or '}'")
		}
	}
}

// stringStop marks the bytes that end the plain run of a string: the quote,
// the backslash and control characters.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// rawString scans a string and returns its decoded bytes, which are only
// valid until the next scan.
func (d *decoder) rawString() ([]byte, error) {
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return nil, d.errorf("expected a string")
	}
	d.i++
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if !stringStop[c] {
			d.i++
			continue
		}
		switch {
		case c == '"':
			s := d.data[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.escaped(start)
		default:
			return nil, d.errorf("control character in a string")
		}
	}
	return nil, d.errorf("unterminated string")
}

// escaped finishes a string that has escapes, decoding into d.buf.
func (d *decoder) escaped(start int) ([]byte, error) {
	d.buf = append(d.buf[:0], d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return d.buf, nil
		case c < 0x20:
			return nil, d.errorf("control character in a string")
		case c != '\\':
			d.buf = append(d.buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.data) {
			break
		}
		d.i++
		switch esc := d.data[d.i]; esc {
		case '"', '\\', '/':
			d.buf = append(d.buf, esc)
		case 'b':
			d.buf = append(d.buf, '\b')
		case 'f':
			d.buf = append(d.buf, '\f')
		case 'n':
			d.buf = append(d.buf, '\n')
		case 'r':
			d.buf = append(d.buf, '\r')
		case 't':
			d.buf = append(d.buf, '\t')
		case 'u':
			r, ok := d.hex4(d.i + 1)
			if !ok {
				return nil, d.errorf("bad \\u escape")
			}
			d.i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := d.hex4(d.i + 3); ok && d.i+2 < len(d.data) && d.data[d.i+1] == '\\' && d.data[d.i+2] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						d.i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			d.buf = utf8.AppendRune(d.buf, r)
		default:
			return nil, d.errorf("bad escape \\%c", esc)
		}
		d.i++
	}
	return nil, d.errorf("unterminated string")
}

func (d *decoder) hex4(at int) (rune, bool) {
	if at+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// str scans a string value (null reads as "").
func (d *decoder) str() (string, error) {
	if d.literal("null") {
		return "", nil
	}
	start := d.i + 1
	b, err := d.rawString()
	if err != nil {
		return "", err
	}
	if len(b) == d.i-1-start { // no escapes (they always shrink): a part of text
		return d.text[start : d.i-1], nil
	}
	return string(b), nil
}

func (d *decoder) strTo(dst *string) (err error) {
	*dst, err = d.str()
	return err
}

// int scans an integer value.
func (d *decoder) int() (int64, error) {
	start := d.i
	for d.i < len(d.data) && (d.data[d.i] == '-' || d.data[d.i] >= '0' && d.data[d.i] <= '9' ||
		d.data[d.i] == '.' || d.data[d.i] == 'e' || d.data[d.i] == 'E' || d.data[d.i] == '+') {
		d.i++
	}
	n, err := strconv.ParseInt(string(d.data[start:d.i]), 10, 64)
	if err != nil {
		return 0, d.errorf("expected an integer")
	}
	return n, nil
}

func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.i >= len(lit) && string(d.data[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// skip scans over any value.
func (d *decoder) skip() error {
	d.ws()
	if d.i >= len(d.data) {
		return d.errorf("expected a value")
	}
	switch c := d.data[d.i]; {
	case c == '{':
		return d.object(nil, objSkip)
	case c == '[':
		if d.depth++; d.depth > maxDepth {
			return d.errorf("nested deeper than %d", maxDepth)
		}
		defer func() { d.depth-- }()
		d.i++
		d.ws()
		if d.i < len(d.data) && d.data[d.i] == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(d.data) {
				return d.errorf("unterminated array")
			}
			if d.data[d.i] == ']' {
				d.i++
				return nil
			}
			if d.data[d.i] != ',' {
				return d.errorf("expected ',' or ']'")
			}
			d.i++
		}
	case c == '"':
		_, err := d.rawString()
		return err
	case c == 't':
		if d.literal("true") {
			return nil
		}
	case c == 'f':
		if d.literal("false") {
			return nil
		}
	case c == 'n':
		if d.literal("null") {
			return nil
		}
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		for d.i < len(d.data) && (d.data[d.i] == '-' || d.data[d.i] >= '0' && d.data[d.i] <= '9' ||
			d.data[d.i] == '.' || d.data[d.i] == 'e' || d.data[d.i] == 'E' || d.data[d.i] == '+') {
			d.i++
		}
		if _, err := strconv.ParseFloat(string(d.data[start:d.i]), 64); err != nil {
			return d.errorf("bad number")
		}
		return nil
	}
	return d.errorf("unexpected character %q", d.data[d.i])
}
