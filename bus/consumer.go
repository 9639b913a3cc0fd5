package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Durable is a durable pull consumer that outlives its own deletion and
// its stream's re-creation: when the consumer is gone (an operator's `nats
// consumer rm`, a NATS server that came back without its store) Run
// creates it again and goes on.
//
// Delivery stays at least once. A consumer re-created on the same stream
// starts after its last known acknowledgement floor (read when it was
// opened and every few seconds since), so nothing unacknowledged is
// skipped; what was acknowledged after the last reading comes again, and
// handlers must tolerate that (Vigil's do: the detector skips sequences it
// has processed, bans and documents are idempotent per id). On a stream
// created anew, whose sequence numbers start again, it starts at the
// beginning.
//
// A Durable is used by one goroutine: Open, then Run; Opened and the
// handler run on that goroutine.
type Durable struct {
	JS     jetstream.JetStream
	Stream string
	// Config is the consumer's configuration; Config.Durable names it. An
	// existing consumer keeps its delivery policy and start position and
	// takes the rest of Config.
	Config jetstream.ConsumerConfig
	// Batch is how many messages a pull asks for.
	Batch int
	// Group, when set, names the priority group the pulls belong to. With
	// Config.PriorityPolicy pinned (and Config.PriorityGroups holding
	// Group), one process at a time receives the messages and the others
	// wait as standbys; one of them is pinned when the active process has
	// not pulled for Config.PinnedTTL, or at once when it stops cleanly
	// (Run unpins on its way out).
	Group string
	// Pinned, when set with Group, is called before the first message of
	// each pinning of this process (the first message at all, or the first
	// under a new pin): this process has just become the active one, and
	// cons is the consumer. The pin lapses if the handler and Pinned
	// together keep Run from pulling for Config.PinnedTTL. When Pinned
	// fails, the message is given back (redelivered after a second) and
	// Pinned is called again before the next one.
	Pinned func(ctx context.Context, cons jetstream.Consumer) error
	// Drain, when set, lets the messages already pulled reach the handler
	// at shutdown (which must then give them back), instead of dropping
	// them to redelivery after the ack wait.
	Drain bool
	Log   *slog.Logger
	// Opened, when set, is called each time the consumer is opened:
	// first with its info, later after each re-creation; newStream tells
	// that the stream was created anew since the last opening.
	Opened func(ctx context.Context, info *jetstream.ConsumerInfo, newStream bool)

	pin     atomic.Pointer[string] // the pin id of the last message received
	holds   atomic.Bool            // the server named this process's pin at the last look
	other   atomic.Bool            // ... or another process's
	created time.Time              // the stream's creation time when last opened
	floor   atomic.Uint64          // the consumer's last known ack floor (stream sequence)
	opened  bool
}

// pinIDHeader carries, on each message of a pinned consumer, the id of the
// pin it was delivered under.
const pinIDHeader = "Nats-Pin-Id"

// floorRefresh is how often Run reads the consumer's ack floor.
const floorRefresh = 5 * time.Second

// Open looks the consumer up, creating it when missing or updating it to
// Config when present, and calls Opened.
func (d *Durable) Open(ctx context.Context) (jetstream.Consumer, error) {
	s, err := d.JS.Stream(ctx, d.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", d.Stream, err)
	}
	created := s.CachedInfo().Created
	newStream := d.opened && !created.Equal(d.created)
	if newStream {
		d.floor.Store(0)
	}
	cfg := d.Config
	cons, err := s.Consumer(ctx, cfg.Durable)
	switch {
	case err == nil:
		old := cons.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
		cons, err = s.UpdateConsumer(ctx, cfg)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if floor := d.floor.Load(); floor > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, floor+1, nil
		}
		if d.opened {
			d.Log.Warn("consumer was missing; creating it again", "stream", d.Stream, "consumer", cfg.Durable, "new_stream", newStream, "from_seq", cfg.OptStartSeq)
		}
		cons, err = d.create(ctx, s, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, d.Stream, err)
	}
	d.created = created
	d.opened = true
	info := cons.CachedInfo()
	d.raiseFloor(info.AckFloor.Stream)
	if d.Opened != nil {
		d.Opened(ctx, info, newStream)
	}
	return cons, nil
}

// create creates the consumer. A durable created again moments after it
// was deleted can come back with the old one's delivery state, read from
// files the server had not yet removed (seen with nats-server 2.15): such
// a consumer is deleted and created again.
func (d *Durable) create(ctx context.Context, s jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for try := 1; ; try++ {
		cons, err := s.CreateConsumer(ctx, cfg)
		if err != nil || cons.CachedInfo().Delivered.Consumer == 0 || try == 5 {
			return cons, err
		}
		d.Log.Warn("consumer created with a deleted one's state; creating it again", "stream", d.Stream, "consumer", cfg.Durable, "delivered", cons.CachedInfo().Delivered.Stream)
		if err := s.DeleteConsumer(ctx, cfg.Durable); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
}

// raiseFloor records an ack floor read from the server; it never goes down.
func (d *Durable) raiseFloor(seq uint64) {
	for {
		cur := d.floor.Load()
		if seq <= cur || d.floor.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Run hands every message to handle, one at a time, until ctx is done; then
// it returns nil. It opens the consumer first unless cons is given (from
// Open), and opens it again, with back-off, whenever it disappears.
func (d *Durable) Run(ctx context.Context, cons jetstream.Consumer, handle func(jetstream.Msg)) error {
	for backoff := 500 * time.Millisecond; ctx.Err() == nil; {
		if cons == nil {
			var err error
			if cons, err = d.Open(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				d.Log.Warn("opening consumer, will retry", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
		}
		backoff = 500 * time.Millisecond
		if err := d.pull(ctx, cons, handle); err != nil {
			d.Log.Warn("consumer is gone; opening it again", "stream", d.Stream, "consumer", d.Config.Durable, "err", err)
		}
		cons = nil
	}
	return nil
}

// pull runs one iterator over cons. It returns nil when ctx ends and the
// reason when the consumer is gone.
func (d *Durable) pull(ctx context.Context, cons jetstream.Consumer, handle func(jetstream.Msg)) error {
	// Short heartbeats: a consumer lost with its server's store is
	// noticed within seconds.
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(d.Batch), jetstream.PullExpiry(10 * time.Second), jetstream.PullHeartbeat(3 * time.Second)}
	if d.Group != "" {
		opts = append(opts, jetstream.PullPriorityGroup(d.Group))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return err
	}
	defer it.Stop()
	if d.Group != "" {
		defer d.unpin(cons)
		defer d.holds.Store(false)
	}
	stop := context.AfterFunc(ctx, func() {
		if d.Drain {
			it.Drain()
		} else {
			it.Stop()
		}
	})
	defer stop()

	// Keep the ack floor current, for a re-creation.
	rctx, cancel := context.WithCancel(ctx)
	refreshed := make(chan struct{})
	defer func() { cancel(); <-refreshed }()
	go func() {
		defer close(refreshed)
		t := time.NewTicker(floorRefresh)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			ictx, icancel := context.WithTimeout(rctx, floorRefresh)
			if info, err := cons.Info(ictx); err == nil {
				d.raiseFloor(info.AckFloor.Stream)
				d.checkPin(info)
			}
			icancel()
		}
	}()

	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			if gone := d.gone(ctx, cons, err); gone != nil {
				return gone
			}
			d.Log.Warn("reading messages", "stream", d.Stream, "consumer", d.Config.Durable, "err", err)
			continue
		}
		if d.Group != "" {
			if id := msg.Headers().Get(pinIDHeader); id != "" && id != d.pinID() {
				d.pin.Store(&id)
				d.holds.Store(true)
				d.Log.Info("pinned: this process is the active consumer now", "stream", d.Stream, "consumer", d.Config.Durable)
				if d.Pinned != nil {
					if err := d.Pinned(ctx, cons); err != nil {
						// Handling the message now would step over what the
						// take-over did not do: give it back and try again.
						d.Log.Warn("taking over as the active consumer; will try again with the next message", "consumer", d.Config.Durable, "err", err)
						d.pin.Store(nil)
						_ = msg.NakWithDelay(time.Second)
						continue
					}
				}
			}
		}
		handle(msg)
	}
}

// pinID is the pin id of the last message received, "" before any.
func (d *Durable) pinID() string {
	if p := d.pin.Load(); p != nil {
		return *p
	}
	return ""
}

// Holds reports whether the server named this process as the pinned one
// when it was last asked (every few seconds): with Group set, whether this
// process is the active consumer rather than a standby.
func (d *Durable) Holds() bool { return d.holds.Load() }

// Standby reports whether the server named another process as the pinned
// one when it was last asked. Neither Holds nor Standby: no process is
// pinned yet (the server pins one when the next message comes).
func (d *Durable) Standby() bool { return d.other.Load() }

// checkPin updates Holds from the consumer's info, and says so in the log
// when this process lost the pin to another.
func (d *Durable) checkPin(info *jetstream.ConsumerInfo) {
	if d.Group == "" {
		return
	}
	mine := d.pinID()
	holds, other := false, false
	for _, g := range info.PriorityGroups {
		if g.Group == d.Group {
			holds = mine != "" && g.PinnedClientID == mine
			other = g.PinnedClientID != "" && !holds
		}
	}
	d.other.Store(other)
	if d.holds.Swap(holds) && !holds {
		if other {
			d.Log.Info("standby: another process holds the consumer now", "stream", d.Stream, "consumer", d.Config.Durable)
		} else {
			// A server that restarted pins again at the next message.
			d.Log.Info("not pinned for now: the server pins a process again when the next message comes", "stream", d.Stream, "consumer", d.Config.Durable)
		}
	}
}

// unpin releases this process's pin on the consumer, if it holds it, so a
// standby is pinned at once instead of after the pinned TTL. (The server
// unpins whoever holds the pin: should the pin move between the check and
// the call, the new holder loses it and is pinned again, or another
// standby is.)
func (d *Durable) unpin(cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group == d.Group && g.PinnedClientID != "" && g.PinnedClientID == d.pinID() {
			s, err := d.JS.Stream(ctx, d.Stream)
			if err == nil {
				err = s.UnpinConsumer(ctx, d.Config.Durable, d.Group)
			}
			if err != nil {
				d.Log.Debug("unpinning consumer", "consumer", d.Config.Durable, "err", err)
			}
		}
	}
}

// gone tells whether the error err of an iterator means that the consumer
// or its stream no longer exists; iterators report that only as missed
// heartbeats, so it asks the server.
func (d *Durable) gone(ctx context.Context, cons jetstream.Consumer, err error) error {
	if errors.Is(err, jetstream.ErrConsumerDeleted) {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, ierr := cons.Info(ictx); errors.Is(ierr, jetstream.ErrConsumerNotFound) || errors.Is(ierr, jetstream.ErrStreamNotFound) {
		return ierr
	}
	return nil
}
