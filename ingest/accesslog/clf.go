package accesslog

import (
	"bytes"

	"github.com/vigil-soc/vigil/event"
)

// The text formats share one grammar:
//
//	addr SP ident SP user SP '[' time ']' SP '"' request '"' SP status SP bytes
//	SP '"' referer '"' SP '"' user_agent '"' [SP '"' x_forwarded_for '"'] *(SP extra)
//
// nginx writes "-" for ident; Apache writes %l there. The forwarded-for
// field is required for nginx-main; further fields (request_time, upstream
// details) are accepted and ignored, but a quoted one must be closed, so that
// a line cut inside one is still reported as truncated.
//
// Quoted fields may hold escapes in either server's style: nginx writes '"',
// '\' and non-printable bytes as \xHH; Apache writes \" and \\, \n, \t, \r,
// \b, \v, and \xhh for other non-printables. A backslash therefore always
// escapes the next byte, so \" never ends a field. Fields without a
// backslash are returned as views of the line; the others are decoded into
// the scratch buffer.

// parseText parses a combined-family line. requireXFF makes the quoted
// $http_x_forwarded_for field after the user agent mandatory (nginx-main).
func (p *Parser) parseText(line []byte, ev *event.Event, requireXFF bool) error {
	// remote_addr
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return lineErr(ReasonTruncated, "line ends in remote_addr")
	}
	addr, ok := parseIP(view(line[:sp]))
	if !ok {
		return valueErr(ReasonBadIP, "remote_addr", view(line[:sp]))
	}
	ev.SourceIP = addr
	i := sp + 1

	// ident (Apache %l): a token, ignored.
	sp = bytes.IndexByte(line[i:], ' ')
	if sp < 0 {
		return lineErr(ReasonTruncated, "line ends in ident")
	}
	i += sp + 1

	// remote_user: up to " [", since a user name may hold spaces.
	var user []byte
	if len(line)-i >= 3 && line[i] == '-' && line[i+1] == ' ' && line[i+2] == '[' {
		i += 2
	} else {
		end := bytes.Index(line[i:], []byte(" ["))
		if end < 0 {
			if bytes.IndexByte(line[i:], ' ') >= 0 {
				return lineErr(ReasonBadTime, "no [time_local] after remote_user")
			}
			return lineErr(ReasonTruncated, "line ends in remote_user")
		}
		user = line[i : i+end]
		i += end + 1
	}
	if i >= len(line) || line[i] != '[' {
		return lineErr(ReasonTruncated, "line ends before time_local")
	}

	// [time_local]
	end := bytes.IndexByte(line[i+1:], ']')
	if end < 0 {
		return lineErr(ReasonTruncated, "line ends in time_local")
	}
	ts := view(line[i+1 : i+1+end])
	t, ok := p.times.parseLocal(ts)
	if !ok {
		return valueErr(ReasonBadTime, "time_local", ts)
	}
	ev.Time = t
	i += end + 2
	if len(user) > 0 {
		ev.UserName = dash(p.unescapeIfNeeded(user))
	}

	// "request"
	if err := expectSpaceQuote(line, i, ReasonMalformed, "request"); err != nil {
		return err
	}
	req, next, ok := p.quotedText(line, i+1)
	if !ok {
		return lineErr(ReasonTruncated, "line ends in request")
	}
	i = next
	// A probe's request is recorded once the rest of the line parsed: the
	// line may still turn out malformed.
	probeAction := setRequest(req, ev)

	// status
	if i >= len(line) {
		return lineErr(ReasonTruncated, "line ends after request")
	}
	if line[i] != ' ' {
		return lineErr(ReasonMalformed, "no space after request")
	}
	i++
	sp = bytes.IndexByte(line[i:], ' ')
	if sp < 0 {
		return lineErr(ReasonTruncated, "line ends in status")
	}
	if err := setStatus(view(line[i:i+sp]), ev); err != nil {
		return err
	}
	i += sp + 1

	// body_bytes_sent
	sp = bytes.IndexByte(line[i:], ' ')
	if sp < 0 {
		return lineErr(ReasonTruncated, "line ends in body_bytes_sent")
	}
	n, ok := parseBytes(view(line[i : i+sp]))
	if !ok {
		return valueErr(ReasonMalformed, "body_bytes_sent", view(line[i:i+sp]))
	}
	ev.BodyBytes = n
	i += sp

	// "referer" "user_agent"
	if err := expectSpaceQuote(line, i, ReasonMalformed, "http_referer"); err != nil {
		return err
	}
	ref, next, ok := p.quotedText(line, i+1)
	if !ok {
		return lineErr(ReasonTruncated, "line ends in http_referer")
	}
	i = next
	if err := expectSpaceQuote(line, i, ReasonMalformed, "http_user_agent"); err != nil {
		return err
	}
	ua, next, ok := p.quotedText(line, i+1)
	if !ok {
		return lineErr(ReasonTruncated, "line ends in http_user_agent")
	}
	i = next
	ev.Referrer = dash(ref)
	ev.UserAgent = dash(ua)

	// "x_forwarded_for", then anything.
	if requireXFF {
		if err := expectSpaceQuote(line, i, ReasonMalformed, "http_x_forwarded_for"); err != nil {
			return err
		}
		end, _, ok := quotedEnd(line, i+2)
		if !ok {
			return lineErr(ReasonTruncated, "line ends in http_x_forwarded_for")
		}
		i = end + 1
	}
	if err := checkExtras(line[i:]); err != nil {
		return err
	}
	if probeAction != "" {
		p.probe(ev, probeAction, req)
	}
	return nil
}

// expectSpaceQuote checks that line[i:] starts with ` "`, the gap before a
// quoted field: a short line is truncated, anything else is reported with
// reason.
func expectSpaceQuote(line []byte, i int, reason, field string) *LineError {
	switch {
	case i+2 > len(line):
		return lineErr(ReasonTruncated, "line ends before "+field)
	case line[i] != ' ' || line[i+1] != '"':
		return lineErr(reason, "no quoted "+field)
	}
	return nil
}

// quotedText reads the quoted field whose opening quote is line[i]. It
// returns the field's value (decoded when it holds a backslash), the index
// after the closing quote, and false if the line ends first.
func (p *Parser) quotedText(line []byte, i int) (string, int, bool) {
	end, esc, ok := quotedEnd(line, i+1)
	if !ok {
		return "", 0, false
	}
	raw := line[i+1 : end]
	if !esc {
		return view(raw), end + 1, true
	}
	return p.unescapeText(raw), end + 1, true
}

// quotedEnd returns the index of the quote closing a field (text or JSON)
// whose content starts at line[start], skipping the byte after every
// backslash, and whether the content holds a backslash.
func quotedEnd(line []byte, start int) (end int, esc, ok bool) {
	rest := line[start:]
	q := bytes.IndexByte(rest, '"')
	if q < 0 {
		return 0, false, false
	}
	bs := bytes.IndexByte(rest[:q], '\\')
	if bs < 0 {
		return start + q, false, true
	}
	for k := bs; k < len(rest); {
		switch rest[k] {
		case '\\':
			k += 2
		case '"':
			return start + k, true, true
		default:
			k++
		}
	}
	return 0, false, false
}

// checkExtras checks the fields after the last one parsed: each must be
// separated by a space, and a quoted one must be closed.
func checkExtras(rest []byte) *LineError {
	for len(rest) > 0 {
		if rest[0] != ' ' && rest[0] != '\t' {
			return lineErr(ReasonMalformed, "no space before trailing field")
		}
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return nil
		}
		if rest[0] == '"' {
			end, _, ok := quotedEnd(rest, 1)
			if !ok {
				return lineErr(ReasonTruncated, "line ends in a trailing quoted field")
			}
			rest = rest[end+1:]
			continue
		}
		sp := bytes.IndexAny(rest, " \t")
		if sp < 0 {
			return nil
		}
		rest = rest[sp:]
	}
	return nil
}

// unescapeIfNeeded returns raw as a view when it holds no backslash, and
// otherwise its decoded form (see unescapeText).
func (p *Parser) unescapeIfNeeded(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return view(raw)
	}
	return p.unescapeText(raw)
}

// unescapeText decodes the nginx or Apache escapes of raw into the scratch
// buffer and returns a view of the result.
func (p *Parser) unescapeText(raw []byte) string {
	bs := bytes.IndexByte(raw, '\\')
	start := len(p.scratch)
	for bs >= 0 {
		p.scratch = append(p.scratch, raw[:bs]...)
		raw = raw[bs:]
		// raw[0] is a backslash.
		n := 2
		switch {
		case len(raw) < 2:
			p.scratch = append(p.scratch, '\\')
			n = 1
		case raw[1] == '"' || raw[1] == '\\':
			p.scratch = append(p.scratch, raw[1])
		case raw[1] == 'x' && len(raw) >= 4 && isHex(raw[2]) && isHex(raw[3]):
			p.scratch = append(p.scratch, unhex(raw[2])<<4|unhex(raw[3]))
			n = 4
		case raw[1] == 'n':
			p.scratch = append(p.scratch, '\n')
		case raw[1] == 't':
			p.scratch = append(p.scratch, '\t')
		case raw[1] == 'r':
			p.scratch = append(p.scratch, '\r')
		case raw[1] == 'b':
			p.scratch = append(p.scratch, '\b')
		case raw[1] == 'v':
			p.scratch = append(p.scratch, '\v')
		default:
			// Not an escape either server writes: keep the backslash.
			p.scratch = append(p.scratch, '\\')
			n = 1
		}
		raw = raw[n:]
		bs = bytes.IndexByte(raw, '\\')
	}
	p.scratch = append(p.scratch, raw...)
	return view(p.scratch[start:])
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
