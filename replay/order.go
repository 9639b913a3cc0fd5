package replay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
)

// peekSize is how much of an input OldestFirst looks at for a first
// timestamp.
const peekSize = 64 << 10

// OldestFirst returns inputs ordered by the time of their first parsable
// line, so that `vigil replay access.log*` (which a shell expands to
// access.log, access.log.1, access.log.2.gz: newest first) reads the oldest
// file first, as the engine's event-time windows need. Inputs with no
// parsable line in their first 64 KiB go first, in the order given; ties
// keep the order given. Each reader is wrapped to keep what was peeked.
// Standard input ("-") is not peeked (it may be a live pipe) and goes
// first. forced is the format to parse with (FormatUnknown: detect it).
func OldestFirst(inputs []Input, forced accesslog.Format) ([]Input, error) {
	type timed struct {
		in    Input
		first time.Time
	}
	ts := make([]timed, len(inputs))
	for i, in := range inputs {
		if in.Name == "-" {
			ts[i] = timed{in: in}
			continue
		}
		br := bufio.NewReaderSize(in.R, peekSize)
		head, err := br.Peek(peekSize)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading %s: %w", in.Name, err)
		}
		ts[i] = timed{in: Input{Name: in.Name, R: br}, first: firstTime(head, err == io.EOF, forced)}
	}
	slices.SortStableFunc(ts, func(a, b timed) int { return a.first.Compare(b.first) })
	out := make([]Input, len(ts))
	for i := range ts {
		out[i] = ts[i].in
	}
	return out, nil
}

// firstTime is the time of the first whole line of data that parses; all
// tells that data is the whole input, so its last line is whole too.
func firstTime(data []byte, all bool, forced accesslog.Format) time.Time {
	if forced == accesslog.FormatUnknown {
		forced = accesslog.DetectFormatData(data)
	}
	p := accesslog.NewParser(forced)
	var ev event.Event
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else if all {
			data = nil
		} else {
			break // a cut line would not parse the way it was written
		}
		if p.Parse(line, &ev) == nil && !ev.Time.IsZero() {
			return ev.Time
		}
	}
	return time.Time{}
}
