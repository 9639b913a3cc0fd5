package csp

import (
	"fmt"
	"strings"
	"testing"
)

// legacy builds a report-uri body from key/value pairs.
func legacy(kv ...string) string {
	var b strings.Builder
	b.WriteString(`{"csp-report":{`)
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", kv[i], kv[i+1])
	}
	b.WriteString(`}}`)
	return b.String()
}

// TestFilter checks each noise rule and that the real signal survives it.
func TestFilter(t *testing.T) {
	const doc = "https://www.example.com/page"
	keepAbout := DefaultFilter()
	keepAbout.KeepAboutBlank = true
	docs := DefaultFilter()
	docs.Documents = []string{"https://www.example.com", "https://*.example.org:8443", "http://127.0.0.1:8080/"}
	hosts := DefaultFilter()
	hosts.DropHosts = []string{"getpocket.com", "*.superfish.com"}
	none := Filter{}

	tests := []struct {
		name   string
		body   string
		filter *Filter
		reason string // "" = kept
	}{
		{"inline is signal", legacy("document-uri", doc, "blocked-uri", "inline", "source-file", doc), nil, ""},
		{"eval is signal", legacy("document-uri", doc, "blocked-uri", "eval"), nil, ""},
		{"data is signal", legacy("document-uri", doc, "blocked-uri", "data"), nil, ""},
		{"blob is signal", legacy("document-uri", doc, "blocked-uri", "blob:https://www.example.com/x"), nil, ""},
		{"external script is signal", legacy("document-uri", doc, "blocked-uri", "https://evil.example/x.js"), nil, ""},

		{"chrome-extension blocked URL", legacy("document-uri", doc, "blocked-uri", "chrome-extension://abcdefgh/inject.js"), nil, ReasonExtension},
		{"chrome-extension bare keyword", legacy("document-uri", doc, "blocked-uri", "chrome-extension"), nil, ReasonExtension},
		{"inline from moz-extension source-file", legacy("document-uri", doc, "blocked-uri", "inline", "source-file", "moz-extension://2c127fa4-62c7-7e4f-90e5-472b45eecfdc/content.js"), nil, ReasonExtension},
		{"eval from safari-web-extension", legacy("document-uri", doc, "blocked-uri", "eval", "source-file", "safari-web-extension://E9B2E5D2-6B7C-4E4F-8E3A-2C1D4F5A6B7C/script.js"), nil, ReasonExtension},
		{"safari-extension", legacy("document-uri", doc, "blocked-uri", "safari-extension://com.example.ext-0000/x.js"), nil, ReasonExtension},
		{"ms-browser-extension", legacy("document-uri", doc, "blocked-uri", "ms-browser-extension://x/y.js"), nil, ReasonExtension},
		{"webkit-masked-url", legacy("document-uri", doc, "blocked-uri", "inline", "source-file", "webkit-masked-url://hidden/"), nil, ReasonExtension},
		{"upper-case scheme", legacy("document-uri", doc, "blocked-uri", "Chrome-Extension://abc/x.js"), nil, ReasonExtension},
		{"chrome:// internal", legacy("document-uri", doc, "blocked-uri", "chrome://newtab/"), nil, ReasonBrowserInternal},
		{"resource:// internal", legacy("document-uri", doc, "blocked-uri", "resource://gre/modules/x.js"), nil, ReasonBrowserInternal},
		{"chromenull", legacy("document-uri", doc, "blocked-uri", "chromenull://"), nil, ReasonBrowserInternal},
		{"about: blocked", legacy("document-uri", doc, "blocked-uri", "about:blank", "effective-directive", "frame-src"), nil, ReasonBrowserInternal},
		{"extension document", legacy("document-uri", "chrome-extension://abc/popup.html", "blocked-uri", "inline"), nil, ReasonExtension},
		{"no DropSchemes keeps extensions", legacy("document-uri", doc, "blocked-uri", "chrome-extension://abc/x.js"), &none, ""},

		{"about:blank document", legacy("document-uri", "about:blank", "blocked-uri", "inline"), nil, ReasonAboutDocument},
		{"about:srcdoc document", legacy("document-uri", "about:srcdoc", "blocked-uri", "https://evil.example/x.js"), nil, ReasonAboutDocument},
		{"bare about document", legacy("document-uri", "about", "blocked-uri", "inline"), nil, ReasonAboutDocument},
		{"about:blank kept", legacy("document-uri", "about:blank", "blocked-uri", "inline"), &keepAbout, ""},
		{"about:srcdoc kept even with Documents", legacy("document-uri", "about:srcdoc", "blocked-uri", "inline"), func() *Filter { f := docs; f.KeepAboutBlank = true; return &f }(), ""},
		{"about:blank kept, extension source still noise", legacy("document-uri", "about:blank", "blocked-uri", "inline", "source-file", "chrome-extension://a/b.js"), &keepAbout, ReasonExtension},
		{"about:preferences is internal", legacy("document-uri", "about:preferences", "blocked-uri", "inline"), nil, ReasonBrowserInternal},

		{"own document", legacy("document-uri", doc, "blocked-uri", "inline"), &docs, ""},
		{"own document, explicit default port", legacy("document-uri", "https://www.example.com:443/p", "blocked-uri", "inline"), &docs, ""},
		{"wildcard document", legacy("document-uri", "https://shop.eu.example.org:8443/p", "blocked-uri", "inline"), &docs, ""},
		{"port pattern with trailing slash", legacy("document-uri", "http://127.0.0.1:8080/page/uri-only", "blocked-uri", "inline"), &docs, ""},
		{"wildcard needs a subdomain", legacy("document-uri", "https://example.org:8443/p", "blocked-uri", "inline"), &docs, ReasonForeignDocument},
		{"wildcard port must match", legacy("document-uri", "https://a.example.org/p", "blocked-uri", "inline"), &docs, ReasonForeignDocument},
		{"scheme must match", legacy("document-uri", "http://www.example.com/p", "blocked-uri", "inline"), &docs, ReasonForeignDocument},
		{"foreign host", legacy("document-uri", "https://copycat.example.net/", "blocked-uri", "inline"), &docs, ReasonForeignDocument},
		{"suffix is no subdomain", legacy("document-uri", "https://evilexample.org:8443/", "blocked-uri", "inline"), &docs, ReasonForeignDocument},
		{"missing document", legacy("blocked-uri", "inline", "effective-directive", "script-src"), &docs, ReasonForeignDocument},
		{"missing document without Documents", legacy("blocked-uri", "inline", "effective-directive", "script-src"), nil, ""},

		{"drop host exact", legacy("document-uri", doc, "blocked-uri", "https://getpocket.com/x.js"), &hosts, ReasonDropHost},
		{"drop host wildcard", legacy("document-uri", doc, "blocked-uri", "https://www.Superfish.com/ws/sf.js"), &hosts, ReasonDropHost},
		{"drop host via source-file", legacy("document-uri", doc, "blocked-uri", "inline", "source-file", "https://a.superfish.com/x.js"), &hosts, ReasonDropHost},
		{"wildcard excludes apex", legacy("document-uri", doc, "blocked-uri", "https://superfish.com/x.js"), &hosts, ""},
		{"exact excludes subdomain", legacy("document-uri", doc, "blocked-uri", "https://www.getpocket.com/x.js"), &hosts, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.filter != nil {
				if err := tt.filter.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
			}
			res, err := Parse("application/csp-report", []byte(tt.body), testMeta, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reason == "" {
				if len(res.Events) != 1 || len(res.Filtered) != 0 {
					t.Fatalf("want kept; events %d, Filtered %v", len(res.Events), res.Filtered)
				}
				return
			}
			if len(res.Events) != 0 || len(res.Filtered) != 1 || res.Filtered[tt.reason] != 1 {
				t.Fatalf("want dropped as %q; events %d, Filtered %v", tt.reason, len(res.Events), res.Filtered)
			}
		})
	}
}

// TestFilterCounts drops part of a Reporting API batch and counts it.
func TestFilterCounts(t *testing.T) {
	body := `[
	 {"type":"csp-violation","body":{"documentURL":"https://a.example/","blockedURL":"chrome-extension","effectiveDirective":"font-src"}},
	 {"type":"csp-violation","body":{"documentURL":"https://a.example/","blockedURL":"inline","sourceFile":"moz-extension://x/y.js","effectiveDirective":"script-src-elem"}},
	 {"type":"csp-violation","body":{"documentURL":"about:blank","blockedURL":"inline","effectiveDirective":"script-src-elem"}},
	 {"type":"csp-violation","body":{"documentURL":"https://a.example/","blockedURL":"inline","effectiveDirective":"script-src-elem"}}
	]`
	res, err := ParseReports([]byte(body), testMeta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 || res.Filtered[ReasonExtension] != 2 || res.Filtered[ReasonAboutDocument] != 1 {
		t.Fatalf("events %d, Filtered %v", len(res.Events), res.Filtered)
	}
}

// TestFilterValidate checks that Validate names every bad entry.
func TestFilterValidate(t *testing.T) {
	def := DefaultFilter()
	if err := def.Validate(); err != nil {
		t.Fatalf("default filter: %v", err)
	}
	good := Filter{
		DropSchemes: []string{"x-custom"},
		DropHosts:   []string{"a.example", "*.b.example"},
		Documents:   []string{"https://a.example", "https://*.b.example:8443", "http://[::1]:8080", "http://127.0.0.1/"},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good filter: %v", err)
	}
	bad := Filter{
		DropSchemes: []string{"", "chrome-extension://", "ok"},
		DropHosts:   []string{"", "*", "a.*.example", "https://a.example"},
		Documents:   []string{"example.com", "https://", "https://a.example/path", "https://a.example:1:2", "https://*"},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad filter validated")
	}
	for _, want := range []string{
		"drop_schemes[0]", "drop_schemes[1]", "drop_hosts[0]", "drop_hosts[1]", "drop_hosts[2]", "drop_hosts[3]",
		"documents[0]", "documents[1]", "documents[2]", "documents[3]", "documents[4]",
	} {
		if !strings.Contains(err.Error(), want+":") {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "drop_schemes[2]") {
		t.Errorf("error names a good entry:\n%v", err)
	}
}

// TestDefaultFilterFresh checks that DefaultFilter's slices are the
// caller's to change.
func TestDefaultFilterFresh(t *testing.T) {
	a := DefaultFilter()
	a.DropSchemes[0] = "changed"
	if b := DefaultFilter(); b.DropSchemes[0] == "changed" {
		t.Fatal("DefaultFilter shares its slices")
	}
	res, err := Parse("application/csp-report", []byte(legacy("document-uri", "https://a.example/", "blocked-uri", "chrome-extension://x/y.js")), testMeta, nil)
	if err != nil || res.Filtered[ReasonExtension] != 1 {
		t.Fatalf("nil filter no longer drops extensions: %v %v", err, res.Filtered)
	}
}
