package event

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as one ECS JSON document (no trailing newline) to b.
// It is the wire format of the bus and the document format of the index.
// Empty fields are omitted. It does not allocate beyond growing b.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"@timestamp":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event":{"kind":"event","category":["`...)
	cats := e.Category()
	for i, c := range cats {
		if i > 0 {
			b = append(b, `","`...)
		}
		b = append(b, c...)
	}
	b = append(b, `"]`...)
	b = appendField(b, "id", e.ID)
	b = appendField(b, "dataset", e.Dataset)
	b = appendField(b, "action", e.Action)
	b = appendField(b, "outcome", e.Outcome)
	b = append(b, `},"vigil":{"source":`...)
	b = appendString(b, e.Source)
	if e.Name != "" {
		b = append(b, `,"app":{"name":`...)
		b = appendString(b, e.Name)
		b = append(b, '}')
	}
	if e.JTI != "" {
		b = append(b, `,"token":{"jti":`...)
		b = appendString(b, e.JTI)
		b = append(b, '}')
	}
	if e.CSP != nil {
		b = e.CSP.appendJSON(b)
	}
	b = append(b, '}')
	b = appendField(b, "message", e.Message)
	if e.SourceIP.IsValid() {
		b = append(b, `,"source":{"ip":"`...)
		b = e.SourceIP.AppendTo(b)
		b = append(b, `"}`...)
	}
	if e.Method != "" || e.Referrer != "" || e.RequestID != "" || e.Status != 0 || e.HTTPVersion != "" || e.BodyBytes >= 0 {
		b = append(b, `,"http":{"request":{`...)
		n := len(b)
		b = appendField(b, "method", e.Method)
		b = appendField(b, "referrer", e.Referrer)
		b = appendField(b, "id", e.RequestID)
		if len(b) > n {
			b = removeLeadingComma(b, n)
		}
		b = append(b, `},"response":{`...)
		n = len(b)
		if e.Status != 0 {
			b = append(b, `,"status_code":`...)
			b = strconv.AppendInt(b, int64(e.Status), 10)
		}
		if e.BodyBytes >= 0 {
			b = append(b, `,"body":{"bytes":`...)
			b = strconv.AppendInt(b, e.BodyBytes, 10)
			b = append(b, '}')
		}
		if len(b) > n {
			b = removeLeadingComma(b, n)
		}
		b = append(b, '}')
		b = appendField(b, "version", e.HTTPVersion)
		b = append(b, '}')
	}
	if e.Target != "" || e.Path != "" {
		b = append(b, `,"url":{`...)
		n := len(b)
		b = appendField(b, "original", e.Target)
		b = appendField(b, "path", e.Path)
		b = appendField(b, "query", e.Query)
		b = removeLeadingComma(b, n)
		b = append(b, '}')
	}
	if e.UserAgent != "" {
		b = append(b, `,"user_agent":{"original":`...)
		b = appendString(b, e.UserAgent)
		b = append(b, '}')
	}
	if e.UserName != "" || e.UserID != "" {
		b = append(b, `,"user":{`...)
		n := len(b)
		b = appendField(b, "name", e.UserName)
		b = appendField(b, "id", e.UserID)
		b = removeLeadingComma(b, n)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSON appends ,"csp":{...} (inside the vigil object).
func (c *CSP) appendJSON(b []byte) []byte {
	b = append(b, `,"csp":{`...)
	n := len(b)
	b = appendField(b, "document_uri", c.DocumentURI)
	b = appendField(b, "blocked_uri", c.BlockedURI)
	b = appendField(b, "blocked_origin", c.BlockedOrigin)
	b = appendField(b, "effective_directive", c.EffectiveDirective)
	b = appendField(b, "violated_directive", c.ViolatedDirective)
	b = appendField(b, "original_policy", c.OriginalPolicy)
	b = appendField(b, "disposition", c.Disposition)
	b = appendField(b, "sample", c.Sample)
	b = appendField(b, "source_file", c.SourceFile)
	b = appendInt(b, "line_number", int64(c.LineNumber))
	b = appendInt(b, "column_number", int64(c.ColumnNumber))
	b = appendInt(b, "status_code", int64(c.StatusCode))
	b = appendField(b, "report_format", c.Format)
	b = appendInt(b, "age_ms", c.AgeMillis)
	b = removeLeadingComma(b, n)
	return append(b, '}')
}

// appendInt appends ,"name":value when value is not zero.
func appendInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// removeLeadingComma drops the comma that appendField wrote at b[n], the
// first field of an object.
func removeLeadingComma(b []byte, n int) []byte {
	if len(b) > n && b[n] == ',' {
		copy(b[n:], b[n+1:])
		b = b[:len(b)-1]
	}
	return b
}

// appendField appends ,"name":"value" when value is not empty.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

const hexDigits = "0123456789abcdef"

// plainByte marks the ASCII bytes a JSON string holds as they are: not a
// control character, quote or backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, so every document is valid JSON whatever a client sent;
// it is written as the character, not an escape, so decoding and encoding
// again gives the same bytes.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plainByte[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...) // the replacement character itself, as a decoder would read the escape
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }
