package csp

import "testing"

// BenchmarkParseReports parses a batched Reporting API capture (two
// reports).
func BenchmarkParseReports(b *testing.B) {
	c := readCapture(b, "03-002.http")
	b.SetBytes(int64(len(c.body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseReports(c.body, testMeta, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseLegacy parses a report-uri capture (one report).
func BenchmarkParseLegacy(b *testing.B) {
	c := readCapture(b, "01-001.http")
	b.SetBytes(int64(len(c.body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLegacy(c.body, testMeta, nil); err != nil {
			b.Fatal(err)
		}
	}
}
