package tail

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReadLive measures cutting an nginx access log into chunks, from
// the page cache.
func BenchmarkReadLive(b *testing.B) {
	p := filepath.Join(b.TempDir(), "access.log")
	var data []byte
	for i := 0; len(data) < 8<<20; i++ {
		data = fmt.Appendf(data, "203.0.113.%d - - [10/Oct/2025:13:55:36 +0000] \"GET /item/%d HTTP/1.1\" 404 153 \"-\" \"Mozilla/5.0\"\n", i%256, i)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	tl, err := New(Config{Globs: []string{p}, MaxInFlight: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	fo := &follower{file: r, e: &entry{}}
	chunks := make([]Chunk, 0, 64)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		fo.resetAt(0)
		if chunks, err = tl.readLive(fo, time.Now(), chunks[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
