package syslog

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzParse feeds arbitrary messages to Parse; the seeds are in
// testdata/fuzz/FuzzParse/. A result must be consistent (priority in
// range, Content and StructuredData taken from the input, which is left
// alone), an error must carry one of the fixed reasons, and the interning
// parser the server uses must agree with Parse.
func FuzzParse(f *testing.F) {
	reasons := Reasons()
	p := parser{strs: make(map[string]string)}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := string(b)
		m, err := Parse(b, testNow)
		if string(b) != orig {
			t.Fatalf("Parse modified its input")
		}
		var m2 Message
		r, _ := p.parse(b, testNow, &m2)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !slices.Contains(reasons, pe.Reason) || pe.Reason == ReasonTooLong || pe.Reason == ReasonBadFraming {
				t.Fatalf("Parse(%q): error %v has no parser reason", b, err)
			}
			if reasonNames[r] != pe.Reason {
				t.Fatalf("Parse(%q): interning parser says %q, Parse %q", b, reasonNames[r], pe.Reason)
			}
			return
		}
		if r != rOK {
			t.Fatalf("Parse(%q) succeeded, interning parser says %q", b, reasonNames[r])
		}
		if d := diffMessage(m2, m); d != "" {
			t.Fatalf("Parse(%q): interning parser differs:\n%s", b, d)
		}
		if m.Format != FormatRFC3164 && m.Format != FormatRFC5424 {
			t.Fatalf("Parse(%q): format %q", b, m.Format)
		}
		if m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7 {
			t.Fatalf("Parse(%q): facility %d severity %d", b, m.Facility, m.Severity)
		}
		if !within(b, m.Content) || !within(b, m.StructuredData) {
			t.Fatalf("Parse(%q): Content %q or StructuredData %q not from the input", b, m.Content, m.StructuredData)
		}
		if bytes.HasSuffix(m.Content, []byte("\n")) || bytes.HasSuffix(m.Content, []byte{0}) {
			t.Fatalf("Parse(%q): Content %q keeps a line end", b, m.Content)
		}
		if !m.Time.IsZero() && (m.Time.Year() < 0 || m.Time.Year() > 9999) {
			t.Fatalf("Parse(%q): time %v", b, m.Time)
		}
	})
}

// within reports whether sub is empty or a slice of b's memory.
func within(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	for i := range len(b) - len(sub) + 1 {
		if &b[i] == &sub[0] {
			return true
		}
	}
	return false
}
