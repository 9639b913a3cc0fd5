// Package replay runs the rule engine over access log files as fast as the
// machine allows: `vigil replay` and the rule fixtures (`vigil rules test`).
//
// A reader cuts each file into blocks of whole lines; workers parse and match
// blocks in parallel (parsing is the expensive, stateless part); one engine
// goroutine takes the workers' observations back in file order, so the
// detections are exactly those of a sequential run and of the streaming
// detector on the same input.
package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
)

// Options configure a replay run.
type Options struct {
	// Rules to evaluate; required.
	Rules *detect.RuleSet
	// Allow marks keys that are never acted on.
	Allow *detect.Allowlist
	// Format forces a log format; FormatUnknown detects it per file.
	Format accesslog.Format
	// Workers parsing in parallel; default GOMAXPROCS.
	Workers int
	// Lateness tolerated per key (default 5s, as live).
	Lateness time.Duration
	// OnAlert receives every detection in order, from one goroutine.
	OnAlert func(event.Alert)
	// Lines, when set, is advanced as lines are processed, for progress.
	Lines *atomic.Int64
}

// Input is one log to replay.
type Input struct {
	Name string
	R    io.Reader
}

// Result summarises a run.
type Result struct {
	Lines    int64            // lines read
	Events   int64            // lines parsed into events
	Skipped  map[string]int64 // malformed lines by reason
	Formats  map[string]int64 // lines parsed per format
	Alerts   int64
	PerRule  map[string]*RuleSummary
	Duration time.Duration
	Engine   *detect.Stats
}

// RuleSummary counts the detections of one rule.
type RuleSummary struct {
	Detections  int64
	Allowlisted int64
}

const blockSize = 1 << 20

// block is a run of whole lines of one input and, once parsed, what it
// produced. data stays alive until the engine has consumed obs, whose
// samples point into it.
type block struct {
	seq     int64
	data    []byte
	format  accesslog.Format
	obs     []detect.Observation
	lines   int64
	events  int64
	skipped map[string]int64
}

var blockPool = sync.Pool{New: func() any { return &block{data: make([]byte, 0, blockSize)} }}

// Run replays inputs, in order, through one engine.
func Run(ctx context.Context, opts Options, inputs []Input) (*Result, error) {
	if opts.Rules == nil {
		return nil, errors.New("replay: no rules")
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	engine := detect.NewEngine(opts.Rules, detect.Options{Allow: opts.Allow, Lateness: opts.Lateness, BanQuiet: detect.DefaultBanQuiet})
	res := &Result{Skipped: map[string]int64{}, Formats: map[string]int64{}, PerRule: map[string]*RuleSummary{}, Engine: engine.Stats()}
	for _, r := range opts.Rules.Rules() {
		res.PerRule[r.ID] = &RuleSummary{}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := make(chan *block, workers*2)
	done := make(chan *block, workers*2)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(todo)
		readErr = read(ctx, opts.Format, inputs, todo)
	})
	var parsers sync.WaitGroup
	for range workers {
		parsers.Go(func() { parse(opts.Rules, todo, done) })
	}
	go func() { parsers.Wait(); close(done) }()

	// The engine: take blocks back in sequence order.
	pending := map[int64]*block{}
	next := int64(0)
	var alerts []event.Alert
	for b := range done {
		pending[b.seq] = b
		for {
			b, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			for i := range b.obs {
				alerts = engine.Observe(&b.obs[i], alerts[:0])
				for _, a := range alerts {
					res.Alerts++
					s := res.PerRule[a.Rule]
					s.Detections++
					if a.Allowlisted {
						s.Allowlisted++
					}
					if opts.OnAlert != nil {
						opts.OnAlert(a)
					}
				}
			}
			res.Lines += b.lines
			res.Events += b.events
			res.Formats[b.format.String()] += b.events
			for k, v := range b.skipped {
				res.Skipped[k] += v
			}
			if opts.Lines != nil {
				opts.Lines.Add(b.lines)
			}
			b.obs, b.lines, b.events = b.obs[:0], 0, 0
			clear(b.skipped)
			blockPool.Put(b)
		}
	}
	wg.Wait()
	res.Duration = time.Since(start)
	if readErr != nil {
		return res, readErr
	}
	return res, ctx.Err()
}

// read cuts every input into blocks of whole lines.
func read(ctx context.Context, forced accesslog.Format, inputs []Input, out chan<- *block) error {
	var seq int64
	for _, in := range inputs {
		format := forced
		var carry []byte
		first := true
		for {
			b := blockPool.Get().(*block)
			b.data = append(b.data[:0], carry...)
			n, err := io.ReadFull(in.R, b.data[len(b.data):blockSize])
			b.data = b.data[:len(b.data)+n]
			eof := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !eof {
				blockPool.Put(b)
				return fmt.Errorf("reading %s: %w", in.Name, err)
			}
			cut := len(b.data)
			if !eof {
				cut = bytes.LastIndexByte(b.data, '\n') + 1
				if cut == 0 { // one line longer than a block: the parser calls it too long
					cut = len(b.data)
				}
			}
			carry = append(carry[:0], b.data[cut:]...)
			b.data = b.data[:cut]
			if first && format == accesslog.FormatUnknown {
				format = accesslog.DetectFormatData(b.data)
				first = false
			}
			b.format, b.seq = format, seq
			seq++
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			if eof {
				break
			}
		}
	}
	return nil
}

// parse turns blocks into observations.
func parse(rules *detect.RuleSet, in <-chan *block, out chan<- *block) {
	matcher := rules.NewMatcher()
	parsers := map[accesslog.Format]*accesslog.Parser{}
	var ev event.Event
	for b := range in {
		p := parsers[b.format]
		if p == nil {
			p = accesslog.NewParser(b.format)
			parsers[b.format] = p
		}
		if b.skipped == nil {
			b.skipped = map[string]int64{}
		}
		data := b.data
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			b.lines++
			if err := p.Parse(line, &ev); err != nil {
				var le *accesslog.LineError
				if errors.As(err, &le) {
					b.skipped[le.Reason]++
				} else {
					b.skipped["error"]++
				}
				continue
			}
			b.events++
			n := len(b.obs)
			b.obs = matcher.Match(&ev, bytesString(line), b.obs)
			for i := n; i < len(b.obs); i++ {
				if b.obs[i].Label != "" { // may point into the parser's scratch
					b.obs[i].Label = strings.Clone(b.obs[i].Label)
				}
			}
		}
		out <- b
	}
}
