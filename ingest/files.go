package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
	"github.com/vigil-soc/vigil/ingest/tail"
)

// FileConfig configures the access log file collector.
type FileConfig struct {
	// Tail configures following the files (globs, checkpoints, rotation).
	Tail tail.Config
	// Format forces a log format; FormatUnknown detects it per file.
	Format accesslog.Format
	// Partitions is the number of subjects events are spread over by
	// source.ip (see bus.Partition). Default 1.
	Partitions int
}

// FileCollector follows access log files and publishes their events.
//
// Exactly-once to the stream: each chunk of lines becomes at most one batch
// per partition (split into parts past 256 KiB) whose Nats-Msg-Id is
// <file identity>:<start>-<end>:<p>.<part>. The chunk is committed to the tail checkpoint only when JetStream acknowledged
// every batch of it; after a crash the tailer re-emits uncommitted chunks
// with identical boundaries, so the ids repeat and the stream's duplicate
// window drops what it already had.
type FileCollector struct {
	cfg    FileConfig
	tailer *tail.Tailer
	js     jetstream.JetStream
	m      *Metrics
	log    *slog.Logger
}

// NewFileCollector validates cfg and loads the checkpoints; it does no
// other I/O.
func NewFileCollector(cfg FileConfig, js jetstream.JetStream, m *Metrics, logger *slog.Logger) (*FileCollector, error) {
	if cfg.Partitions < 1 {
		cfg.Partitions = 1
	}
	cfg.Tail.Logger = logger
	t, err := tail.New(cfg.Tail)
	if err != nil {
		return nil, err
	}
	return &FileCollector{cfg: cfg, tailer: t, js: js, m: m, log: logger}, nil
}

// Tailer returns the tailer, for its statistics.
func (c *FileCollector) Tailer() *tail.Tailer { return c.tailer }

// pending is a chunk whose batches are being published.
type pending struct {
	file    tail.FileID
	end     int64
	msgs    []*nats.Msg
	futures []jetstream.PubAckFuture
	events  []int
}

// Run follows the files until ctx is done. It returns nil on cancellation.
func (c *FileCollector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan tail.Chunk, 4)
	acks := make(chan *pending, 64)
	var wg sync.WaitGroup
	var tailErr, ackErr error
	wg.Go(func() {
		tailErr = c.tailer.Run(ctx, chunks)
		cancel()
	})
	wg.Go(func() {
		ackErr = c.confirm(ctx, acks)
		cancel()
	})
	p := newChunkParser(c.cfg.Format, c.cfg.Partitions)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ch := <-chunks:
			pd, err := c.publish(ctx, p, ch)
			if err != nil {
				break loop
			}
			select {
			case acks <- pd:
			case <-ctx.Done():
				break loop
			}
		}
	}
	cancel()
	close(acks)
	wg.Wait()
	if err := c.tailer.Flush(); err != nil {
		c.log.Warn("saving tail checkpoint", "err", err)
	}
	return errors.Join(tailErr, ackErr)
}

// publish parses a chunk and starts publishing its batches.
func (c *FileCollector) publish(ctx context.Context, p *chunkParser, ch tail.Chunk) (*pending, error) {
	p.parse(ch, c.m)
	pd := &pending{file: ch.File, end: ch.End}
	for i := range p.used {
		b := &p.batches[i]
		if b.N == 0 {
			continue
		}
		msg := b.Msg(ch.File.String() + ":" + strconv.FormatInt(ch.Start, 10) + "-" + strconv.FormatInt(ch.End, 10) + ":" + p.ids[i])
		f, err := c.publishAsync(ctx, msg)
		if err != nil {
			return nil, err
		}
		pd.msgs = append(pd.msgs, msg)
		pd.futures = append(pd.futures, f)
		pd.events = append(pd.events, b.N)
	}
	return pd, nil
}

// publishAsync starts a publish, waiting out a full async window or a
// disconnected bus rather than dropping anything.
func (c *FileCollector) publishAsync(ctx context.Context, msg *nats.Msg) (jetstream.PubAckFuture, error) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		f, err := c.js.PublishMsgAsync(msg)
		if err == nil {
			return f, nil
		}
		c.m.PublishRetries.WithLabelValues(event.SourceAccess).Inc()
		c.log.Warn("publishing events, will retry", "err", err, "subject", msg.Subject)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// confirm waits for the acknowledgements of each chunk, in order, re-sends
// what failed (same id) and commits the chunk to the checkpoint.
func (c *FileCollector) confirm(ctx context.Context, acks <-chan *pending) error {
	for pd := range acks {
		for i, f := range pd.futures {
			var ack *jetstream.PubAck
			select {
			case ack = <-f.Ok():
			case err := <-f.Err():
				c.log.Warn("event batch not acknowledged, re-sending", "err", err, "id", pd.msgs[i].Header.Get(nats.MsgIdHdr))
				var rerr error
				if ack, rerr = c.resend(ctx, pd.msgs[i]); rerr != nil {
					return nil // shutting down: the chunk stays uncommitted and is re-sent on restart
				}
			case <-ctx.Done():
				return nil
			}
			if ack.Duplicate {
				c.m.Duplicates.WithLabelValues(event.SourceAccess).Inc()
			} else {
				c.m.Published.WithLabelValues(event.SourceAccess).Add(float64(pd.events[i]))
				c.m.Batches.WithLabelValues(event.SourceAccess).Inc()
			}
		}
		if err := c.tailer.Commit(pd.file, pd.end); err != nil {
			return fmt.Errorf("committing tail checkpoint: %w", err)
		}
	}
	return nil
}

// resend publishes msg synchronously until JetStream acknowledges it.
func (c *FileCollector) resend(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		c.m.PublishRetries.WithLabelValues(event.SourceAccess).Inc()
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m := nats.NewMsg(msg.Subject)
		m.Data, m.Header = msg.Data, msg.Header
		ack, err := c.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return ack, nil
		}
		c.log.Warn("re-sending event batch, will retry", "err", err, "subject", msg.Subject)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// maxBatchBytes caps one message's body, well under NATS' default 1 MiB
// max_payload: a partition's share of a chunk larger than this is split into
// parts, deterministically, so a re-sent chunk gets the same ids.
const maxBatchBytes = 256 << 10

// chunkParser turns chunks of lines into batches: one per partition, split
// into parts past maxBatchBytes. It keeps a parser per format and the
// detected format per file.
type chunkParser struct {
	forced     accesslog.Format
	formats    map[tail.FileID]accesslog.Format
	parsers    map[accesslog.Format]*accesslog.Parser
	batches    []bus.Batch // the first used of them hold this chunk's batches
	ids        []string    // "<partition>.<part>" of each used batch
	used       int
	current    []int // index in batches of each partition's open batch, -1 none
	parts      []int // parts opened per partition
	partitions int
	ev         event.Event
	id         []byte
	ip         []byte
	events     map[accesslog.Format]int
	skipped    map[string]int
}

func newChunkParser(forced accesslog.Format, partitions int) *chunkParser {
	return &chunkParser{
		forced:     forced,
		formats:    map[tail.FileID]accesslog.Format{},
		parsers:    map[accesslog.Format]*accesslog.Parser{},
		current:    make([]int, partitions),
		parts:      make([]int, partitions),
		partitions: partitions,
		events:     map[accesslog.Format]int{},
		skipped:    map[string]int{},
	}
}

// batchFor returns the open batch of partition part, opening a new part when
// it is full.
func (p *chunkParser) batchFor(part int) *bus.Batch {
	if i := p.current[part]; i >= 0 && len(p.batches[i].Buf) < maxBatchBytes {
		return &p.batches[i]
	}
	if p.used == len(p.batches) {
		p.batches = append(p.batches, bus.Batch{})
		p.ids = append(p.ids, "")
	}
	i := p.used
	p.used++
	b := &p.batches[i]
	b.Reset()
	b.Subject = bus.EventSubject(event.SourceAccess, part)
	p.ids[i] = strconv.Itoa(part) + "." + strconv.Itoa(p.parts[part])
	p.parts[part]++
	p.current[part] = i
	return b
}

// parse fills the batches from ch and counts into m.
func (p *chunkParser) parse(ch tail.Chunk, m *Metrics) {
	p.used = 0
	for i := range p.current {
		p.current[i], p.parts[i] = -1, 0
	}
	format := p.forced
	if format == accesslog.FormatUnknown {
		var ok bool
		if format, ok = p.formats[ch.File]; !ok {
			format = accesslog.DetectFormatData(ch.Data)
			if len(p.formats) > 1024 {
				clear(p.formats)
			}
			p.formats[ch.File] = format
		}
	}
	parser := p.parsers[format]
	if parser == nil {
		parser = accesslog.NewParser(format)
		p.parsers[format] = parser
	}
	fileID := ch.File.String()
	data, off := ch.Data, ch.Start
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		lineOff := off
		off += int64(len(line)) + 1
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := parser.Parse(line, &p.ev); err != nil {
			reason := "error"
			var le *accesslog.LineError
			if errors.As(err, &le) {
				reason = le.Reason
			}
			p.skipped[reason]++
			continue
		}
		p.id = append(append(p.id[:0], fileID...), ':')
		p.id = strconv.AppendInt(p.id, lineOff, 10)
		p.ev.ID = string(p.id)
		p.ip = p.ev.SourceIP.AppendTo(p.ip[:0])
		p.batchFor(bus.Partition(p.ip, p.partitions)).Add(&p.ev)
		p.events[format]++
	}
	for f, n := range p.events {
		m.Events.WithLabelValues(event.SourceAccess, f.String()).Add(float64(n))
	}
	for r, n := range p.skipped {
		m.Skipped.WithLabelValues(event.SourceAccess, r).Add(float64(n))
	}
	clear(p.events)
	clear(p.skipped)
}
