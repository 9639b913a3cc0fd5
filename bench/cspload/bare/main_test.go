package main

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/ingest/csp"
)

// The body report.lua sends (with its counters at 0).
var body = []byte(`{"csp-report":{"document-uri":"https://shop.example/checkout?step=0","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"default-src 'self'; script-src 'self'; report-uri https://vigil.example/csp-report","disposition":"enforce","blocked-uri":"https://evil.example/x0-0.js","status-code":200,"script-sample":""}}`)

// BenchmarkVigilParse is the per-request parsing the public listener does
// for POST /csp-report (csp.Parse with the default filter).
func BenchmarkVigilParse(b *testing.B) {
	f := csp.DefaultFilter()
	meta := csp.Meta{ClientIP: netip.MustParseAddr("127.0.0.1"), UserAgent: "Mozilla/5.0 Chrome/126.0.0.0", Received: time.Now()}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := csp.Parse("application/csp-report", body, meta, &f)
		if err != nil || len(res.Events) != 1 {
			b.Fatal(err, len(res.Events))
		}
	}
}

// BenchmarkBareParse is what this handler does with the body.
func BenchmarkBareParse(b *testing.B) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var rep report
		if err := json.Unmarshal(body, &rep); err != nil || rep.CSPReport.BlockedURI == "" {
			b.Fatal(err)
		}
	}
}
