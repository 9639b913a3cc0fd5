package loggen

import (
	"bytes"
	"strconv"
	"time"
)

// timeLayout is nginx's $time_local.
const timeLayout = "02/Jan/2006:15:04:05 -0700"

const hexUpper = "0123456789ABCDEF"

// timestamp returns $time_local for event time at. The result is reused by
// the next call.
func (g *gen) timestamp(at int64) []byte {
	if s := g.sec(at); s != g.tsSec {
		g.tsSec = s
		g.ts = time.Unix(s, 0).In(g.cfg.Start.Location()).AppendFormat(g.ts[:0], timeLayout)
	}
	return g.ts
}

// appendRec appends r as one log line. The strings of a rec are printable
// ASCII without '"' or '\' (the generator makes them so and the tests
// check), so they are written without escaping.
func (g *gen) appendRec(b []byte, r *rec) []byte {
	c := &g.clients[r.client]
	ts := g.timestamp(r.at)
	if g.format == fmtJSON {
		b = append(b, `{"time_local":"`...)
		b = append(b, ts...)
		b = append(b, `","remote_addr":"`...)
		b = append(b, c.logged...)
		b = append(b, `","remote_user":"`...)
		b = append(b, r.user...)
		b = append(b, `","request":"`...)
		b = appendRequest(b, r)
		b = append(b, `","status":"`...)
		b = strconv.AppendInt(b, int64(r.status), 10)
		b = append(b, `","body_bytes_sent":"`...)
		b = strconv.AppendInt(b, int64(r.bytes), 10)
		b = append(b, `","http_referer":"`...)
		b = append(b, r.ref...)
		b = append(b, `","http_user_agent":"`...)
		b = append(b, r.ua...)
		return append(b, "\"}\n"...)
	}
	b = append(b, c.logged...)
	b = append(b, " - "...)
	b = appendOrDash(b, r.user)
	b = append(b, " ["...)
	b = append(b, ts...)
	b = append(b, `] "`...)
	b = appendRequest(b, r)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.bytes), 10)
	b = append(b, ` "`...)
	b = appendOrDash(b, r.ref)
	b = append(b, `" "`...)
	b = appendOrDash(b, r.ua)
	b = append(b, '"')
	if g.format == fmtMain {
		b = append(b, ` "`...)
		b = appendOrDash(b, c.xff)
		b = append(b, '"')
	}
	return append(b, '\n')
}

// appendRequest appends $request: method, target and protocol.
func appendRequest(b []byte, r *rec) []byte {
	b = append(b, r.method...)
	b = append(b, ' ')
	b = append(b, r.target...)
	b = append(b, ' ')
	return append(b, r.proto...)
}

// appendOrDash appends s, or "-" for an empty s, as nginx writes empty
// variables outside escape=json.
func appendOrDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// appendEscaped appends s escaped as nginx's default log escaping does:
// '"', '\', control bytes and bytes >= 0x7f become \xHH.
func appendEscaped(b []byte, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b = append(b, '\\', 'x', hexUpper[c>>4], hexUpper[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendJSONEscaped appends s escaped as nginx's escape=json does: '"' and
// '\' get a backslash, control bytes become \n, \r, \t, \b, \f or \u00HH,
// and other bytes (even invalid UTF-8) are written as they are.
func appendJSONEscaped(b []byte, s []byte) []byte {
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexUpper[c>>4], hexUpper[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendJunk appends one line that is not a request: a TLS handshake sent
// to the plain HTTP port, a connection closed before any request, or a
// line cut short (as by a full disk or a rotation race), and whether it
// was cut: the first two are sound lines (probe events to Vigil), a cut
// line is skipped. Junk is written by clients of its own and is never shown
// to the oracle.
func (g *gen) appendJunk(b []byte, at int64) ([]byte, bool) {
	c := g.newClient(addrPublic, false)
	r := rec{at: at, client: c}
	switch k := g.rng.IntN(10); {
	case k < 5:
		// A ClientHello: record header, handshake header, version, then
		// the random bytes nginx gets to before it gives up.
		hello := []byte{0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03}
		for range 8 + g.rng.IntN(40) {
			hello = append(hello, byte(g.rng.Uint32()))
		}
		return g.appendRaw(b, &r, hello, 400, 157), false
	case k < 8:
		return g.appendRaw(b, &r, nil, 400, 0), false
	}
	r.method, r.target, r.proto = "GET", staticAssets[g.rng.IntN(len(staticAssets))].path, "HTTP/2.0"
	r.status, r.bytes, r.ua = 200, 48712, browserAgents[g.rng.IntN(len(browserAgents))]
	n := len(b)
	b = g.appendRec(b, &r)
	// Cut inside the request target, before the status: nothing after
	// survives.
	start := n + bytes.Index(b[n:], []byte(r.target))
	cut := start + 1 + g.rng.IntN(len(r.target)-1)
	return append(b[:cut], '\n'), true
}

// appendRaw appends a line whose $request is the raw bytes req (escaped
// as nginx escapes them; empty for none), with empty referrer and agent.
func (g *gen) appendRaw(b []byte, r *rec, req []byte, status, size int) []byte {
	ts := g.timestamp(r.at)
	c := &g.clients[r.client]
	if g.format == fmtJSON {
		b = append(b, `{"time_local":"`...)
		b = append(b, ts...)
		b = append(b, `","remote_addr":"`...)
		b = append(b, c.logged...)
		b = append(b, `","remote_user":"","request":"`...)
		b = appendJSONEscaped(b, req)
		b = append(b, `","status":"`...)
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, `","body_bytes_sent":"`...)
		b = strconv.AppendInt(b, int64(size), 10)
		return append(b, `","http_referer":"","http_user_agent":""}`+"\n"...)
	}
	b = append(b, c.logged...)
	b = append(b, ` - - [`...)
	b = append(b, ts...)
	b = append(b, `] "`...)
	if len(req) == 0 {
		b = append(b, '-')
	}
	b = appendEscaped(b, req)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, ` "-" "-"`...)
	if g.format == fmtMain {
		b = append(b, ` "-"`...)
	}
	return append(b, '\n')
}
