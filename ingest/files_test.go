package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
	"github.com/vigil-soc/vigil/ingest/tail"
)

// A chunk of long, escape-heavy lines is split into parts under the size
// cap, deterministically, and every event lands in exactly one part.
func TestChunkSplitsIntoBoundedParts(t *testing.T) {
	var lines strings.Builder
	long := strings.Repeat("%3C%22&", 1000)
	const n = 400
	for i := range n {
		fmt.Fprintf(&lines, "203.0.113.%d - - [23/Nov/2026:10:00:00 +0000] \"GET /q?x=%s&i=%d HTTP/1.1\" 404 1 \"-\" \"\\x22ua\\x22\"\n", i%4, long, i)
	}
	ch := tail.Chunk{File: tail.FileID{Dev: 1, Ino: 2}, Start: 0, End: int64(lines.Len()), Data: []byte(lines.String())}
	parse := func() (ids []string, events int) {
		p := newChunkParser(accesslog.FormatNginxCombined, 2)
		p.parse(ch, NewMetrics(prometheus.NewRegistry()))
		for i := range p.used {
			b := &p.batches[i]
			if len(b.Buf) > maxBatchBytes+64<<10 {
				t.Errorf("batch %s is %d bytes", p.ids[i], len(b.Buf))
			}
			if bad := bus.DecodeBatch(b.Buf, func(*event.Event) { events++ }); len(bad) > 0 {
				t.Fatal(bad)
			}
			ids = append(ids, b.Subject+"/"+p.ids[i])
		}
		return ids, events
	}
	ids1, events := parse()
	ids2, _ := parse()
	if events != n {
		t.Fatalf("%d events in the batches, want %d", events, n)
	}
	if len(ids1) < 4 || fmt.Sprint(ids1) != fmt.Sprint(ids2) {
		t.Fatalf("parts %v then %v: want several, identical", ids1, ids2)
	}
}
