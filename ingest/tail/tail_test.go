package tail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testPoll    = 10 * time.Millisecond
	testTimeout = 10 * time.Second
)

// harness runs a Tailer and checks every chunk it receives.
type harness struct {
	t      *testing.T
	tl     *Tailer
	out    chan Chunk
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	ends   map[FileID]int64 // end of the last chunk received per file
	cut    bool             // lines may be cut to MaxLine
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = testPoll
	}
	tl, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, tl: tl, out: make(chan Chunk, 64), cancel: cancel, done: make(chan error, 1), ends: make(map[FileID]int64)}
	go func() { h.done <- tl.Run(ctx, h.out) }()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run and waits for it to return nil.
func (h *harness) stop() {
	h.once.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			h.t.Fatal("Run did not return")
		}
	})
}

// next returns the next chunk, checking its shape and that it follows the
// previous chunk of its file.
func (h *harness) next() Chunk {
	h.t.Helper()
	select {
	case c := <-h.out:
		if (!h.cut && int64(len(c.Data)) != c.End-c.Start) || c.End <= c.Start {
			h.t.Fatalf("chunk %v [%d, %d) has %d bytes", c.File, c.Start, c.End, len(c.Data))
		}
		if !bytes.HasSuffix(c.Data, []byte("\n")) {
			h.t.Fatalf("chunk %v [%d, %d) does not end in a newline: %q", c.File, c.Start, c.End, c.Data)
		}
		if end, ok := h.ends[c.File]; ok && !c.Replay && c.Start != end {
			h.t.Fatalf("chunk %v starts at %d, previous chunk ended at %d", c.File, c.Start, end)
		}
		h.ends[c.File] = c.End
		return c
	case <-time.After(testTimeout):
		h.t.Fatal("no chunk arrived")
	}
	return Chunk{}
}

// none checks that no chunk arrives within a few poll intervals.
func (h *harness) none() {
	h.t.Helper()
	select {
	case c := <-h.out:
		h.t.Fatalf("unexpected chunk %v [%d, %d): %q", c.File, c.Start, c.End, c.Data)
	case <-time.After(10 * testPoll):
	}
}

// lines receives chunks until n lines arrived, committing each chunk if
// commit is set.
func (h *harness) lines(n int, commit bool) ([]string, []Chunk) {
	h.t.Helper()
	var lines []string
	var chunks []Chunk
	for len(lines) < n {
		c := h.next()
		chunks = append(chunks, c)
		lines = append(lines, strings.Split(strings.TrimSuffix(string(c.Data), "\n"), "\n")...)
		if commit {
			if err := h.tl.Commit(c.File, c.End); err != nil {
				h.t.Fatalf("Commit: %v", err)
			}
		}
	}
	if len(lines) != n {
		h.t.Fatalf("got %d lines, want %d: %q", len(lines), n, lines)
	}
	return lines, chunks
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(testPoll)
	}
}

func appendFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// One write, so a poll sees all the lines or none.
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func seq(prefix string, from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprintf("%s%03d", prefix, i))
	}
	return s
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestAppend(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "a1", "a2", "a3")
	h := start(t, Config{Globs: []string{p}, StateDir: filepath.Join(dir, "state")})

	c := h.next()
	if c.Start != 0 || c.End != 9 || string(c.Data) != "a1\na2\na3\n" || c.Path != p || c.Replay {
		t.Fatalf("first chunk: %+v", c)
	}
	if err := h.tl.Commit(c.File, c.End); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "b1", "b2")
	c = h.next()
	if c.Start != 9 || c.End != 15 || string(c.Data) != "b1\nb2\n" {
		t.Fatalf("second chunk: %+v", c)
	}
	if s := h.tl.Stats(); s.FilesFollowed != 1 || s.BytesRead != 15 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestMaxChunkCutsAtLastNewline(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "aaaa", "bbbb", "cccc", strings.Repeat("x", 20), "dd")
	h := start(t, Config{Globs: []string{p}, MaxChunk: 12})
	want := []string{"aaaa\nbbbb\n", "cccc\n", strings.Repeat("x", 20) + "\n", "dd\n"}
	for _, w := range want {
		if c := h.next(); string(c.Data) != w {
			t.Fatalf("chunk [%d, %d) = %q, want %q", c.Start, c.End, c.Data, w)
		}
	}
}

func TestPartialLineHeld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	if err := os.WriteFile(p, []byte("one\npar"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, Config{Globs: []string{p}})
	if c := h.next(); string(c.Data) != "one\n" {
		t.Fatalf("chunk %q", c.Data)
	}
	h.none()
	appendFile(t, p, "tial")
	if c := h.next(); string(c.Data) != "partial\n" || c.Start != 4 || c.End != 12 {
		t.Fatalf("chunk %+v", c)
	}
}

func TestMaxLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "short", strings.Repeat("y", 50), "after")
	h := start(t, Config{Globs: []string{p}, MaxLine: 10, MaxChunk: 16})
	h.cut = true
	var got []string
	var end int64
	for end < 63 {
		c := h.next()
		got = append(got, string(c.Data))
		end = c.End
	}
	equal(t, "chunks", got, []string{"short\n", strings.Repeat("y", 10) + "\n", "after\n"})
	if n := h.tl.Stats().LinesCut; n != 1 {
		t.Fatalf("LinesCut = %d", n)
	}
}

func TestRenameRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, seq("a", 1, 50)...)
	h := start(t, Config{Globs: []string{p}, MaxChunk: 64})
	got, _ := h.lines(50, true)
	equal(t, "before rotation", got, seq("a", 1, 50))

	// logrotate renames; nginx writes to the old file until it reopens.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p+".1", seq("a", 51, 60)...)
	appendFile(t, p, seq("b", 1, 40)...)
	appendFile(t, p+".1", seq("a", 61, 62)...)

	perFile := make(map[FileID][]string)
	_, chunks := h.lines(52, true)
	for _, c := range chunks {
		perFile[c.File] = append(perFile[c.File], strings.Split(strings.TrimSuffix(string(c.Data), "\n"), "\n")...)
	}
	if len(perFile) != 2 {
		t.Fatalf("chunks from %d files, want 2", len(perFile))
	}
	for id, lines := range perFile {
		if strings.HasPrefix(lines[0], "a") {
			equal(t, "old file "+id.String(), lines, seq("a", 51, 62))
		} else {
			equal(t, "new file "+id.String(), lines, seq("b", 1, 40))
		}
	}
	waitFor(t, "the old file to be closed", func() bool { return h.tl.Stats().FilesFollowed == 1 })
	if s := h.tl.Stats(); s.Rotations != 1 {
		t.Fatalf("stats: %+v", s)
	}
	h.none()
}

func TestRotationWithinGlob(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "a1")
	h := start(t, Config{Globs: []string{p + "*"}})
	c1 := h.next()
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p+".1", "a2")
	c2 := h.next()
	if c2.File != c1.File || c2.Start != c1.End || c2.Path != p+".1" || string(c2.Data) != "a2\n" {
		t.Fatalf("after rename: %+v, before: %+v", c2, c1)
	}
}

func TestCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "old1", "old2", "old3")
	h := start(t, Config{Globs: []string{p}})
	c := h.next()
	if c.File.Gen != 0 {
		t.Fatalf("gen %d", c.File.Gen)
	}
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "new1")
	n := h.next()
	if n.File.Gen != 1 || n.File.Ino != c.File.Ino || n.Start != 0 || string(n.Data) != "new1\n" {
		t.Fatalf("after truncation: %+v", n)
	}
	if s := h.tl.Stats(); s.Truncations != 1 {
		t.Fatalf("stats: %+v", s)
	}
	// The old generation's chunk can still be committed.
	if err := h.tl.Commit(c.File, c.End); err != nil {
		t.Fatal(err)
	}
}

func TestReplacedInPlace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "old1")
	h := start(t, Config{Globs: []string{p}})
	c := h.next()
	// Truncate and rewrite longer in one step, as the poll sees it.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("NEW1\nnew2\n"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n := h.next()
	if n.File.Gen != c.File.Gen+1 || n.Start != 0 || string(n.Data) != "NEW1\nnew2\n" {
		t.Fatalf("after replacement: %+v", n)
	}
}

func TestNewFileLater(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	appendFile(t, a, "a1")
	h := start(t, Config{Globs: []string{filepath.Join(dir, "*.log")}, StartAtEnd: true})
	waitFor(t, "start-up", func() bool { return h.tl.Stats().FilesFollowed == 1 })
	appendFile(t, a, "a2")
	if c := h.next(); string(c.Data) != "a2\n" || c.Start != 3 {
		t.Fatalf("chunk %+v", c)
	}
	b := filepath.Join(dir, "b.log")
	appendFile(t, b, "b1", "b2") // after start-up: read from the beginning
	if c := h.next(); c.Path != b || string(c.Data) != "b1\nb2\n" || c.Start != 0 {
		t.Fatalf("chunk %+v", c)
	}
}

func TestStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	if err := os.WriteFile(p, []byte("old1\nold2\nhal"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, Config{Globs: []string{p}, StartAtEnd: true})
	waitFor(t, "start-up", func() bool { return h.tl.Stats().FilesFollowed == 1 })
	h.none()
	appendFile(t, p, "f\nnew")
	if c := h.next(); c.Start != 10 || string(c.Data) != "half\nnew\n" {
		t.Fatalf("chunk %+v", c)
	}
}

func TestDeletedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "a1")
	h := start(t, Config{Globs: []string{p}})
	h.lines(1, true)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	// The writer still holds the file: what it writes is read, and a last
	// line without '\n' is emitted once the file is idle.
	if _, err := f.WriteString("a2\na3"); err != nil {
		t.Fatal(err)
	}
	c := h.next()
	if string(c.Data) != "a2\n" {
		t.Fatalf("chunk %q", c.Data)
	}
	select {
	case c := <-h.out:
		if string(c.Data) != "a3" || c.Start != 6 || c.End != 8 {
			t.Fatalf("last chunk %+v", c)
		}
		if err := h.tl.Commit(c.File, c.End); err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("no last chunk")
	}
	waitFor(t, "the file to be dropped", func() bool { return h.tl.Stats().FilesFollowed == 0 })
	if s := h.tl.Stats(); s.Rotations != 0 {
		t.Fatalf("a deletion counted as rotation: %+v", s)
	}
}

func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, seq("l", 1, 10)...)
	h := start(t, Config{Globs: []string{p}, MaxChunk: 5, MaxInFlight: 4})
	var chunks []Chunk
	for range 4 {
		chunks = append(chunks, h.next())
	}
	h.none()
	// One commit is not enough to resume (half of MaxInFlight).
	if err := h.tl.Commit(chunks[0].File, chunks[0].End); err != nil {
		t.Fatal(err)
	}
	h.none()
	if err := h.tl.Commit(chunks[1].File, chunks[1].End); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if c := h.next(); c.Start != chunks[len(chunks)-1].End {
			t.Fatalf("chunk %+v after %+v", c, chunks[len(chunks)-1])
		} else {
			chunks = append(chunks, c)
		}
	}
	h.none()
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	appendFile(t, p, "l1", "l2", "l3")
	h := start(t, Config{Globs: []string{p}, MaxChunk: 3})
	c1, c2 := h.next(), h.next()
	if err := h.tl.Commit(c1.File, c1.End+1); !errors.Is(err, ErrUnknownChunk) {
		t.Fatalf("commit of a bad end: %v", err)
	}
	if err := h.tl.Commit(FileID{Dev: 1, Ino: 2}, c1.End); !errors.Is(err, ErrUnknownChunk) {
		t.Fatalf("commit of a bad file: %v", err)
	}
	for _, c := range []Chunk{c2, c1, c1, c2} {
		if err := h.tl.Commit(c.File, c.End); err != nil {
			t.Fatalf("commit %d: %v", c.End, err)
		}
	}
}

// readCheckpoint returns the checkpoint's single file entry.
func readCheckpoint(t *testing.T, state string) (string, fileJSON) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(state, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	var cj checkpointJSON
	if err := json.Unmarshal(data, &cj); err != nil {
		t.Fatal(err)
	}
	if len(cj.Files) != 1 {
		t.Fatalf("checkpoint has %d files: %s", len(cj.Files), data)
	}
	for k, f := range cj.Files {
		return k, f
	}
	return "", fileJSON{}
}

func TestRestartReplaysUncommitted(t *testing.T) {
	dir := t.TempDir()
	p, state := filepath.Join(dir, "access.log"), filepath.Join(dir, "state")
	appendFile(t, p, seq("l", 1, 5)...)
	cfg := Config{Globs: []string{p}, StateDir: state, MaxChunk: 5}
	h := start(t, cfg)
	var cs []Chunk
	for range 5 {
		cs = append(cs, h.next())
	}
	for _, i := range []int{0, 2} { // chunk 2 out of order
		if err := h.tl.Commit(cs[i].File, cs[i].End); err != nil {
			t.Fatal(err)
		}
	}
	h.stop()

	key, f := readCheckpoint(t, state)
	if key != cs[0].File.String() || f.Path != p || f.Offset != cs[0].End ||
		fmt.Sprint(f.Pending) != fmt.Sprint([]int64{cs[1].End, cs[2].End, cs[3].End, cs[4].End}) ||
		fmt.Sprint(f.Done) != fmt.Sprint([]int64{cs[2].End}) {
		t.Fatalf("checkpoint %s: %+v", key, f)
	}

	h2 := start(t, cfg)
	for _, i := range []int{1, 3, 4} {
		c := h2.next()
		w := cs[i]
		if !c.Replay || c.File != w.File || c.Start != w.Start || c.End != w.End || !bytes.Equal(c.Data, w.Data) {
			t.Fatalf("replay %d: %+v, want %+v", i, c, w)
		}
		if err := h2.tl.Commit(c.File, c.End); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, p, "l006")
	c := h2.next()
	if c.Replay || c.Start != cs[4].End || string(c.Data) != "l006\n" {
		t.Fatalf("after replay: %+v", c)
	}
	if n := h2.tl.Stats().ChunksReplayed; n != 3 {
		t.Fatalf("ChunksReplayed = %d", n)
	}
}

func TestRestartAfterRotation(t *testing.T) {
	for _, glob := range []string{"access.log", "access.log*"} {
		t.Run(glob, func(t *testing.T) {
			dir := t.TempDir()
			p, state := filepath.Join(dir, "access.log"), filepath.Join(dir, "state")
			appendFile(t, p, "a1", "a2")
			cfg := Config{Globs: []string{filepath.Join(dir, glob)}, StateDir: state, MaxChunk: 3}
			h := start(t, cfg)
			c1, c2 := h.next(), h.next()
			if err := h.tl.Commit(c1.File, c1.End); err != nil {
				t.Fatal(err)
			}
			h.stop()

			// Rotated while down, with more lines in the old file.
			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p+".1", "a3")
			appendFile(t, p, "b1")

			h2 := start(t, cfg)
			perFile := make(map[FileID][]Chunk)
			for range 3 {
				c := h2.next()
				perFile[c.File] = append(perFile[c.File], c)
			}
			old := perFile[c1.File]
			if len(old) != 2 || !old[0].Replay || old[0].Start != c2.Start || old[0].End != c2.End || old[0].Path != p+".1" ||
				old[1].Replay || string(old[1].Data) != "a3\n" {
				t.Fatalf("old file: %+v", old)
			}
			delete(perFile, c1.File)
			for _, cs := range perFile {
				if len(cs) != 1 || cs[0].Path != p || cs[0].Start != 0 || string(cs[0].Data) != "b1\n" {
					t.Fatalf("new file: %+v", cs)
				}
			}
		})
	}
}

func TestRestartAfterTruncation(t *testing.T) {
	for _, tc := range []struct{ name, contents string }{
		{"shorter", "n1\n"},
		{"replaced", "n1\nn2\nn3\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p, state := filepath.Join(dir, "access.log"), filepath.Join(dir, "state")
			appendFile(t, p, "o1", "o2")
			cfg := Config{Globs: []string{p}, StateDir: state}
			h := start(t, cfg)
			c := h.next()
			if err := h.tl.Commit(c.File, c.End); err != nil {
				t.Fatal(err)
			}
			h.stop()
			if err := os.WriteFile(p, []byte(tc.contents), 0o644); err != nil { // same inode
				t.Fatal(err)
			}
			h2 := start(t, cfg)
			n := h2.next()
			if n.Replay || n.File.Gen != c.File.Gen+1 || n.File.Ino != c.File.Ino || n.Start != 0 || string(n.Data) != tc.contents {
				t.Fatalf("after restart: %+v", n)
			}
		})
	}
}

func TestRestartWithoutCommitsLostWrite(t *testing.T) {
	// A commit not yet written when the process dies only makes the chunk
	// come again with the same boundaries.
	dir := t.TempDir()
	p, state := filepath.Join(dir, "access.log"), filepath.Join(dir, "state")
	appendFile(t, p, "a1")
	cfg := Config{Globs: []string{p}, StateDir: state}
	h := start(t, cfg)
	c := h.next()
	before, err := os.ReadFile(filepath.Join(state, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.tl.Commit(c.File, c.End); err != nil {
		t.Fatal(err)
	}
	h.stop()
	if err := os.WriteFile(filepath.Join(state, CheckpointFile), before, 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := start(t, cfg)
	r := h2.next()
	if !r.Replay || r.File != c.File || r.Start != c.Start || r.End != c.End || !bytes.Equal(r.Data, c.Data) {
		t.Fatalf("replay %+v, want %+v", r, c)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(state, CheckpointFile)
	for _, tc := range []struct {
		name, contents string
		want           []string
	}{
		{"syntax", "{\n  \"version\": 1,\n  \"files\": {x}\n}", []string{ckpt, "line 3"}},
		{"version", `{"version": 7, "files": {}}`, []string{ckpt, "version: 7"}},
		{"unknown field", `{"version": 1, "files": {}, "extra": 1}`, []string{ckpt, "extra"}},
		{"bad key", `{"version": 1, "files": {"zz": {"path": "/x", "offset": 0}}}`, []string{ckpt, `files["zz"]`}},
		{"pending", `{"version": 1, "files": {"1-2-0": {"path": "/x", "offset": 10, "pending": [20, 15]}}}`, []string{ckpt, `files["1-2-0"]: pending: 15`}},
		{"done", `{"version": 1, "files": {"1-2-0": {"path": "/x", "offset": 10, "pending": [20], "done": [30]}}}`, []string{ckpt, "done: 30"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(ckpt, []byte(tc.contents), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{Globs: []string{filepath.Join(dir, "*.log")}, StateDir: state})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	_, err := New(Config{Globs: []string{"[", ""}, PollInterval: -1, MaxChunk: -1, MaxInFlight: -1, MaxLine: -1})
	for _, w := range []string{"globs[0]", "globs[1]", "poll_interval", "max_chunk", "max_in_flight", "max_line"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("config error %v does not name %s", err, w)
		}
	}
}

func TestFileIDString(t *testing.T) {
	id := FileID{Dev: 0xfd01, Ino: 0x1a2b3c, Gen: 0}
	if s := id.String(); s != "fd01-1a2b3c-0" {
		t.Fatalf("String() = %q", s)
	}
	back, err := parseFileID(id.String())
	if err != nil || back != id {
		t.Fatalf("parseFileID: %v, %v", back, err)
	}
}

func TestCommitWrites(t *testing.T) {
	dir := t.TempDir()
	p, state := filepath.Join(dir, "access.log"), filepath.Join(dir, "state")
	appendFile(t, p, "l1", "l2")
	h := start(t, Config{Globs: []string{p}, StateDir: state, MaxChunk: 3})
	c1, c2 := h.next(), h.next()
	if _, f := readCheckpoint(t, state); f.Offset != 0 || len(f.Pending) != 2 {
		t.Fatalf("checkpoint before commits: %+v", f)
	}
	if err := h.tl.Commit(c1.File, c1.End); err != nil {
		t.Fatal(err)
	}
	// Written lazily while running.
	waitFor(t, "the commit to be written", func() bool {
		_, f := readCheckpoint(t, state)
		return f.Offset == c1.End
	})
	h.stop()
	// A commit after Run returned is written by Flush.
	if err := h.tl.Commit(c2.File, c2.End); err != nil {
		t.Fatal(err)
	}
	if err := h.tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, f := readCheckpoint(t, state); f.Offset != c2.End || len(f.Pending) != 0 {
		t.Fatalf("checkpoint after Flush: %+v", f)
	}
}

func TestNextGen(t *testing.T) {
	tl := &Tailer{entries: make(map[FileID]*entry), retired: make(map[fileKey]retiredID)}
	k := fileKey{dev: 1, ino: 2}
	if g := tl.nextGenLocked(k); g != 0 {
		t.Fatalf("new file: gen %d", g)
	}
	// A reused inode continues after the generation last seen.
	tl.retireLocked(FileID{Dev: 1, Ino: 2, Gen: 3}, time.Now())
	tl.retireLocked(FileID{Dev: 1, Ino: 2, Gen: 1}, time.Now())
	if g := tl.nextGenLocked(k); g != 4 {
		t.Fatalf("after retired gen 3: gen %d", g)
	}
	tl.entries[FileID{Dev: 1, Ino: 2, Gen: 7}] = &entry{id: FileID{Dev: 1, Ino: 2, Gen: 7}, dead: true}
	if g := tl.nextGenLocked(k); g != 8 {
		t.Fatalf("after dead gen 7: gen %d", g)
	}
}
