package csp

import (
	"net"
	"net/url"
	"strings"
)

// Values BlockedOrigin returns when blocked-uri names no origin.
const (
	// OriginNone is the BlockedOrigin of an empty or missing blocked-uri
	// (old Firefox sends "" for some inline violations), so the field is
	// never empty and rules can group on it.
	OriginNone = "none"
	// OriginInvalid is the BlockedOrigin of a blocked-uri that is neither a
	// keyword nor a URL an origin can be taken from.
	OriginInvalid = "invalid"
)

// BlockedOrigin returns what a rule groups the violations of one source
// by, for a report's blocked-uri (blockedURL) and document URI:
//
//   - a URL with a host gives its origin, scheme://host[:port], lower-cased
//     and without the scheme's default port ("https://cdn.example.com");
//   - a relative URL is resolved against the document first;
//   - a keyword, a bare token without ':', '/' or '.', is returned itself,
//     lower-cased and with any single quotes removed: inline, eval,
//     wasm-eval, data, blob, trusted-types-policy, trusted-types-sink, and
//     extension schemes Chromium sends alone ("chrome-extension");
//   - "self" is such a keyword too: old Firefox sent it, with a
//     script-sample of inline code, where others say "inline"; it is kept
//     as "self", not resolved to the document's origin, because its
//     meaning was never documented;
//   - a URL without a host (data:…, blob:…, about:blank, javascript:…)
//     gives its scheme, like the keywords Chromium sends for them;
//   - "" gives OriginNone and anything else OriginInvalid.
func BlockedOrigin(blocked, document string) string {
	s := strings.TrimSpace(blocked)
	if s == "" {
		return OriginNone
	}
	if kw, ok := keyword(s); ok {
		return kw
	}
	if p, ok := splitURL(s); ok {
		return fastOrigin(p)
	}
	return blockedOriginParsed(s, document)
}

// blockedOriginParsed is BlockedOrigin for a blocked-uri that is not a
// keyword, with url.Parse.
func blockedOriginParsed(s, document string) string {
	u, err := url.Parse(s)
	if err != nil {
		return OriginInvalid
	}
	if u.Scheme == "" {
		base, err := url.Parse(strings.TrimSpace(document))
		if err != nil || base.Scheme == "" || base.Host == "" {
			return OriginInvalid
		}
		u = base.ResolveReference(u)
	}
	if u.Host != "" {
		return origin(u)
	}
	if u.Scheme != "" {
		return strings.ToLower(u.Scheme)
	}
	return OriginInvalid
}

// keyword returns s lower-cased when it is a bare token such as inline or
// 'self'.
func keyword(s string) (string, bool) {
	if len(s) > 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > 64 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// origin is scheme://host[:port] of u, lower-cased, without a default
// port.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := hostPort(u)
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port)
	}
	if strings.Contains(host, ":") {
		return scheme + "://[" + host + "]"
	}
	return scheme + "://" + host
}

// hostPort returns u's host, lower-cased and without brackets, and its
// port unless it is the scheme's default.
func hostPort(u *url.URL) (host, port string) {
	host = strings.ToLower(u.Hostname())
	port = u.Port()
	if port == defaultPort(u.Scheme) {
		port = ""
	}
	return host, port
}

// defaultPort is the port a scheme implies.
func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	case "ftp":
		return "21"
	}
	return ""
}

// schemeOf returns the lower-cased scheme of a URI, or the keyword itself
// for a bare token (Chromium reports an extension resource as
// "chrome-extension"), or "".
func schemeOf(s string) string {
	s = strings.TrimSpace(s)
	if kw, ok := keyword(s); ok {
		return kw
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') && i > 0:
		case c == ':' && i > 0:
			return strings.ToLower(s[:i])
		default:
			return ""
		}
	}
	return ""
}

// hostOf returns the lower-cased host of an absolute URI, or "".
func hostOf(s string) string {
	if !strings.Contains(s, "//") {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
