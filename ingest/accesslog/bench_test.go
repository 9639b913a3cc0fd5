package accesslog

import (
	"testing"

	"github.com/vigil-soc/vigil/event"
)

// BenchmarkParse parses the sample lines of each format in turn. Lines that
// are rejected on purpose (the JSON sample's TLS probe) are left out, so the
// figures are for the happy path.
func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name   string
		format Format
		file   string
	}{
		{"nginx-combined", FormatNginxCombined, "nginx-combined.log"},
		{"nginx-main", FormatNginxMain, "nginx-main.log"},
		{"apache-combined", FormatApacheCombined, "apache-combined.log"},
		{"nginx-json", FormatNginxJSON, "nginx-json.log"},
		{"auto-text", FormatUnknown, "nginx-combined.log"},
		{"auto-json", FormatUnknown, "nginx-json.log"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := NewParser(c.format)
			var ev event.Event
			var lines [][]byte
			size := 0
			for _, line := range readLines(b, c.file) {
				if p.Parse(line, &ev) == nil {
					lines = append(lines, line)
					size += len(line)
				}
			}
			b.SetBytes(int64(size / len(lines)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := p.Parse(lines[i], &ev); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(lines) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkParseProbe measures a scanner's flood: TLS handshakes on the
// plain-HTTP port, each a probe event.
func BenchmarkParseProbe(b *testing.B) {
	line := []byte(`203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03\xA5\x1B\x9C" 400 157 "-" "-"`)
	p := NewParser(FormatNginxCombined)
	var ev event.Event
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if p.Parse(line, &ev) != nil || ev.Action != ActionTLSHandshake {
			b.Fatal("no probe event")
		}
	}
}

// BenchmarkDetectFormat measures detection over a file's first lines.
func BenchmarkDetectFormat(b *testing.B) {
	lines := readLines(b, "apache-combined.log")
	b.ReportAllocs()
	for b.Loop() {
		DetectFormat(lines)
	}
}
