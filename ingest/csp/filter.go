package csp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/vigil-soc/vigil/event"
)

// Reasons a violation is dropped as noise: the keys of Result.Filtered.
const (
	// ReasonExtension: blocked-uri, source-file or document-uri has a
	// browser-extension scheme (DropSchemes entries ending in "-extension",
	// and webkit-masked-url, which Safari uses to hide extension URLs).
	ReasonExtension = "extension"
	// ReasonBrowserInternal: one of them has another DropSchemes scheme
	// (chrome:, about:, resource:, ...).
	ReasonBrowserInternal = "browser-internal"
	// ReasonAboutDocument: the document is about:blank or about:srcdoc and
	// Filter.KeepAboutBlank is not set.
	ReasonAboutDocument = "about-document"
	// ReasonForeignDocument: Filter.Documents is set and the document's
	// origin is not in it.
	ReasonForeignDocument = "foreign-document"
	// ReasonDropHost: the host of blocked-uri or source-file matches
	// Filter.DropHosts.
	ReasonDropHost = "drop-host"
)

// Reasons returns every reason Result.Filtered may count, for metrics that
// want all their label values up front.
func Reasons() []string {
	return []string{ReasonExtension, ReasonBrowserInternal, ReasonAboutDocument, ReasonForeignDocument, ReasonDropHost}
}

// Filter decides which violations are noise. Checks run in this order and
// the first that matches names the reason: about-document, then the
// schemes of document, blocked-uri and source-file, then foreign-document,
// then drop-host. Keywords (inline, eval, data, blob) are never noise by
// themselves, being the real injection signal; an inline or eval
// violation whose source-file is an extension is.
//
// A Filter is read, never modified, by the parse functions, so one value
// may serve concurrent requests. Call Validate when loading configuration;
// entries that do not validate never match.
type Filter struct {
	// DropSchemes are the URI schemes, without ':', that mark a violation
	// as browser-extension or browser-internal noise when blocked-uri,
	// source-file or document-uri has one. Matched case-insensitively; a
	// bare keyword blocked-uri such as "chrome-extension" counts as its
	// scheme. The zero Filter drops nothing; DefaultFilter lists
	// chrome-extension, moz-extension, safari-extension,
	// safari-web-extension, ms-browser-extension, chrome, about,
	// chromenull, chromeinvokeimmediate, webkit-masked-url and resource.
	DropSchemes []string
	// DropHosts are host patterns of injected widgets whose violations are
	// dropped when blocked-uri's or source-file's host matches: an exact
	// host ("getpocket.com") or "*." and a suffix ("*.superfish.com"
	// matches a.superfish.com, not superfish.com). Default none.
	DropHosts []string
	// Documents are the document origins reports are accepted for, as
	// scheme://host[:port] with an optional "*." wildcard host
	// ("https://*.example.com"); the default port may be left out.
	// Violations on other documents are dropped as foreign-document. Empty
	// means any document.
	Documents []string
	// KeepAboutBlank keeps violations whose document is about:blank or
	// about:srcdoc (frames that inherit the parent's policy; extensions
	// create many). They are dropped by default.
	KeepAboutBlank bool
}

// DefaultFilter returns the default filter: the DropSchemes listed on
// Filter.DropSchemes, no DropHosts, any document, about:blank documents
// dropped. Each call returns fresh slices the caller may change.
func DefaultFilter() Filter {
	return Filter{
		DropSchemes: []string{
			"chrome-extension", "moz-extension", "safari-extension", "safari-web-extension",
			"ms-browser-extension", "chrome", "about", "chromenull", "chromeinvokeimmediate",
			"webkit-masked-url", "resource",
		},
	}
}

var defaultFilter = DefaultFilter()

// Validate checks every entry and returns one error naming each bad one,
// e.g. `documents[1]: "example.com": want scheme://host[:port]`.
func (f *Filter) Validate() error {
	var errs []error
	for i, s := range f.DropSchemes {
		if schemeOf(s+":") != strings.ToLower(s) || s == "" {
			errs = append(errs, fmt.Errorf("drop_schemes[%d]: %q: want a URI scheme without ':'", i, s))
		}
	}
	for i, p := range f.DropHosts {
		if !validHostPattern(p) {
			errs = append(errs, fmt.Errorf("drop_hosts[%d]: %q: want a host or *.suffix", i, p))
		}
	}
	for i, p := range f.Documents {
		scheme, hp, ok := strings.Cut(strings.TrimSuffix(p, "/"), "://")
		host, _, err := splitHostPort(hp)
		if !ok || schemeOf(scheme+":") == "" || err != nil || !validHostPattern(host) {
			errs = append(errs, fmt.Errorf("documents[%d]: %q: want scheme://host[:port]", i, p))
		}
	}
	return errors.Join(errs...)
}

// validHostPattern reports whether p is a host or "*." and a host.
func validHostPattern(p string) bool {
	p = strings.TrimPrefix(p, "*.")
	if p == "" || strings.ContainsAny(p, "/*@?#[] ") {
		return false
	}
	return true
}

// drop returns why c is noise, or "".
func (f *Filter) drop(c *event.CSP) string {
	doc := strings.TrimSpace(c.DocumentURI)
	docScheme := schemeOf(doc)
	aboutDoc := isAboutDocument(doc, docScheme)
	if aboutDoc && !f.KeepAboutBlank {
		return ReasonAboutDocument
	}
	if !aboutDoc {
		if r := f.schemeReason(docScheme); r != "" {
			return r
		}
	}
	if r := f.schemeReason(schemeOf(c.BlockedURI)); r != "" {
		return r
	}
	src := strings.TrimSpace(c.SourceFile)
	srcScheme := schemeOf(src)
	// In a kept about: document, a source file naming the document is the
	// frame's own script (Firefox: "about" for a srcdoc frame).
	if r := f.schemeReason(srcScheme); r != "" && !(aboutDoc && isAboutDocument(src, srcScheme)) {
		return r
	}
	if len(f.Documents) > 0 && !aboutDoc && !f.documentAllowed(doc) {
		return ReasonForeignDocument
	}
	if len(f.DropHosts) > 0 {
		for _, h := range []string{hostOf(c.BlockedURI), hostOf(c.SourceFile)} {
			if h == "" {
				continue
			}
			for _, p := range f.DropHosts {
				if matchHost(p, h) {
					return ReasonDropHost
				}
			}
		}
	}
	return ""
}

// isAboutDocument reports whether doc is about:blank or about:srcdoc (or
// the bare "about" some browsers send for them).
func isAboutDocument(doc, scheme string) bool {
	if scheme != "about" {
		return false
	}
	rest := strings.ToLower(strings.TrimPrefix(doc[len("about"):], ":"))
	rest, _, _ = strings.Cut(rest, "#")
	rest, _, _ = strings.Cut(rest, "?")
	return rest == "" || rest == "blank" || rest == "srcdoc"
}

// schemeReason returns the reason for a scheme in DropSchemes, or "".
func (f *Filter) schemeReason(scheme string) string {
	if scheme == "" {
		return ""
	}
	for _, s := range f.DropSchemes {
		if strings.EqualFold(s, scheme) {
			if strings.HasSuffix(scheme, "-extension") || scheme == "webkit-masked-url" {
				return ReasonExtension
			}
			return ReasonBrowserInternal
		}
	}
	return ""
}

// documentAllowed reports whether doc's origin matches Documents.
func (f *Filter) documentAllowed(doc string) bool {
	u, err := url.Parse(doc)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := hostPort(u)
	for _, p := range f.Documents {
		ps, hp, ok := strings.Cut(strings.TrimSuffix(p, "/"), "://")
		if !ok || !strings.EqualFold(ps, scheme) {
			continue
		}
		ph, pp, err := splitHostPort(hp)
		if err != nil {
			continue
		}
		if pp == defaultPort(scheme) {
			pp = ""
		}
		if pp == port && matchHost(ph, host) {
			return true
		}
	}
	return false
}

// splitHostPort splits host[:port] or [v6][:port]. The port must be
// numeric; a host with colons must be bracketed.
func splitHostPort(hp string) (host, port string, err error) {
	switch {
	case strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]"):
		return hp[1 : len(hp)-1], "", nil
	case strings.HasPrefix(hp, "[") || strings.Count(hp, ":") == 1:
		host, port, err = net.SplitHostPort(hp)
		if err != nil {
			return "", "", err
		}
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", "", fmt.Errorf("bad port in %q", hp)
		}
		return host, port, nil
	case strings.Contains(hp, ":"):
		return "", "", fmt.Errorf("bad host:port %q", hp)
	}
	return hp, "", nil
}

// matchHost reports whether lower-case host matches pattern: equal, or
// for "*.suffix" a proper subdomain of suffix. Case is ignored.
func matchHost(pattern, host string) bool {
	if !validHostPattern(pattern) {
		return false
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(host) > len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix)
	}
	return strings.EqualFold(pattern, host)
}
