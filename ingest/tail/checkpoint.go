package tail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// checkpointVersion is the version of the checkpoint file format.
const checkpointVersion = 1

// retireTTL is how long the last generation of a file no longer followed is
// remembered, so a new file that reuses its inode gets the next generation
// and never repeats its ids. It must exceed the stream's duplicate window.
const retireTTL = 24 * time.Hour

// checkpointJSON is the checkpoint file, <StateDir>/tail-checkpoints.json:
//
//	{
//	  "version": 1,
//	  "files": {
//	    "fd01-1a2b3c-0": {
//	      "path": "/var/log/nginx/access.log",
//	      "offset": 1234,
//	      "pending": [2345, 3456, 4567],
//	      "done": [3456],
//	      "head_len": 1024,
//	      "head_fnv1a": "9c3a0d1f6b2e4a77"
//	    }
//	  },
//	  "retired": {"fd01-1a2b3b": {"gen": 0, "at": "2025-06-01T10:00:00Z"}}
//	}
//
// Files are keyed by FileID.String(). offset is the committed offset: every
// chunk before it is published. pending are the ends of the chunks handed
// out after it, in order: chunk i is [pending[i-1], pending[i]) with
// pending[-1] = offset. done lists the pending ends committed out of order.
// head_len and head_fnv1a fingerprint the file's first bytes (FNV-1a, 64
// bits, hex). retired maps "dev-ino" to the last generation of a file that
// is no longer followed.
type checkpointJSON struct {
	Version int                    `json:"version"`
	Files   map[string]fileJSON    `json:"files"`
	Retired map[string]retiredJSON `json:"retired,omitempty"`
}

type fileJSON struct {
	Path    string  `json:"path"`
	Offset  int64   `json:"offset"`
	Pending []int64 `json:"pending,omitempty"`
	Done    []int64 `json:"done,omitempty"`
	HeadLen int     `json:"head_len,omitempty"`
	HeadFNV string  `json:"head_fnv1a,omitempty"`
}

type retiredJSON struct {
	Gen uint32    `json:"gen"`
	At  time.Time `json:"at"`
}

// fileKey is a file's identity without its generation.
type fileKey struct{ dev, ino uint64 }

func (k fileKey) String() string {
	return strconv.FormatUint(k.dev, 16) + "-" + strconv.FormatUint(k.ino, 16)
}

// retiredID is the last generation of a file no longer followed.
type retiredID struct {
	gen uint32
	at  time.Time
}

// pend is a chunk handed out and not yet covered by the committed offset.
type pend struct {
	end  int64
	done bool // committed out of order
}

// entry is the checkpoint state of one file generation. Its fields are
// guarded by Tailer.mu, except id, which never changes.
type entry struct {
	id        FileID
	path      string
	committed int64
	pending   []pend // ascending ends, all > committed
	headLen   int    // bytes fingerprinted, at most headSize
	headHash  uint64
	dead      bool // the contents are gone (truncated, replaced): kept only for commits, not written
	attached  bool // a follower reads this file
	loaded    bool // read from the checkpoint file and not yet found again
}

func (e *entry) key() fileKey { return fileKey{e.id.Dev, e.id.Ino} }

// lastEnd is the offset after the last chunk handed out.
func (e *entry) lastEnd() int64 {
	if n := len(e.pending); n > 0 {
		return e.pending[n-1].end
	}
	return e.committed
}

// commit marks the chunk ending at end as committed and advances the
// committed offset over the contiguous prefix of committed chunks. It
// reports whether the offset advanced, and false ok for an unknown chunk.
func (e *entry) commit(end int64) (advanced, ok bool) {
	i, found := slices.BinarySearchFunc(e.pending, end, func(p pend, end int64) int {
		switch {
		case p.end < end:
			return -1
		case p.end > end:
			return 1
		}
		return 0
	})
	if !found {
		return false, end > 0 && end <= e.committed
	}
	e.pending[i].done = true
	k := 0
	for k < len(e.pending) && e.pending[k].done {
		e.committed = e.pending[k].end
		k++
	}
	if k == 0 {
		return false, true
	}
	e.pending = append(e.pending[:0], e.pending[k:]...)
	return true, true
}

// loadCheckpoint creates the state directory and reads the checkpoint file
// into t; a missing file is an empty checkpoint.
func (t *Tailer) loadCheckpoint() error {
	if err := os.MkdirAll(t.cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	t.ckptPath = filepath.Join(t.cfg.StateDir, CheckpointFile)
	data, err := os.ReadFile(t.ckptPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading checkpoint: %w", err)
	}
	entries, retired, shadowed, err := decodeCheckpoint(data)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", t.ckptPath, err)
	}
	for _, id := range shadowed {
		t.log.Warn("checkpoint has an older generation of a file; ignoring it", "file", id, "checkpoint", t.ckptPath)
	}
	t.entries, t.retired = entries, retired
	return nil
}

// decodeCheckpoint parses and checks a checkpoint file. Of several
// generations of one file only the newest is kept; the others are returned
// as shadowed.
func decodeCheckpoint(data []byte) (map[FileID]*entry, map[fileKey]retiredID, []FileID, error) {
	var cj checkpointJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cj); err != nil {
		return nil, nil, nil, jsonError(data, err)
	}
	if dec.More() {
		return nil, nil, nil, errors.New("data after the JSON object")
	}
	if cj.Version != checkpointVersion {
		return nil, nil, nil, fmt.Errorf("version: %d, want %d", cj.Version, checkpointVersion)
	}
	var errs []error
	entries := make(map[FileID]*entry, len(cj.Files))
	newest := make(map[fileKey]FileID)
	var shadowed []FileID
	for _, k := range sortedKeys(cj.Files) {
		e, err := decodeEntry(k, cj.Files[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("files[%q]: %w", k, err))
			continue
		}
		if old, ok := newest[e.key()]; ok {
			if old.Gen > e.id.Gen {
				shadowed = append(shadowed, e.id)
				continue
			}
			shadowed = append(shadowed, old)
			delete(entries, old)
		}
		newest[e.key()] = e.id
		entries[e.id] = e
	}
	retired := make(map[fileKey]retiredID, len(cj.Retired))
	for _, k := range sortedKeys(cj.Retired) {
		id, err := parseFileID(k + "-0")
		if err != nil {
			errs = append(errs, fmt.Errorf("retired[%q]: %w", k, err))
			continue
		}
		r := cj.Retired[k]
		retired[fileKey{id.Dev, id.Ino}] = retiredID{gen: r.Gen, at: r.At}
	}
	if len(errs) > 0 {
		return nil, nil, nil, errors.Join(errs...)
	}
	return entries, retired, shadowed, nil
}

// decodeEntry checks one file of the checkpoint.
func decodeEntry(key string, f fileJSON) (*entry, error) {
	id, err := parseFileID(key)
	if err != nil {
		return nil, err
	}
	var errs []error
	if f.Path == "" {
		errs = append(errs, errors.New("path: missing"))
	}
	if f.Offset < 0 {
		errs = append(errs, errors.New("offset: must be >= 0"))
	}
	e := &entry{id: id, path: f.Path, committed: f.Offset, headLen: f.HeadLen, loaded: true}
	prev := f.Offset
	for _, end := range f.Pending {
		if end <= prev {
			errs = append(errs, fmt.Errorf("pending: %d: ends must increase and exceed offset", end))
			break
		}
		prev = end
		e.pending = append(e.pending, pend{end: end})
	}
	for _, d := range f.Done {
		i := slices.IndexFunc(e.pending, func(p pend) bool { return p.end == d })
		if i < 0 {
			errs = append(errs, fmt.Errorf("done: %d: not a pending end", d))
			continue
		}
		e.pending[i].done = true
	}
	if len(e.pending) > 0 && e.pending[0].done {
		errs = append(errs, errors.New("done: the first pending chunk would be committed"))
	}
	if f.HeadLen < 0 || f.HeadLen > headSize {
		errs = append(errs, fmt.Errorf("head_len: must be in [0, %d]", headSize))
	}
	if f.HeadLen > 0 {
		if e.headHash, err = strconv.ParseUint(f.HeadFNV, 16, 64); err != nil {
			errs = append(errs, fmt.Errorf("head_fnv1a: %q: not a 64-bit hex number", f.HeadFNV))
		}
	}
	return e, errors.Join(errs...)
}

// parseFileID parses the output of FileID.String.
func parseFileID(s string) (FileID, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return FileID{}, fmt.Errorf("file id %q: want dev-ino-gen in hex", s)
	}
	dev, err1 := strconv.ParseUint(parts[0], 16, 64)
	ino, err2 := strconv.ParseUint(parts[1], 16, 64)
	gen, err3 := strconv.ParseUint(parts[2], 16, 32)
	if err := errors.Join(err1, err2, err3); err != nil {
		return FileID{}, fmt.Errorf("file id %q: want dev-ino-gen in hex", s)
	}
	return FileID{Dev: dev, Ino: ino, Gen: uint32(gen)}, nil
}

// jsonError adds the line and column to a JSON decoding error.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return fmt.Errorf("decoding: %w", err)
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// encodeLocked renders the checkpoint. Dead entries are left out, and
// retired ids older than retireTTL are forgotten. The caller holds t.mu.
func (t *Tailer) encodeLocked(now time.Time) ([]byte, error) {
	cj := checkpointJSON{Version: checkpointVersion, Files: make(map[string]fileJSON, len(t.entries))}
	for id, e := range t.entries {
		if e.dead {
			continue
		}
		f := fileJSON{Path: e.path, Offset: e.committed, HeadLen: e.headLen}
		for _, p := range e.pending {
			f.Pending = append(f.Pending, p.end)
			if p.done {
				f.Done = append(f.Done, p.end)
			}
		}
		if e.headLen > 0 {
			f.HeadFNV = strconv.FormatUint(e.headHash, 16)
		}
		cj.Files[id.String()] = f
	}
	for k, r := range t.retired {
		if now.Sub(r.at) > retireTTL {
			delete(t.retired, k)
			continue
		}
		if cj.Retired == nil {
			cj.Retired = make(map[string]retiredJSON)
		}
		cj.Retired[k.String()] = retiredJSON{Gen: r.gen, At: r.at.UTC().Truncate(time.Second)}
	}
	data, err := json.MarshalIndent(cj, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding checkpoint: %w", err)
	}
	return append(data, '\n'), nil
}

// save writes the checkpoint file atomically: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func (t *Tailer) save() error {
	if t.ckptPath == "" {
		t.mu.Lock()
		t.dirty = false
		t.mu.Unlock()
		return nil
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	now := time.Now()
	t.mu.Lock()
	data, err := t.encodeLocked(now)
	t.dirty = false
	t.mu.Unlock()
	if err == nil {
		err = writeAtomic(t.ckptPath, data)
	}
	if err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return fmt.Errorf("writing checkpoint %s: %w", t.ckptPath, err)
	}
	t.lastW.Store(now.UnixNano())
	return nil
}

// writeAtomic replaces path with data so that a crash leaves either the old
// or the new contents.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// retireLocked remembers the generation of a file no longer followed. The
// caller holds t.mu.
func (t *Tailer) retireLocked(id FileID, now time.Time) {
	k := fileKey{id.Dev, id.Ino}
	if r, ok := t.retired[k]; ok && r.gen > id.Gen {
		return
	}
	t.retired[k] = retiredID{gen: id.Gen, at: now}
}

// nextGenLocked is the generation for a new file with key k: one more than
// any generation seen for it, else 0. The caller holds t.mu.
func (t *Tailer) nextGenLocked(k fileKey) uint32 {
	var gen uint32
	seen := false
	if r, ok := t.retired[k]; ok {
		gen, seen = r.gen, true
	}
	for id := range t.entries {
		if (fileKey{id.Dev, id.Ino}) == k && (!seen || id.Gen > gen) {
			gen, seen = id.Gen, true
		}
	}
	if !seen {
		return 0
	}
	return gen + 1
}

// liveEntryLocked returns the entry that is not dead for key k, if any. The
// caller holds t.mu.
func (t *Tailer) liveEntryLocked(k fileKey) *entry {
	for _, e := range t.entries {
		if !e.dead && e.key() == k {
			return e
		}
	}
	return nil
}

// pruneLocked forgets entries that no follower reads and that are fully
// committed, remembering their generation. The caller holds t.mu.
func (t *Tailer) pruneLocked(now time.Time) {
	for id, e := range t.entries {
		if !e.attached && !e.loaded && len(e.pending) == 0 {
			delete(t.entries, id)
			t.retireLocked(id, now)
			t.dirty = true
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
