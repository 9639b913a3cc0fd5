package csp

import "strings"

// urlParts are the pieces of an absolute URL of the common shape
// scheme://host[:port][/path][?query][#fragment], as sub-strings.
type urlParts struct {
	scheme, host, port, path, query string
}

// splitURL reads s without allocating when it has that shape, with a host
// of ASCII letters, digits, dots and hyphens and no user info. ok is false
// for anything else, and for anything url.Parse would refuse (control
// bytes, a bad %-escape in the path or fragment): callers then use
// url.Parse, whose results splitURL's agree with (FuzzSplitURL).
func splitURL(s string) (p urlParts, ok bool) {
	rest, frag, _ := strings.Cut(s, "#")
	if !validEscapes(frag) || hasCTL(frag) {
		return p, false
	}
	i := 0
	for i < len(rest) && isSchemeByte(rest[i], i) {
		i++
	}
	if i == 0 || !strings.HasPrefix(rest[i:], "://") {
		return p, false
	}
	p.scheme, rest = rest[:i], rest[i+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	host, port, hasPort := strings.Cut(authority, ":")
	if host == "" || hasPort && port == "" {
		return p, false
	}
	for j := 0; j < len(host); j++ {
		if c := host[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return p, false
		}
	}
	for j := 0; j < len(port); j++ {
		if port[j] < '0' || port[j] > '9' {
			return p, false
		}
	}
	p.host, p.port = host, port
	p.path, p.query, _ = strings.Cut(rest[end:], "?")
	if !validEscapes(p.path) || hasCTL(p.path) || hasCTL(p.query) {
		return p, false
	}
	return p, true
}

func isSchemeByte(c byte, i int) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')
}

// hasCTL reports whether s has a byte url.Parse refuses.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// validEscapes reports whether every % in s starts a %XX escape.
func validEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		j := strings.IndexByte(s[i+3:], '%')
		if j < 0 {
			break
		}
		i += 3 + j
	}
	return true
}

// plainPath reports whether a path is its own escaped form (what
// url.URL.EscapedPath gives back unchanged): only the bytes a path may
// hold unescaped, and no escapes.
func plainPath(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// fastOrigin is the origin of p as origin(url.Parse(...)) gives it.
func fastOrigin(p urlParts) string {
	scheme, host := strings.ToLower(p.scheme), strings.ToLower(p.host)
	if p.port != "" && p.port != defaultPort(scheme) {
		return scheme + "://" + host + ":" + p.port
	}
	return scheme + "://" + host
}
