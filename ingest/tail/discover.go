package tail

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// startAtEndWindow is how far back from the end StartAtEnd looks for the
// last complete line.
const startAtEndWindow = 64 << 10

// keyOf returns the device and inode of a file.
func keyOf(fi fs.FileInfo) (fileKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{dev: uint64(st.Dev), ino: st.Ino}, true
}

// deleted reports whether an open file has no name left.
func deleted(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// discover expands the globs, notices files renamed or deleted, and starts
// following new ones. Checkpointed files not matched by the globs are looked
// for, at start-up, in the directory they were last seen in (rotated while
// Vigil was down), and dropped otherwise.
func (t *Tailer) discover(now time.Time, startup bool) {
	byKey := make(map[fileKey]string)   // first matched path of each file
	pathKey := make(map[string]fileKey) // every matched path
	for _, g := range t.cfg.Globs {
		matches, _ := filepath.Glob(g) // the only error, ErrBadPattern, is ruled out by New
		for _, p := range matches {
			if _, ok := pathKey[p]; ok {
				continue
			}
			fi, err := os.Stat(p)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.warnOpen(p, err)
				}
				continue
			}
			k, ok := keyOf(fi)
			if !ok || !fi.Mode().IsRegular() {
				continue
			}
			pathKey[p] = k
			if _, ok := byKey[k]; !ok {
				byKey[k] = p
			}
		}
	}

	for k, f := range t.followers {
		p, matched := byKey[k]
		switch {
		case matched:
			if pk, ok := pathKey[f.path]; !ok || pk != k {
				t.rotations.Add(1)
				t.log.Info("file renamed", "from", f.path, "to", p, "file", f.e.id)
				f.path = p
				t.mu.Lock()
				f.e.path = p
				t.dirty = true
				t.mu.Unlock()
			}
			f.gone = time.Time{}
		case f.gone.IsZero():
			f.gone = now
			if fi, err := f.file.Stat(); err == nil && deleted(fi) {
				t.log.Info("file deleted; reading it to the end", "path", f.path, "file", f.e.id)
			} else {
				t.rotations.Add(1)
				t.log.Info("file rotated away; reading it to the end", "path", f.path, "file", f.e.id)
			}
		}
	}

	paths := make([]string, 0, len(byKey))
	for k, p := range byKey {
		if t.followers[k] == nil {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		t.follow(pathKey[p], p, now, startup, false)
	}

	t.mu.Lock()
	var lost []*entry
	for _, e := range t.entries {
		if e.loaded && !e.attached {
			if _, matched := byKey[e.key()]; !matched {
				lost = append(lost, e)
			}
		}
	}
	t.mu.Unlock()
	dirs := make(map[string]map[fileKey]string)
	for _, e := range lost {
		k := e.key()
		if startup {
			dir := filepath.Dir(e.path)
			if dirs[dir] == nil {
				dirs[dir] = scanDir(dir)
			}
			if p, ok := dirs[dir][k]; ok {
				t.follow(k, p, now, false, true)
				if t.followers[k] != nil {
					continue
				}
			}
		}
		t.mu.Lock()
		n := len(e.pending)
		delete(t.entries, e.id)
		t.retireLocked(e.id, now)
		t.dirty = true
		t.mu.Unlock()
		if n > 0 {
			t.log.Warn("checkpointed file not found; its unpublished chunks cannot be emitted again",
				"path", e.path, "file", e.id, "chunks", n)
		} else {
			t.log.Info("checkpointed file not found; forgetting it", "path", e.path, "file", e.id)
		}
	}

	t.mu.Lock()
	t.pruneLocked(now)
	t.mu.Unlock()
}

// scanDir maps the regular files of dir by device and inode.
func scanDir(dir string) map[fileKey]string {
	m := make(map[fileKey]string)
	des, err := os.ReadDir(dir)
	if err != nil {
		return m
	}
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if k, ok := keyOf(fi); ok {
			m[k] = filepath.Join(dir, de.Name())
		}
	}
	return m
}

// follow opens the file at p, expected to have key k, and starts following
// it: from its checkpoint if it has one (emitting its pending chunks again
// first), else from the start, or from its end for StartAtEnd at start-up.
// gone marks a file found outside the globs.
func (t *Tailer) follow(k fileKey, p string, now time.Time, startup, gone bool) {
	file, err := os.Open(p)
	if err != nil {
		t.warnOpen(p, err)
		return
	}
	fi, err := file.Stat()
	if err != nil {
		t.warnOpen(p, err)
		file.Close()
		return
	}
	if fk, ok := keyOf(fi); !ok || fk != k {
		file.Close() // replaced since the glob; the next poll sees the new file
		return
	}
	delete(t.openErrs, p)
	size := fi.Size()
	f := &follower{key: k, path: p, file: file, active: now, size: size}
	if gone {
		f.gone = now
	}
	head, err := f.readHead(size)
	if err != nil {
		t.warnOpen(p, err)
		file.Close()
		return
	}
	var startAt int64
	if startup && t.cfg.StartAtEnd {
		startAt = lastLineEnd(file, size)
	}

	t.mu.Lock()
	e := t.liveEntryLocked(k)
	var why string
	if e != nil {
		switch {
		case size < e.lastEnd():
			why = "truncated"
		case !headMatchesLocked(e, head):
			why = "replaced"
		}
	}
	if why != "" {
		if e.loaded {
			delete(t.entries, e.id) // nothing of it can be emitted again
		} else {
			e.dead = true // its chunks in flight can still be committed
		}
		t.retireLocked(e.id, now)
		e = nil
	}
	if e == nil {
		id := FileID{Dev: k.dev, Ino: k.ino, Gen: t.nextGenLocked(k)}
		e = &entry{id: id, path: p, committed: startAt}
		headMatchesLocked(e, head)
		t.entries[id] = e
	}
	e.attached = true
	e.path = p
	t.dirty = true
	var replay []span
	if e.loaded {
		prev := e.committed
		for _, pd := range e.pending {
			if !pd.done {
				replay = append(replay, span{start: prev, end: pd.end})
			}
			prev = pd.end
		}
		e.loaded = false
	}
	f.e = e
	f.floor = e.lastEnd()
	t.mu.Unlock()

	if why != "" {
		t.truncations.Add(1)
		t.log.Warn("file "+why+" while not followed; reading it from the start as a new generation", "path", p, "file", e.id)
	}
	f.replay = replay
	f.resetAt(f.floor)
	if len(replay) > 0 {
		f.resetAt(replay[0].start)
	}
	t.followers[k] = f
	t.files.Add(1)
	t.log.Info("following file", "path", p, "file", e.id, "offset", f.floor, "replay_chunks", len(replay))
}

// lastLineEnd returns the offset after the last '\n' in the last
// startAtEndWindow bytes of the file: 0 if a small file has none, its size
// if a large one has none.
func lastLineEnd(f *os.File, size int64) int64 {
	from := max(size-startAtEndWindow, 0)
	buf := make([]byte, size-from)
	n, err := f.ReadAt(buf, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return size
	}
	if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
		return from + int64(i) + 1
	}
	if from == 0 {
		return 0
	}
	return size
}

// warnOpen logs a file that cannot be read, once until it can.
func (t *Tailer) warnOpen(p string, err error) {
	if t.openErrs[p] {
		return
	}
	t.openErrs[p] = true
	t.log.Warn("cannot read file", "path", p, "err", err)
}
