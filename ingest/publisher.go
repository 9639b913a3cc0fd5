package ingest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
)

// ErrStopped is returned for events submitted to a Publisher that stopped
// before JetStream acknowledged them.
var ErrStopped = errors.New("publisher stopped")

// ErrSlow is returned by Publish whose events are not stored
// Publisher.StoreTimeout after they were queued, and while JetStream is
// stalled: a group of events has waited StoreTimeout for it. Every
// request waiting then, queued or sent, and every new one until the group
// is stored, gets it at once (an HTTP 503). The publisher goes on
// sending, so the events of a request that got ErrSlow may still be
// stored.
var ErrSlow = errors.New("events not stored in time")

// ErrNotQueued is wrapped, with the reason (ErrSlow or ctx's error), in the
// error of a Publish that returned before its events were queued: they will
// not be stored. Any other error of Publish means they were queued, and the
// publisher goes on storing them.
var ErrNotQueued = errors.New("events not queued")

// Publisher publishes events from collectors that receive them one request
// at a time (HTTP reports, application events, syslog): it groups the events
// of concurrent requests into NDJSON batches per subject (group commit), so
// many small requests cost few JetStream messages, and tells each request
// when its events are stored. The dedupe id of a batch is a random prefix
// drawn when the publisher is made and a sequence number, so a batch sent
// again after an error is stored once and no two batches share an id, even
// across restarts.
//
// A group is whatever is queued when the publisher is free to start one:
// an idle publisher sends a lone request at once, and a busy one gathers
// the requests that arrive while the group before is being stored. The
// busier it is, the larger the groups, and the fewer JetStream messages
// per event.
type Publisher struct {
	// StoreTimeout is how long a Publish waits for its events to be
	// stored once they are queued, and a group for JetStream before the
	// publisher counts as stalled; past it Publish answers ErrSlow
	// (default 10s). Set it before Run.
	StoreTimeout time.Duration
	// DrainTimeout is how long Run goes on storing what is queued once
	// its context is done (default 10s). Set it before Run.
	DrainTimeout time.Duration

	js         jetstream.JetStream
	partitions int
	in         chan *request
	m          *Metrics
	log        *slog.Logger
	subjects   map[string][]string        // per source, the subject of each partition
	metrics    map[string]*sourceCounters // per source; used by Run only
	idPrefix   string
	seq        atomic.Uint64

	stallMu sync.Mutex                    // serialises stall
	stalled atomic.Pointer[chan struct{}] // closed while a group waits past StoreTimeout
	stopped chan struct{}                 // closed when Run has returned
}

// maxGroupEvents caps a group.
const maxGroupEvents = 4096

type request struct {
	source string
	key    string  // PublishOnce's key: its own batches, ids derived from it
	buf    *[]byte // the encoded events, a line each (from bufs)
	lines  []line
	one    [1]line     // lines of a request of one event
	done   func(error) // Submit's callback, or nil for Publish's
	res    chan error  // Publish's answer
}

// finish tells the request's submitter how it ended.
func (r *request) finish(err error) {
	if r.done != nil {
		r.done(err)
	} else {
		r.res <- err
	}
}

// line is one encoded event, buf[start:end] of its request, and its
// subject.
type line struct {
	subject    string
	start, end int
	id         string // the event's id
}

// NewPublisher returns a publisher spreading events over partitions
// subjects per source by source.ip. Run must be running for Submit to make
// progress.
func NewPublisher(js jetstream.JetStream, partitions int, m *Metrics, logger *slog.Logger) *Publisher {
	partitions = max(partitions, 1)
	subjects := map[string][]string{}
	for _, source := range []string{event.SourceAccess, event.SourceCSP, event.SourceApp} {
		for n := range partitions {
			subjects[source] = append(subjects[source], bus.EventSubject(source, n))
		}
	}
	var nonce [12]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	p := &Publisher{
		StoreTimeout: 10 * time.Second,
		js:           js, partitions: partitions, in: make(chan *request, 1024), m: m, log: logger,
		subjects: subjects, idPrefix: base64.RawURLEncoding.EncodeToString(nonce[:]) + "-",
		metrics: map[string]*sourceCounters{}, stopped: make(chan struct{}),
	}
	flowing := make(chan struct{})
	p.stalled.Store(&flowing)
	return p
}

// subject returns the subject of events of source in partition n.
func (p *Publisher) subject(source string, n int) string {
	if s := p.subjects[source]; s != nil {
		return s[n]
	}
	return bus.EventSubject(source, n)
}

// Submit encodes events (the caller may reuse them when Submit returns) and
// queues them; done is called once, from another goroutine, with nil when
// JetStream has stored them all or with the error that stopped it. Submit
// blocks while the queue is full (backpressure) and returns ctx's error if
// ctx ends first, without calling done.
func (p *Publisher) Submit(ctx context.Context, source string, events []event.Event, done func(error)) error {
	select {
	case <-p.stopped:
		return ErrStopped
	default:
	}
	return p.submit(ctx, p.encode(source, events, done, nil))
}

// Publish submits events and waits until they are stored. It returns
// ctx's error if ctx ends first, and ErrSlow while JetStream is stalled or
// once it has waited StoreTimeout since they were queued (behind a slow
// group, say); either wraps ErrNotQueued if the events were not even
// queued.
func (p *Publisher) Publish(ctx context.Context, source string, events []event.Event) error {
	return p.publish(ctx, "", source, events)
}

func (p *Publisher) publish(ctx context.Context, key, source string, events []event.Event) error {
	select {
	case <-p.stopped:
		return fmt.Errorf("%w: %w", ErrNotQueued, ErrStopped)
	default:
	}
	stalled := *p.stalled.Load()
	r := p.encode(source, events, nil, make(chan error, 1))
	r.key = key
	select {
	case p.in <- r: // queued even while stalled, to be stored when it ends
		p.orphans()
	default:
		select {
		case p.in <- r:
			p.orphans()
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotQueued, ctx.Err())
		case <-stalled:
			return fmt.Errorf("%w: %w", ErrNotQueued, ErrSlow)
		case <-p.stopped:
			return fmt.Errorf("%w: %w", ErrNotQueued, ErrStopped)
		}
	}
	// A request queued behind a group that is stored just in time waits
	// for its own group too: the stall timer, set per group, would let it
	// wait up to twice StoreTimeout.
	wait := time.NewTimer(p.storeTimeout())
	defer wait.Stop()
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-stalled:
		return ErrSlow
	case <-wait.C:
		return ErrSlow
	case <-p.stopped:
		// Queued as Run returned: failed by it, or left in the queue
		// after it emptied it (never stored).
		select {
		case err := <-r.res:
			return err
		default:
			return ErrStopped
		}
	}
}

// PublishOnce is Publish for the events of a request that its client may
// send again after an error or a timeout, identified by key (the same on
// every attempt): they are stored in their own batches, whose dedupe ids
// derive from key, so the stream keeps the first copy and drops those sent
// again within its duplicate window, even from another Vigil process. The
// same events sent under another key, or without one, are stored again.
func (p *Publisher) PublishOnce(ctx context.Context, key, source string, events []event.Event) error {
	return p.publish(ctx, key, source, events)
}

// storeTimeout is StoreTimeout, or its default.
func (p *Publisher) storeTimeout() time.Duration {
	if p.StoreTimeout <= 0 {
		return 10 * time.Second
	}
	return p.StoreTimeout
}

// stall marks JetStream stalled (Publish answers ErrSlow) or, with false,
// flowing again.
func (p *Publisher) stall(on bool) {
	p.stallMu.Lock()
	defer p.stallMu.Unlock()
	select {
	case <-*p.stalled.Load(): // stalled now
		if !on {
			ch := make(chan struct{})
			p.stalled.Store(&ch)
			p.m.Stalled.Set(0)
		}
	default:
		if on {
			// The gauge first: a request woken by the close may be
			// answered, and the gauge read, at once.
			p.m.Stalled.Set(1)
			close(*p.stalled.Load())
		}
	}
}

// Stalled reports whether a group of events has waited past StoreTimeout
// for JetStream and not been stored yet: Publish answers ErrSlow.
func (p *Publisher) Stalled() bool {
	select {
	case <-*p.stalled.Load():
		return true
	default:
		return false
	}
}

// encode makes the request of events.
func (p *Publisher) encode(source string, events []event.Event, done func(error), res chan error) *request {
	r := &request{source: source, done: done, res: res, buf: bufs.Get().(*[]byte)}
	r.lines = r.one[:]
	if len(events) != 1 {
		r.lines = make([]line, len(events))
	}
	buf := (*r.buf)[:0]
	var ipBuf [64]byte
	for i := range events {
		start := len(buf)
		buf = append(events[i].AppendJSON(buf), '\n')
		r.lines[i] = line{subject: p.subject(source, bus.Partition(events[i].SourceIP.AppendTo(ipBuf[:0]), p.partitions)), start: start, end: len(buf), id: events[i].ID}
	}
	*r.buf = buf
	return r
}

func (p *Publisher) submit(ctx context.Context, r *request) error {
	select {
	case p.in <- r:
		p.orphans()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stopped:
		return ErrStopped
	}
}

// orphans fails, once Run has returned, what was queued after it emptied
// the queue (a Submit or Publish that raced its stop), so that every
// request is finished. Run is the only other reader of the queue, and each
// request is received once.
func (p *Publisher) orphans() {
	select {
	case <-p.stopped:
	default:
		return
	}
	for {
		select {
		case r := <-p.in:
			r.finish(ErrStopped)
		default:
			return
		}
	}
}

// Run publishes queued events until ctx is done, and then what is still
// queued: it returns once the queue is empty, or DrainTimeout after ctx
// ended if JetStream has not stored it all by then. What it could not
// store is failed with ErrStopped, and the number of events lost is
// logged. Stop the collectors feeding it before ctx ends, so that they
// can finish the requests under way; Publish and Submit fail with
// ErrStopped once Run has returned. One group is in flight at a time: what
// is queued while it is being stored makes the next group.
func (p *Publisher) Run(ctx context.Context) error {
	drain := p.DrainTimeout
	if drain <= 0 {
		drain = 10 * time.Second
	}
	// Groups are stored under work, which outlives ctx by the drain.
	work, stopWork := outlive(ctx, drain)
	defer stopWork()
	lost := 0
	defer func() {
		close(p.stopped)
		for {
			select {
			case r := <-p.in:
				lost += len(r.lines)
				r.finish(ErrStopped)
			default:
				if lost > 0 {
					p.log.Warn("stopped before JetStream confirmed storing every event received; those were answered with an error (HTTP 503) or, from syslog, may be lost", "events", lost, "drain_timeout", drain)
				}
				return
			}
		}
	}()
	timeout := p.storeTimeout()
	// While a group waits for JetStream, the stall timer is set to its
	// deadline. A call that comes late, after its group was stored and the
	// next one set the timer again, finds the new deadline ahead and does
	// nothing.
	var (
		mu       sync.Mutex
		waiting  bool // a group is waiting to be stored
		stalled  bool // the timer marked the publisher stalled
		deadline time.Time
	)
	slow := time.AfterFunc(time.Hour, func() {
		mu.Lock()
		defer mu.Unlock()
		if waiting && !stalled && !time.Now().Before(deadline) {
			stalled = true
			p.log.Warn("JetStream has not stored a group of events in time; answering 503 until it does", "waited", timeout)
			p.stall(true)
		}
	})
	slow.Stop()
	defer slow.Stop()
	var group []*request
	var st groupState
	for {
		clear(group) // no request outlives its group here
		group = group[:0]
		if work.Err() != nil {
			return nil // drained for DrainTimeout: the rest is lost
		}
		select {
		case <-ctx.Done():
			select { // draining: what is queued still goes
			case r := <-p.in:
				group = append(group, r)
			default:
				return nil
			}
		case r := <-p.in:
			group = append(group, r)
		}
	gather:
		for n := len(group[0].lines); n < maxGroupEvents; {
			select {
			case r := <-p.in:
				group = append(group, r)
				n += len(r.lines)
			default:
				break gather
			}
		}
		mu.Lock()
		waiting, deadline = true, time.Now().Add(timeout)
		mu.Unlock()
		slow.Reset(timeout)
		err := p.publishGroup(work, group, &st)
		slow.Stop()
		mu.Lock()
		waiting = false
		if stalled && err == nil {
			stalled = false
			p.log.Info("JetStream stores events again")
			p.stall(false)
		}
		mu.Unlock()
		for _, r := range group {
			if err != nil {
				lost += len(r.lines)
			}
			r.finish(err)
		}
	}
}

// groupState is publishGroup's scratch space, reused from group to group.
type groupState struct {
	batches []*bus.Batch // in order of first appearance; the open one last per subject
	ids     []string     // per batch, its dedupe id if a keyed request's, else ""
	dups    []bool       // per batch, whether JetStream had it already
	counts  []sourceCount
	msgs    []*nats.Msg
	acks    []jetstream.PubAckFuture
}

// sourceCount is the number of events of one source in a group.
type sourceCount struct {
	source string
	n      int
}

// openBatch returns the batch of subject still taking events, among
// batches[from:] keyed (a keyed request's) or not, nil if none.
func (st *groupState) openBatch(subject string, from int, keyed bool) *bus.Batch {
	for i := len(st.batches) - 1; i >= from; i-- {
		if st.batches[i].Subject == subject && (st.ids[i] != "") == keyed {
			if len(st.batches[i].Buf) >= maxBatchBytes {
				return nil
			}
			return st.batches[i]
		}
	}
	return nil
}

// addBatch starts a batch for subject beginning with the event of id; a
// keyed request's gets the dedupe id key:<subject>.<part>:<first event id>,
// part counting its request's batches of subject. A request sent again
// whose events encode to other lengths (an arrival time in them) may split
// elsewhere: the first event's id makes a part that changed a new message,
// stored rather than dropped as the old part's duplicate.
func (st *groupState) addBatch(subject string, from int, key, first string) *bus.Batch {
	b := &bus.Batch{Subject: subject, Buf: batchBuf()}
	id := ""
	if key != "" {
		part := 0
		for i := from; i < len(st.batches); i++ {
			if st.batches[i].Subject == subject {
				part++
			}
		}
		id = key + ":" + subject + "." + strconv.Itoa(part) + ":" + first
	}
	st.batches, st.ids = append(st.batches, b), append(st.ids, id)
	return b
}

// publishGroup publishes the events of a group of requests as batches per
// subject (split past maxBatchBytes), all at once, and waits until every
// batch is stored; a batch JetStream did not acknowledge is sent again
// until it is, or until ctx ends (ErrStopped).
func (p *Publisher) publishGroup(ctx context.Context, group []*request, st *groupState) error {
	clear(st.batches)
	clear(st.ids)
	st.batches, st.ids, st.counts = st.batches[:0], st.ids[:0], st.counts[:0]
	for _, r := range group {
		// A keyed request's events go in batches of their own, the same
		// on every attempt; the others share theirs.
		from := 0
		if r.key != "" {
			from = len(st.batches)
		}
		for _, l := range r.lines {
			b := st.openBatch(l.subject, from, r.key != "")
			if b == nil {
				b = st.addBatch(l.subject, from, r.key, l.id)
			}
			b.Buf = append(b.Buf, (*r.buf)[l.start:l.end]...)
			b.N++
		}
		st.count(r.source, len(r.lines))
		putBuf(r.buf)
		r.buf = nil
	}
	st.msgs = slices.Grow(st.msgs[:0], len(st.batches))[:len(st.batches)]
	st.acks = slices.Grow(st.acks[:0], len(st.batches))[:len(st.batches)]
	st.dups = slices.Grow(st.dups[:0], len(st.batches))[:len(st.batches)]
	clear(st.dups)
	msgs, acks := st.msgs, st.acks
	defer func() { clear(msgs); clear(acks) }()
	for i, b := range st.batches {
		id := st.ids[i]
		if id == "" {
			id = p.idPrefix + strconv.FormatUint(p.seq.Add(1), 36)
		}
		msgs[i] = b.Take(id)
		acks[i], _ = p.js.PublishMsgAsync(msgs[i]) // nil on error: sent again below
	}
	for i, f := range acks {
		if f != nil {
			select {
			case ack := <-f.Ok():
				if ack.Duplicate {
					st.duplicate(i, msgs[i])
				}
				continue
			case err := <-f.Err():
				p.log.Debug("event batch not acknowledged, sending it again", "err", err, "subject", msgs[i].Subject)
			case <-ctx.Done():
				return ErrStopped
			}
		}
		// Sent again after an error: a Duplicate answer may mean the
		// first send was stored, so it counts as published.
		if err := p.store(ctx, msgs[i]); err != nil {
			return err
		}
	}
	for _, m := range msgs {
		putBatchBuf(m.Data) // NATS copied it when sending; stored now
	}
	for _, c := range st.counts {
		p.counters(c.source).published.Add(float64(c.n))
	}
	for i, b := range st.batches {
		c := p.counters(sourceOf(b.Subject))
		if st.dups[i] {
			c.duplicates.Inc()
		} else {
			c.batches.Inc()
		}
	}
	return nil
}

// duplicate notes that JetStream already had batch i (m): its events are
// not counted as published again.
func (st *groupState) duplicate(i int, m *nats.Msg) {
	st.dups[i] = true
	n, _ := strconv.Atoi(m.Header.Get(bus.HeaderCount))
	st.count(sourceOf(m.Subject), -n)
}

// count adds n events of source.
func (st *groupState) count(source string, n int) {
	for i := range st.counts {
		if st.counts[i].source == source {
			st.counts[i].n += n
			return
		}
	}
	st.counts = append(st.counts, sourceCount{source, n})
}

// sourceCounters are the metric children of one source.
type sourceCounters struct {
	published, batches, duplicates prometheus.Counter
}

// counters returns the metric children of source, made once.
func (p *Publisher) counters(source string) *sourceCounters {
	if c := p.metrics[source]; c != nil {
		return c
	}
	c := &sourceCounters{
		published:  p.m.Published.WithLabelValues(source),
		batches:    p.m.Batches.WithLabelValues(source),
		duplicates: p.m.Duplicates.WithLabelValues(source),
	}
	p.metrics[source] = c
	return c
}

// store publishes one batch until JetStream has it.
func (p *Publisher) store(ctx context.Context, m *nats.Msg) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := p.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ErrStopped
		}
		p.m.PublishRetries.WithLabelValues(sourceOf(m.Subject)).Inc()
		p.log.Warn("publishing events, will retry", "err", err, "subject", m.Subject)
		select {
		case <-ctx.Done():
			return ErrStopped
		case <-time.After(backoff):
		}
	}
}

// batchBufs recycles the bodies of batches once they are stored.
var batchBufs sync.Pool

// batchBuf returns an empty buffer for a batch: a recycled one, which
// kept the capacity its batches grew it to, or a new one.
func batchBuf() []byte {
	if b, ok := batchBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 16<<10)
}

// putBatchBuf recycles the body of a stored batch.
func putBatchBuf(b []byte) {
	if cap(b) <= maxBatchBytes+64<<10 {
		batchBufs.Put(&b)
	}
}

// bufs recycles the buffers requests encode their events into; they are
// free once their group has copied them into its batches.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// putBuf recycles b unless it grew past what a usual request needs.
func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufs.Put(b)
	}
}

// sourceOf returns the source token of an events subject.
func sourceOf(subject string) string {
	const prefix = bus.SubjectEvents + "."
	s := subject[len(prefix):]
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i]
		}
	}
	return s
}
