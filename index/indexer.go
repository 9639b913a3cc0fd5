package index

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/bus"
)

// Durable consumer names, one per stream.
const (
	ConsumerEvents = "vigil-index-events"
	ConsumerAlerts = "vigil-index-alerts"
	ConsumerAudit  = "vigil-index-audit"
)

// ackWait is how long JetStream waits for the ack of a delivered message
// before it delivers it again: well above a bulk request's time in the
// queue and its retries.
const ackWait = 2 * time.Minute

// shutdownGrace is how long Run, once its context is done, lets bulk
// requests in flight finish so their messages are acknowledged; past it
// they are abandoned and JetStream redelivers the messages.
const shutdownGrace = 10 * time.Second

// consumers are the streams the indexer reads.
var consumers = []struct{ stream, durable string }{
	{bus.StreamEvents, ConsumerEvents},
	{bus.StreamAlerts, ConsumerAlerts},
	{bus.StreamAudit, ConsumerAudit},
}

// Indexer consumes VIGIL_EVENTS, VIGIL_ALERTS and VIGIL_AUDIT and indexes
// every document into Elasticsearch, at least once.
//
// A message is acknowledged only after Elasticsearch accepted every document
// in it (an events batch holds many) or, for documents it refused for good,
// after they are stored in VIGIL_DEADLETTER. Retryable refusals (429, 5xx,
// a missing write target, no connection) are retried in place a few times
// (Config.Retries), then the message is handed back to JetStream with a
// growing delay (Config.RetryDelay … RetryMaxDelay) and retried without
// end: an Elasticsearch outage leaves a backlog in JetStream that drains
// when it returns. Document ids come from event.id, the alert id and the
// audit id (a hash of the document when there is none), so a document sent
// twice is stored once: op_type create in data stream mode (a 409 "already
// exists" counts as success), index in index mode. The one gap: a document
// redelivered after its write alias rolled over is stored again in the new
// index.
//
// Why not esutil.BulkIndexer: when a whole bulk request fails (connection
// refused, a 5xx or 429 answer, an unreadable answer), BulkIndexer v8.19
// calls only the indexer-wide OnError and drops the items without calling
// their OnFailure (esutil/bulk_indexer.go, flushBuffer), so the messages
// they came from could never be nak'd; and it has no per-item retry. The
// Indexer builds bulk requests itself on the same client instead, with
// whole messages per request, so every document's fate is known when the
// answer is read.
type Indexer struct {
	cluster *Cluster
	cfg     Config
	js      jetstream.JetStream
	log     *slog.Logger
	m       *metrics

	mu      sync.Mutex
	lastErr error // of the last Setup or bulk request; guarded by mu
}

// New returns an Indexer for cfg that reads from js, with its metrics on
// reg (nil: not registered). It does no I/O: Run sets up Elasticsearch and
// the consumers.
func New(cfg Config, js jetstream.JetStream, reg prometheus.Registerer, logger *slog.Logger) (*Indexer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := NewCluster(cfg, logger)
	if err != nil {
		return nil, err
	}
	return &Indexer{cluster: c, cfg: c.cfg, js: js, log: logger, m: newMetrics(reg)}, nil
}

// Cluster returns the indexer's cluster, for Rollover and Mode.
func (ix *Indexer) Cluster() *Cluster { return ix.cluster }

// Setup sets up Elasticsearch (Cluster.Setup) and the dead-letter stream.
func (ix *Indexer) Setup(ctx context.Context) error {
	if err := ix.cluster.Setup(ctx); err != nil {
		return err
	}
	return EnsureDeadLetter(ctx, ix.js, ix.cfg.DeadLetterMaxAge, ix.cfg.DeadLetterReplicas)
}

// Err returns the error of the last attempt to set up Elasticsearch or to
// send a bulk request, or nil when it succeeded: for a readiness check.
func (ix *Indexer) Err() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.lastErr
}

func (ix *Indexer) setErr(err error) {
	ix.mu.Lock()
	ix.lastErr = err
	ix.mu.Unlock()
}

// Run sets up Elasticsearch, retrying until it answers, then consumes the
// three streams and indexes until ctx is done. It returns nil then, after
// up to 10 s to finish the bulk requests in flight, and an error only when
// the consumers cannot be created. It is a role of the run group.
func (ix *Indexer) Run(ctx context.Context) error {
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := ix.Setup(ctx)
		ix.setErr(err)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		ix.log.Error("setting up Elasticsearch, will retry; the backlog waits in JetStream", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}

	durables := make([]*bus.Durable, len(consumers))
	opened := make([]jetstream.Consumer, len(consumers))
	for i, c := range consumers {
		durables[i] = &bus.Durable{
			JS:     ix.js,
			Stream: c.stream,
			Config: jetstream.ConsumerConfig{
				Durable:       c.durable,
				Description:   "Vigil indexer: " + c.stream + " to Elasticsearch",
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       ackWait,
				MaxDeliver:    -1,
				MaxAckPending: ix.cfg.MaxInFlight,
				DeliverPolicy: jetstream.DeliverAllPolicy,
			},
			Batch: ix.cfg.MaxInFlight,
			Drain: true,
			Log:   ix.log,
		}
		cons, err := durables[i].Open(ctx)
		if err != nil {
			return fmt.Errorf("creating consumer %s on %s: %w", c.durable, c.stream, err)
		}
		opened[i] = cons
	}

	// Consumers → units → batcher → bulks → workers. Each channel is
	// closed by its one sender once the senders before it are done.
	units := make(chan *unit)
	bulks := make(chan []*unit)
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var workers sync.WaitGroup
	for range ix.cfg.Workers {
		workers.Go(func() {
			for b := range bulks {
				ix.process(workCtx, b)
			}
		})
	}
	batched := make(chan struct{})
	go func() {
		defer close(batched)
		ix.batch(units, bulks)
	}()
	var readers sync.WaitGroup
	for i, d := range durables {
		readers.Go(func() {
			_ = d.Run(ctx, opened[i], func(msg jetstream.Msg) { ix.consume(ctx, d.Stream, msg, units) })
		})
	}
	if ix.cluster.Mode() == ModeIndex && ix.cfg.RolloverCheck > 0 {
		readers.Go(func() { ix.rolloverLoop(ctx) })
	}

	<-ctx.Done()
	grace := time.AfterFunc(shutdownGrace, cancelWork)
	defer grace.Stop()
	readers.Wait()
	close(units)
	<-batched
	workers.Wait()
	return nil
}

// consume turns a message of stream into a unit for the batcher. After
// ctx is done (the consumer drains what the client still holds) it gives
// the message back, so another indexer gets it at once.
func (ix *Indexer) consume(ctx context.Context, stream string, msg jetstream.Msg, units chan<- *unit) {
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	u := newUnit(stream, msg, ix.cfg.Namespace)
	select {
	case units <- u:
	case <-ctx.Done():
		_ = msg.Nak()
	}
}

// batch groups units into bulks of about FlushBytes, sending a bulk when it
// is full or FlushInterval after its first unit. A unit is never split
// across bulks. It closes out when in is closed and the last bulk is sent.
func (ix *Indexer) batch(in <-chan *unit, out chan<- []*unit) {
	defer close(out)
	var cur []*unit
	size := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() {
		timer.Stop()
		if len(cur) > 0 {
			out <- cur
		}
		cur, size = nil, 0
	}
	for {
		select {
		case u, ok := <-in:
			if !ok {
				send()
				return
			}
			if len(cur) == 0 {
				timer.Reset(ix.cfg.FlushInterval)
			}
			cur = append(cur, u)
			size += u.size
			if size >= ix.cfg.FlushBytes {
				send()
			}
		case <-timer.C:
			send()
		}
	}
}

// rolloverLoop rolls the write aliases over every RolloverCheck.
func (ix *Indexer) rolloverLoop(ctx context.Context) {
	t := time.NewTicker(ix.cfg.RolloverCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := ix.cluster.Rollover(ctx); err != nil && ctx.Err() == nil {
				ix.log.Warn("rolling over", "err", err)
			}
		}
	}
}
