package tail

import (
	"bytes"
	"hash/fnv"
	"io"
	"os"
	"time"
)

// headSize is how many bytes at the start of a file are fingerprinted.
const headSize = 1024

// span is a chunk to emit again after a restart.
type span struct{ start, end int64 }

// follower reads one open file. It is owned by the goroutine in Run.
//
// buf holds the bytes of [start, pos) as they will be emitted: buf[:cutIdx]
// are complete lines ending at file offset cutOff, buf[cutIdx:scanned] is
// the current incomplete line (at most MaxLine bytes; more are skipped while
// skipping is set), and buf[scanned:] are raw bytes read but not yet
// scanned, which end at pos.
type follower struct {
	key  fileKey
	e    *entry
	path string
	file *os.File

	buf      []byte
	start    int64
	pos      int64
	scanned  int
	cutIdx   int
	cutOff   int64
	skipping bool

	replay []span // chunks to emit again, in order
	floor  int64  // the file is truncated if it is ever smaller than this
	paused bool   // MaxInFlight reached; resumes at half

	size   int64     // size at the last fstat
	active time.Time // last time the file grew or was opened
	gone   time.Time // first poll at which no glob matched the file; zero while matched
	head   [headSize]byte
}

// resetAt empties the buffer and moves the read position to off.
func (f *follower) resetAt(off int64) {
	f.buf = f.buf[:0]
	f.start, f.pos, f.cutOff = off, off, off
	f.scanned, f.cutIdx = 0, 0
	f.skipping = false
}

// ensureCap makes the buffer hold at least n bytes.
func (f *follower) ensureCap(n int) {
	if cap(f.buf) < n {
		nb := make([]byte, len(f.buf), n)
		copy(nb, f.buf)
		f.buf = nb
	}
}

// highWater is the least size the file can have without having been
// truncated.
func (f *follower) highWater() int64 {
	hw := max(f.pos, f.floor)
	if n := len(f.replay); n > 0 {
		hw = max(hw, f.replay[n-1].end)
	}
	return hw
}

// read reads into the free capacity of buf, at most up to file offset limit
// (no limit if negative). A full buffer is grown, to at most grow bytes if
// grow > 0. It returns 0 at the end of the file or at limit.
func (f *follower) read(limit int64, grow int) (int, error) {
	if len(f.buf) == cap(f.buf) {
		c := max(2*cap(f.buf), 4096)
		if grow > 0 {
			c = max(min(c, grow), cap(f.buf)+1)
		}
		nb := make([]byte, len(f.buf), c)
		copy(nb, f.buf)
		f.buf = nb
	}
	room := f.buf[len(f.buf):cap(f.buf)]
	if limit >= 0 && int64(len(room)) > limit-f.pos {
		room = room[:limit-f.pos]
	}
	if len(room) == 0 {
		return 0, nil
	}
	n, err := f.file.ReadAt(room, f.pos)
	if err == io.EOF {
		err = nil
	}
	f.buf = f.buf[:len(f.buf)+n]
	f.pos += int64(n)
	return n, err
}

// scan moves raw bytes into the line structure: it finds line ends, cuts
// lines longer than maxLine (keeping maxLine bytes and the '\n') and drops
// the skipped bytes. With stop, it stops before a line that would make the
// complete lines exceed maxChunk, unless that line is the first, and
// reports full. It returns the number of lines cut.
func (f *follower) scan(maxLine, maxChunk int, stop bool) (full bool, cut uint64) {
	b := f.buf
	w, r, end := f.scanned, f.scanned, len(b)
	off := f.pos - int64(end-r) // file offset of b[r]
	for r < end {
		if f.skipping {
			j := bytes.IndexByte(b[r:end], '\n')
			if j < 0 {
				off += int64(end - r)
				r = end
				break
			}
			r += j
			off += int64(j)
			f.skipping = false
		}
		line := w - f.cutIdx
		j := bytes.IndexByte(b[r:end], '\n')
		if j < 0 {
			m := end - r
			if line+m > maxLine {
				keep := maxLine - line
				copy(b[w:], b[r:r+keep])
				w += keep
				f.skipping = true
				cut++
			} else {
				copy(b[w:], b[r:end])
				w += m
			}
			off += int64(m)
			r = end
			break
		}
		keep := j
		if line+j > maxLine {
			keep = maxLine - line
		}
		if stop && f.cutIdx > 0 && w+keep+1 > maxChunk {
			full = true
			break
		}
		copy(b[w:], b[r:r+keep])
		w += keep
		b[w] = '\n'
		w++
		if keep < j {
			cut++
		}
		r += j + 1
		off += int64(j + 1)
		f.cutIdx, f.cutOff = w, off
	}
	n := copy(b[w:], b[r:end])
	f.buf = b[:w+n]
	f.scanned = w
	return full, cut
}

// cutLines takes the complete lines out of the buffer as a chunk.
func (f *follower) cutLines() Chunk {
	c := Chunk{File: f.e.id, Path: f.path, Start: f.start, End: f.cutOff, Data: bytes.Clone(f.buf[:f.cutIdx])}
	n := copy(f.buf, f.buf[f.cutIdx:])
	f.buf = f.buf[:n]
	f.scanned -= f.cutIdx
	f.cutIdx = 0
	f.start = f.cutOff
	return c
}

// cutAll takes everything read as a chunk, an incomplete last line
// included. The buffer must be fully scanned.
func (f *follower) cutAll(replay bool) Chunk {
	c := Chunk{File: f.e.id, Path: f.path, Start: f.start, End: f.pos, Data: bytes.Clone(f.buf), Replay: replay}
	f.resetAt(f.pos)
	return c
}

// readHead reads the first min(size, headSize) bytes of the file.
func (f *follower) readHead(size int64) ([]byte, error) {
	n, err := f.file.ReadAt(f.head[:min(size, headSize)], 0)
	if err == io.EOF {
		err = nil
	}
	return f.head[:n], err
}

func fnv1a(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// headMatchesLocked reports whether head starts with the bytes e
// fingerprinted, and extends the fingerprint to head. The caller holds t.mu.
func headMatchesLocked(e *entry, head []byte) bool {
	if e.headLen > 0 && (len(head) < e.headLen || fnv1a(head[:e.headLen]) != e.headHash) {
		return false
	}
	if len(head) > e.headLen {
		e.headLen, e.headHash = len(head), fnv1a(head)
	}
	return true
}

// readFollower reads what f has gained since the last pass and appends the
// chunks to batch. It reports truncation, emits replays, reads until the end
// of the file or until MaxInFlight, and closes a file that is gone, idle and
// fully read. Chunks with new boundaries are recorded as pending.
func (t *Tailer) readFollower(f *follower, now time.Time, batch []Chunk) []Chunk {
	fi, err := f.file.Stat()
	if err != nil {
		t.log.Warn("checking file", "path", f.path, "file", f.e.id, "err", err)
		return batch
	}
	size := fi.Size()
	if size < f.highWater() {
		t.restartFile(f, "truncated", size)
	}
	if size != f.size {
		f.size = size
		head, err := f.readHead(size)
		if err != nil {
			t.log.Warn("reading file", "path", f.path, "file", f.e.id, "err", err)
			return batch
		}
		t.mu.Lock()
		ok := headMatchesLocked(f.e, head)
		t.mu.Unlock()
		if !ok {
			t.restartFile(f, "replaced", size)
			t.mu.Lock()
			headMatchesLocked(f.e, head)
			t.mu.Unlock()
		}
	}
	first := len(batch)
	batch, err = t.replayFollower(f, now, batch)
	if err == nil && len(f.replay) == 0 {
		batch, err = t.readLive(f, now, batch)
	}
	if err != nil {
		t.log.Warn("reading file", "path", f.path, "file", f.e.id, "err", err)
	}
	if len(f.replay) == 0 && !f.paused && !f.gone.IsZero() && f.pos >= size &&
		now.Sub(f.gone) >= 2*t.cfg.PollInterval && now.Sub(f.active) >= 2*t.cfg.PollInterval {
		if len(f.buf) > 0 {
			batch = append(batch, f.cutAll(false))
		}
		t.closeFollower(f, "gone and fully read")
	}
	t.mu.Lock()
	for _, c := range batch[first:] {
		if !c.Replay {
			f.e.pending = append(f.e.pending, pend{end: c.End})
		}
	}
	t.mu.Unlock()
	return batch
}

// replayFollower emits the chunks of f.replay, each exactly as recorded.
func (t *Tailer) replayFollower(f *follower, now time.Time, batch []Chunk) ([]Chunk, error) {
	for len(f.replay) > 0 {
		f.ensureCap(t.cfg.MaxChunk)
		sp := f.replay[0]
		if f.start != sp.start {
			f.resetAt(sp.start)
		}
		if f.pos < sp.end {
			n, err := f.read(sp.end, 0)
			if err != nil || n == 0 {
				return batch, err
			}
			t.bytesRead.Add(uint64(n))
			f.active = now
			_, cut := f.scan(t.cfg.MaxLine, 0, false)
			t.linesCut.Add(cut)
			continue
		}
		batch = append(batch, f.cutAll(true))
		f.replay = f.replay[1:]
	}
	if f.start < f.floor {
		f.resetAt(f.floor)
	}
	return batch, nil
}

// readLive reads new data and cuts it into chunks until the end of the file
// or until MaxInFlight chunks are uncommitted.
func (t *Tailer) readLive(f *follower, now time.Time, batch []Chunk) ([]Chunk, error) {
	t.mu.Lock()
	inflight := len(f.e.pending)
	t.mu.Unlock()
	limit := t.cfg.MaxInFlight
	if f.paused && inflight > limit/2 {
		return batch, nil
	}
	f.paused = false
	grow := t.cfg.MaxLine + t.cfg.MaxChunk
	f.ensureCap(t.cfg.MaxChunk)
	for {
		if inflight >= limit {
			f.paused = true
			return batch, nil
		}
		full, cut := f.scan(t.cfg.MaxLine, t.cfg.MaxChunk, true)
		t.linesCut.Add(cut)
		if full || (f.cutIdx > 0 && len(f.buf) == cap(f.buf)) {
			batch = append(batch, f.cutLines())
			inflight++
			continue
		}
		n, err := f.read(-1, grow)
		if err != nil {
			return batch, err
		}
		if n == 0 {
			if f.cutIdx > 0 {
				batch = append(batch, f.cutLines())
			}
			return batch, nil
		}
		t.bytesRead.Add(uint64(n))
		f.active = now
	}
}

// restartFile starts a new generation of f's file at offset 0, after the
// file was found truncated or its contents replaced. The old generation's
// uncommitted chunks can still be committed.
func (t *Tailer) restartFile(f *follower, why string, size int64) {
	t.truncations.Add(1)
	t.mu.Lock()
	old := f.e
	old.dead, old.attached = true, false
	ne := &entry{id: FileID{Dev: f.key.dev, Ino: f.key.ino, Gen: t.nextGenLocked(f.key)}, path: f.path, attached: true}
	t.entries[ne.id] = ne
	t.dirty = true
	t.mu.Unlock()
	t.log.Warn("file "+why+"; reading it again from the start as a new generation",
		"path", f.path, "file", ne.id, "old_file", old.id, "size", size, "offset", f.pos)
	f.e = ne
	f.replay = nil
	f.floor = 0
	f.paused = false
	f.size = -1 // fingerprint the new contents
	f.resetAt(0)
}

// closeFollower closes f's file and stops following it. Its entry stays
// until its chunks are committed.
func (t *Tailer) closeFollower(f *follower, why string) {
	if err := f.file.Close(); err != nil {
		t.log.Warn("closing file", "path", f.path, "err", err)
	}
	delete(t.followers, f.key)
	t.files.Add(-1)
	t.mu.Lock()
	f.e.attached = false
	t.mu.Unlock()
	t.log.Info("stopped following file: "+why, "path", f.path, "file", f.e.id, "offset", f.pos)
}

// closeAll closes every open file when Run returns.
func (t *Tailer) closeAll() {
	for _, f := range t.followers {
		t.closeFollower(f, "stopping")
	}
}

// readAll reads every followed file once and returns the chunks to hand
// out, their new boundaries already recorded as pending.
func (t *Tailer) readAll(now time.Time) []Chunk {
	var batch []Chunk
	for _, f := range t.followers {
		batch = t.readFollower(f, now, batch)
	}
	return batch
}
