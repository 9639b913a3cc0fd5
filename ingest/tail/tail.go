// Package tail follows log files named by globs, survives their rotation and
// truncation, and checkpoints its position so that a restart neither skips
// nor re-sends lines.
//
// # Chunks and message ids
//
// A Tailer cuts each file into chunks of complete lines and sends them on the
// channel given to Run. The publisher derives a chunk's Nats-Msg-Id from
// (Chunk.File, Chunk.Start, Chunk.End), and JetStream drops a message whose
// id it has seen within the stream's duplicate window. A restart that loses
// nothing and duplicates nothing therefore needs every chunk that may have
// been published to be emitted again with exactly the same boundaries.
//
// # Write-ahead checkpoint
//
// Before a chunk with new boundaries is handed out, its end is written to
// <StateDir>/tail-checkpoints.json (one write covers all chunks cut in one
// read pass). The consumer calls Commit once a chunk is safely published. The
// checkpoint keeps, per file, the committed offset (the end of the longest
// committed prefix) and the ends of the chunks handed out after it. On
// restart those chunks are emitted again, with the same boundaries and
// Replay set, except the ones already committed out of order; then reading
// continues after the last of them.
//
// Commits are written lazily: at most every 200ms, with the next boundary
// write, and when Run returns (call Flush for commits made after that). A
// crash can lose the latest commits; the chunks they covered are then
// emitted again with identical boundaries, so their ids repeat and JetStream
// drops them, provided the restart comes within the stream's duplicate
// window. After a longer outage those few chunks are published twice.
//
// # Rotation, truncation, deletion
//
// Files are identified by device and inode (FileID), not by name. When a file
// is renamed away (logrotate's default; nginx reopens its log on USR1), the
// Tailer keeps reading the open descriptor and closes it only once the file
// has been out of the globs, idle and fully read for two poll intervals; the
// new file at the path is read from offset 0. A deleted file is read to the
// end of its open descriptor, then dropped. A file found smaller than the
// read offset was truncated in place (logrotate's copytruncate): its FileID
// gets a new generation and it is read again from 0. copytruncate itself
// loses the lines written between the copy and the truncation; no reader can
// recover them. The first KiB of each file is also fingerprinted, so a file
// whose contents were replaced (or whose inode was reused for a new file
// while Vigil was down) is detected even when it is not smaller.
//
// Only one Tailer may use a StateDir at a time.
package tail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultPollInterval = 250 * time.Millisecond
	DefaultMaxChunk     = 256 << 10
	DefaultMaxInFlight  = 16
	DefaultMaxLine      = 1 << 20
)

// CheckpointFile is the name of the checkpoint file inside Config.StateDir.
const CheckpointFile = "tail-checkpoints.json"

// commitWriteInterval is the least time between two checkpoint writes that
// only record commits.
const commitWriteInterval = 200 * time.Millisecond

// ErrUnknownChunk is returned (wrapped) by Commit for a chunk the Tailer did
// not hand out.
var ErrUnknownChunk = errors.New("unknown chunk")

// FileID identifies a file across renames: device and inode, plus a
// generation bumped each time the file is found truncated (copytruncate) or
// its inode is found reused, so offsets of the new contents never collide
// with ids of the old ones.
type FileID struct {
	Dev, Ino uint64
	Gen      uint32
}

// String returns the id as three hex numbers, "fd01-1a2b3c-0", which is safe
// in a NATS header and a file name.
func (id FileID) String() string {
	b := make([]byte, 0, 40)
	b = strconv.AppendUint(b, id.Dev, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, id.Ino, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(id.Gen), 16)
	return string(b)
}

// Chunk is a run of complete lines of one file. Data holds bytes
// [Start, End) of the file and ends in '\n', with two exceptions: a line
// longer than Config.MaxLine keeps only its first MaxLine bytes followed by
// '\n', and the last line of a file that was rotated away or deleted and
// will not grow again is emitted as a complete line without its '\n'. Data
// is owned by the receiver.
type Chunk struct {
	File       FileID
	Path       string // the file's path when the chunk was read
	Start, End int64
	Data       []byte
	// Replay is true for a chunk emitted again after a restart because it
	// may have been published before it; its id is the one it had then.
	Replay bool
}

// Config configures a Tailer.
type Config struct {
	// Globs are the files to follow, as paths or filepath.Match patterns.
	// They are expanded again every PollInterval, so files that appear later
	// are picked up.
	Globs []string
	// StateDir is the directory of the checkpoint file, created if missing.
	// Empty means no checkpoints: every run starts afresh (replay-like use).
	StateDir string
	// PollInterval is how often files are checked for growth, rotation,
	// truncation and new files. Default 250ms.
	PollInterval time.Duration
	// MaxChunk is the most bytes in a chunk, default 256 KiB. A chunk is cut
	// at the last '\n' within it; a single line longer than MaxChunk (up to
	// MaxLine) makes a chunk of its own.
	MaxChunk int
	// MaxInFlight is how many chunks of one file may be handed out and not
	// yet committed before reading that file pauses (backpressure). Reading
	// resumes when half of them are committed. Default 16.
	MaxInFlight int
	// StartAtEnd makes a file seen for the first time at start-up, with no
	// checkpoint, be read from its end (from after its last complete line).
	// By default it is read from the beginning. Files that appear after
	// start-up are always read from the beginning.
	StartAtEnd bool
	// MaxLine is the longest line in bytes, without its '\n', default 1 MiB.
	// A longer line is cut to MaxLine bytes; the rest is skipped and counted
	// in Stats.LinesCut.
	MaxLine int
	// Logger receives rotation, truncation and error reports. Default: none.
	Logger *slog.Logger
}

// Stats are counters since New, read atomically.
type Stats struct {
	FilesFollowed  int64  // files open now
	BytesRead      uint64 // bytes read, replays included
	Rotations      uint64 // files renamed away from their path or to another matched path
	Truncations    uint64 // files found truncated or replaced, each a new generation
	LinesCut       uint64 // lines longer than MaxLine, cut
	ChunksReplayed uint64 // chunks emitted again after a restart
}

// Tailer follows files and cuts them into chunks. Create one with New, call
// Run once, and call Commit for each chunk received once it is safely
// published. Commit, Stats and Flush are safe to call from any goroutine.
type Tailer struct {
	cfg      Config
	log      *slog.Logger
	ckptPath string // "" when checkpoints are off

	wake    chan struct{} // signalled by Commit; capacity 1
	ran     atomic.Bool
	writeMu sync.Mutex   // serialises checkpoint writes
	lastW   atomic.Int64 // unix nanos of the last checkpoint write

	mu      sync.Mutex
	entries map[FileID]*entry     // guarded by mu
	retired map[fileKey]retiredID // guarded by mu
	dirty   bool                  // guarded by mu: state not yet written

	// followers is owned by the goroutine in Run.
	followers map[fileKey]*follower
	openErrs  map[string]bool // paths whose open failed, to warn once

	files       atomic.Int64
	bytesRead   atomic.Uint64
	rotations   atomic.Uint64
	truncations atomic.Uint64
	linesCut    atomic.Uint64
	replayed    atomic.Uint64
}

// New validates cfg, fills in defaults, creates the state directory and
// loads the checkpoint file. Errors name every bad field, or the checkpoint
// file and what is wrong with it.
func New(cfg Config) (*Tailer, error) {
	var errs []error
	cfg.Globs = append([]string(nil), cfg.Globs...) // made absolute below
	if len(cfg.Globs) == 0 {
		errs = append(errs, errors.New("globs: at least one is required"))
	}
	for i, g := range cfg.Globs {
		if g == "" {
			errs = append(errs, fmt.Errorf("globs[%d]: empty", i))
			continue
		}
		if _, err := filepath.Match(g, ""); err != nil {
			errs = append(errs, fmt.Errorf("globs[%d]: %q: %w", i, g, err))
			continue
		}
		abs, err := filepath.Abs(g)
		if err != nil {
			errs = append(errs, fmt.Errorf("globs[%d]: %w", i, err))
			continue
		}
		cfg.Globs[i] = abs
	}
	if cfg.PollInterval < 0 {
		errs = append(errs, errors.New("poll_interval: must be >= 0"))
	}
	if cfg.MaxChunk < 0 {
		errs = append(errs, errors.New("max_chunk: must be >= 0"))
	}
	if cfg.MaxInFlight < 0 {
		errs = append(errs, errors.New("max_in_flight: must be >= 0"))
	}
	if cfg.MaxLine < 0 {
		errs = append(errs, errors.New("max_line: must be >= 0"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("tail: invalid config: %w", errors.Join(errs...))
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxChunk == 0 {
		cfg.MaxChunk = DefaultMaxChunk
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxLine == 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	t := &Tailer{
		cfg:       cfg,
		log:       cfg.Logger,
		wake:      make(chan struct{}, 1),
		entries:   make(map[FileID]*entry),
		retired:   make(map[fileKey]retiredID),
		followers: make(map[fileKey]*follower),
		openErrs:  make(map[string]bool),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if cfg.StateDir != "" {
		if err := t.loadCheckpoint(); err != nil {
			return nil, fmt.Errorf("tail: %w", err)
		}
	}
	return t, nil
}

// Stats returns the counters.
func (t *Tailer) Stats() Stats {
	return Stats{
		FilesFollowed:  t.files.Load(),
		BytesRead:      t.bytesRead.Load(),
		Rotations:      t.rotations.Load(),
		Truncations:    t.truncations.Load(),
		LinesCut:       t.linesCut.Load(),
		ChunksReplayed: t.replayed.Load(),
	}
}

// Commit records that the chunk of file id ending at end is safely
// published. Chunks may be committed in any order; the committed offset
// advances over the contiguous prefix of committed chunks. Committing a
// chunk twice is harmless. Commit returns an error wrapping ErrUnknownChunk
// for a chunk that was not handed out.
func (t *Tailer) Commit(id FileID, end int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[id]
	if e == nil {
		return fmt.Errorf("committing %v at %d: %w", id, end, ErrUnknownChunk)
	}
	advanced, ok := e.commit(end)
	if !ok {
		return fmt.Errorf("committing %v at %d: %w", id, end, ErrUnknownChunk)
	}
	if advanced {
		t.dirty = true
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Flush writes the checkpoint if commits are not yet written. Run does this
// when it returns; call Flush after the consumer has committed the chunks it
// was still publishing then.
func (t *Tailer) Flush() error {
	t.mu.Lock()
	dirty := t.dirty
	t.mu.Unlock()
	if !dirty {
		return nil
	}
	return t.save()
}

// Run follows the files until ctx is done, sending chunks on out, and
// returns nil then. It returns an error only when the checkpoint cannot be
// written: handing out chunks whose boundaries are not recorded would break
// the no-duplicates promise. The caller owns out; Run never closes it. Run
// may be called once per Tailer.
func (t *Tailer) Run(ctx context.Context, out chan<- Chunk) error {
	if !t.ran.CompareAndSwap(false, true) {
		return errors.New("tail: Run called twice")
	}
	l := &loop{t: t, ctx: ctx, out: out, flush: time.NewTimer(time.Hour)}
	l.flush.Stop()
	defer l.flush.Stop()
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	defer t.closeAll()

	discover, startup := true, true
	for {
		now := time.Now()
		if discover {
			t.discover(now, startup)
			startup = false
		}
		if err := l.send(t.readAll(now)); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		l.armFlush()
		var err error
		if discover, err = l.wait(tick.C); err != nil {
			break
		}
	}
	if err := t.Flush(); err != nil {
		t.log.Error("writing checkpoint on stop", "err", err)
	}
	return nil
}

// loop holds the timers of one Run.
type loop struct {
	t     *Tailer
	ctx   context.Context
	out   chan<- Chunk
	flush *time.Timer // fires when a commit-only write is due
	armed bool        // flush is running
	woken bool        // a commit arrived while sending and a file is paused
}

// armFlush starts the flush timer if commits are unwritten.
func (l *loop) armFlush() {
	l.t.mu.Lock()
	dirty := l.t.dirty
	l.t.mu.Unlock()
	if !dirty || l.armed {
		return
	}
	d := commitWriteInterval - time.Since(time.Unix(0, l.t.lastW.Load()))
	l.flush.Reset(max(d, 0))
	l.armed = true
}

// onFlush writes the checkpoint when the flush timer fires. A failed
// commit-only write is logged and retried: it only delays commits.
func (l *loop) onFlush() {
	l.armed = false
	if err := l.t.Flush(); err != nil {
		l.t.log.Error("writing checkpoint", "err", err)
	}
	l.armFlush()
}

// wait blocks until the next poll (discover true), a commit that may end a
// pause (discover false), or ctx is done (error).
func (l *loop) wait(tick <-chan time.Time) (discover bool, err error) {
	if l.woken {
		l.woken = false
		return false, nil
	}
	for {
		select {
		case <-l.ctx.Done():
			return false, l.ctx.Err()
		case <-tick:
			return true, nil
		case <-l.t.wake:
			l.armFlush()
			if l.t.anyPaused() {
				return false, nil
			}
		case <-l.flush.C:
			l.onFlush()
		}
	}
}

// anyPaused reports whether reading a file waits for commits. Commits wake
// Run only then: a live tail reads at its poll interval, not after every
// commit, so chunks stay large and checkpoint writes few.
func (t *Tailer) anyPaused() bool {
	for _, f := range t.followers {
		if f.paused {
			return true
		}
	}
	return false
}

// send writes the checkpoint if batch has chunks with new boundaries, then
// hands the chunks out, writing commits meanwhile if out is slow.
func (l *loop) send(batch []Chunk) error {
	for _, c := range batch {
		if !c.Replay {
			if err := l.t.save(); err != nil {
				return err
			}
			break
		}
	}
	for _, c := range batch {
		for sent := false; !sent; {
			select {
			case <-l.ctx.Done():
				return l.ctx.Err()
			case l.out <- c:
				sent = true
			case <-l.t.wake:
				l.woken = l.woken || l.t.anyPaused()
				l.armFlush()
			case <-l.flush.C:
				l.onFlush()
			}
		}
		if c.Replay {
			l.t.replayed.Add(1)
		}
	}
	return nil
}
