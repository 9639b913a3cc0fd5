package csp

import (
	"net/url"
	"testing"
)

// FuzzSplitURL: where splitURL reads a URL, it agrees with url.Parse, and
// so do the origin and the path and query taken from it.
func FuzzSplitURL(f *testing.F) {
	for _, s := range []string{
		"https://evil.example/x.js", "HTTPS://Shop.Example:443/checkout?step=1#top", "http://127.0.0.1:8080", "http://a.example:80/",
		"https://a.example/%zz", "https://a.example/p%41th?q=%zz", "https://a.example/#%", "https://user@a.example/", "https://[::1]:8443/",
		"https://a.example:/x", "https://a_b.example/", "chrome-extension://abc/x.js", "https://a.example/a b", "https://a.example/\x7f",
		"https://a.example?x=1", "ws://a.example:8080/sock", "a+b.c://h/p", "https://a.example/é", "https://a.example/p;x=1/@:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := splitURL(s)
		if !ok {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("splitURL(%q) read it, url.Parse refuses it: %v", s, err)
		}
		wantHost := p.host
		if p.port != "" {
			wantHost += ":" + p.port
		}
		if u.Host != wantHost || u.Port() != p.port || u.User != nil {
			t.Fatalf("%q: host %q port %q, url.Parse %q %q", s, p.host, p.port, u.Host, u.Port())
		}
		if u.RawQuery != p.query {
			t.Fatalf("%q: query %q, url.Parse %q", s, p.query, u.RawQuery)
		}
		if got, want := fastOrigin(p), origin(u); got != want {
			t.Fatalf("%q: origin %q, url.Parse's %q", s, got, want)
		}
		if got, want := BlockedOrigin(s, ""), blockedOriginParsed(s, ""); got != want && !isKeywordish(s) {
			t.Fatalf("%q: BlockedOrigin %q, with url.Parse %q", s, got, want)
		}
		if plainPath(p.path) && u.EscapedPath() != p.path {
			t.Fatalf("%q: path %q, url.Parse's %q", s, p.path, u.EscapedPath())
		}
	})
}

func isKeywordish(s string) bool { _, ok := keyword(s); return ok }

// TestPathQuery: the fast path and url.Parse give the same path and query.
func TestPathQuery(t *testing.T) {
	for uri, want := range map[string][2]string{
		"https://shop.example/checkout?step=1": {"/checkout", "step=1"},
		"https://shop.example":                 {"", ""},
		"https://shop.example/a b?x":           {"/a%20b", "x"},
		"https://shop.example/caf%C3%A9":       {"/caf%C3%A9", ""},
		"about:blank":                          {"", ""},
		"https://shop.example/%zz":             {"", ""},
	} {
		if p, q := pathQuery(uri); p != want[0] || q != want[1] {
			t.Errorf("pathQuery(%q) = %q, %q; want %q, %q", uri, p, q, want[0], want[1])
		}
	}
}
