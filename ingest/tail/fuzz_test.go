package tail

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// shapeLines is the reference for what the chunks of data carry: its
// complete lines, each cut to maxLine bytes.
func shapeLines(data []byte, maxLine int) []byte {
	var out []byte
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return out
		}
		out = append(out, data[:min(i, maxLine)]...)
		out = append(out, '\n')
		data = data[i+1:]
	}
}

// FuzzChunking writes data to a file in steps, reading after each, and
// checks the chunks against the reference; then emits each chunk again as a
// replay and checks it comes out identical.
func FuzzChunking(f *testing.F) {
	f.Add([]byte("a\nbb\nccc\n"), uint8(2), uint8(4), uint8(3))
	f.Add([]byte("0123456789\nshort\n\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\ny\n"), uint8(5), uint8(9), uint8(7))
	f.Add([]byte("no newline at all"), uint8(3), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, maxLine, maxChunk, step uint8) {
		ml, mc, st := int(maxLine%16)+1, int(maxChunk%32)+1, int(step%17)+1
		p := filepath.Join(t.TempDir(), "f.log")
		w, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tl, err := New(Config{Globs: []string{p}, MaxLine: ml, MaxChunk: mc, MaxInFlight: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		fo := &follower{file: r, e: &entry{}}
		var chunks []Chunk
		now := time.Now()
		for off := 0; off < len(data); off += st {
			if _, err := w.Write(data[off:min(off+st, len(data))]); err != nil {
				t.Fatal(err)
			}
			if chunks, err = tl.readLive(fo, now, chunks); err != nil {
				t.Fatal(err)
			}
		}

		complete := int64(bytes.LastIndexByte(data, '\n') + 1)
		var got []byte
		var end int64
		for _, c := range chunks {
			desc := fmt.Sprintf("chunk [%d, %d) %q", c.Start, c.End, c.Data)
			if c.Start != end || c.End <= c.Start || !bytes.HasSuffix(c.Data, []byte("\n")) {
				t.Fatalf("%s after end %d", desc, end)
			}
			if bytes.Count(c.Data, []byte("\n")) > 1 && len(c.Data) > mc {
				t.Fatalf("%s: several lines over MaxChunk %d", desc, mc)
			}
			if raw := data[c.Start:c.End]; len(raw) == len(c.Data) && !bytes.Equal(raw, c.Data) {
				t.Fatalf("%s: file has %q", desc, raw)
			}
			got = append(got, c.Data...)
			end = c.End
		}
		if end != complete {
			t.Fatalf("chunks end at %d, complete lines at %d", end, complete)
		}
		if want := shapeLines(data, ml); !bytes.Equal(got, want) {
			t.Fatalf("chunks carry %q, want %q", got, want)
		}

		// Replay with a fresh buffer reproduces every chunk.
		rf := &follower{file: r, e: &entry{}}
		for _, c := range chunks {
			rf.replay = append(rf.replay, span{start: c.Start, end: c.End})
		}
		replayed, err := tl.replayFollower(rf, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(replayed) != len(chunks) {
			t.Fatalf("%d replayed chunks, want %d", len(replayed), len(chunks))
		}
		for i, c := range replayed {
			w := chunks[i]
			if !c.Replay || c.Start != w.Start || c.End != w.End || !bytes.Equal(c.Data, w.Data) {
				t.Fatalf("replay [%d, %d) %q, want [%d, %d) %q", c.Start, c.End, c.Data, w.Start, w.End, w.Data)
			}
		}
	})
}

// FuzzDecodeCheckpoint checks that no checkpoint file makes New panic and
// that what decodes encodes back to the same state.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte(`{"version": 1, "files": {"fd01-1a2b3c-0": {"path": "/var/log/a.log", "offset": 10, "pending": [20, 30], "done": [30], "head_len": 10, "head_fnv1a": "af63bd4c8601b7df"}}, "retired": {"fd01-1a2b3b": {"gen": 2, "at": "2030-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{"version": 1, "files": {"1-2-0": {"path": "/a", "offset": 0}, "1-2-1": {"path": "/a", "offset": 5}}}`))
	f.Add([]byte(`{"version": 1, "files": {}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, retired, _, err := decodeCheckpoint(data)
		if err != nil {
			return
		}
		tl := &Tailer{entries: entries, retired: retired}
		for k, r := range retired {
			r.at = time.Now() // not expired
			retired[k] = r
		}
		out, err := tl.encodeLocked(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		entries2, retired2, _, err := decodeCheckpoint(out)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if !reflect.DeepEqual(entries, entries2) {
			t.Fatalf("entries changed through %s", out)
		}
		if len(retired) != len(retired2) {
			t.Fatalf("retired changed through %s", out)
		}
	})
}
