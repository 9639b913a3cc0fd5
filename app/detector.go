package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
)

// Durable consumer names.
const (
	consumerDetect  = "vigil-detect"
	consumerRespond = "vigil-respond"
)

// detector consumes VIGIL_EVENTS, runs the engine and publishes alerts. A
// batch is acknowledged only after every alert it caused is in
// VIGIL_ALERTS.
type detector struct {
	js      jetstream.JetStream
	engine  *detect.Engine
	matcher *detect.Matcher
	log     *slog.Logger
	// lateness widens the warm-up span.
	lateness time.Duration
	lag      prometheus.Histogram
	bad      prometheus.Counter
	alerts   prometheus.Counter
	// events counts the events read from the bus.
	events atomic.Int64
	// unbans counts the unbans applied to the engine as they came.
	unbans atomic.Int64
	// lock serialises the engine with explain requests of the admin API.
	lock *engineLock
	// notify, when set, pages on alerts (Sentry); it must not block.
	notify func(*event.Alert)

	obsBuf   []detect.Observation // process's scratch
	alertBuf []event.Alert
	// live is set while the engine's windows follow the stream: after a
	// take-over, until the stream is created anew.
	live          bool
	streamCreated time.Time // VIGIL_EVENTS' creation time at the last take-over
	firstSeq      uint64    // VIGIL_EVENTS' first sequence then
	warmedUp      bool      // windows rebuilt at start-up, for the first take-over's count
	takeovers     *prometheus.CounterVec
	durable       atomic.Pointer[bus.Durable]
}

// active reports whether this detector holds the consumer (is not a
// standby), as the server said at the last look.
func (d *detector) active() bool {
	dur := d.durable.Load()
	return dur != nil && dur.Holds()
}

// state is what /readyz says of the detector: "active", "standby" (another
// process holds the consumer) or, before the server has pinned anyone
// (it does when events arrive), "waiting".
func (d *detector) state() string {
	dur := d.durable.Load()
	switch {
	case dur != nil && dur.Holds():
		return "active"
	case dur != nil && dur.Standby():
		return "standby"
	}
	return "waiting: no detector is pinned yet; the server pins one when events arrive"
}

func newDetector(js jetstream.JetStream, engine *detect.Engine, lateness time.Duration, reg prometheus.Registerer, logger *slog.Logger) *detector {
	d := &detector{
		js:       js,
		engine:   engine,
		matcher:  engine.RuleSet().NewMatcher(),
		log:      logger,
		lateness: lateness,
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_detect_lag_seconds",
			Help:    "Processing lag: wall clock minus event time when the detector sees an event.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_detect_events_undecodable_total", Help: "Events on the bus that could not be decoded.",
		}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_detect_alerts_published_total", Help: "Alerts published to VIGIL_ALERTS.",
		}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_detect_takeovers_total", Help: "Times this detector became the active one (pinned), by whether it rebuilt its windows from the stream (start-up, from another detector) or went on with its own (it got the pin back).",
		}, []string{"rebuilt"}),
	}
	events := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_detect_events_total", Help: "Events read from the bus by the detector.",
	}, func() float64 { return float64(d.events.Load()) })
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_detect_active", Help: "1 while this detector holds the events consumer (the active one), 0 while it is a standby; read from NATS every 5 s.",
	}, func() float64 {
		if d.active() {
			return 1
		}
		return 0
	})
	unbans := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_detect_unbans_total", Help: "Operators' unbans the detector applied as they came: the addresses' cooldowns ended, so their next offence counts.",
	}, func() float64 { return float64(d.unbans.Load()) })
	reg.MustRegister(d.lag, d.bad, d.alerts, d.takeovers, events, active, unbans)
	d.lock = &engineLock{engine: engine}
	return d
}

// The detector's consumer pins one process at a time: a second detector
// (a standby) receives nothing until the active one stops cleanly and
// unpins, or goes detectPinnedTTL without pulling (its pulls expire and are
// made again every 10 s). A detector killed and restarted at once waits out
// the TTL too: the server cannot tell it from a live one. A take-over whose
// warm-up outlasts the TTL loses the pin, and the process that gets it next
// takes over in turn (without starting again, if it is the same one).
const (
	detectGroup     = "detect"
	detectPinnedTTL = 30 * time.Second
)

// detectConsumerConfig is the detector's durable consumer.
func detectConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        consumerDetect,
		Description:    "Vigil detector",
		FilterSubject:  bus.SubjectEvents + ".>",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        2 * time.Minute,
		MaxAckPending:  256,
		PriorityGroups: []string{detectGroup},
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      detectPinnedTTL,
	}
}

// run consumes until ctx is done.
func (d *detector) run(ctx context.Context) error {
	defer d.followUnbans(ctx)()
	var lastSeq uint64 // highest stream sequence processed: redeliveries at or below it are skipped
	dur := &bus.Durable{
		JS:     d.js,
		Stream: bus.StreamEvents,
		Config: detectConsumerConfig(),
		Batch:  64,
		Group:  detectGroup,
		Log:    d.log,
		Opened: func(ctx context.Context, info *jetstream.ConsumerInfo, newStream bool) {
			if newStream {
				lastSeq = 0 // sequence numbers start again
				d.live = false
			}
		},
		Pinned: func(ctx context.Context, cons jetstream.Consumer) error {
			seq, err := d.takeOver(ctx, cons, lastSeq)
			lastSeq = seq
			return err
		},
	}
	d.durable.Store(dur)
	cons, err := dur.Open(ctx)
	if err != nil {
		return err
	}
	if seq, _, rebuilt, err := d.rebuild(ctx, cons, lastSeq); err != nil {
		d.log.Warn("warming the detector up at start-up; it will when it is pinned", "err", err)
	} else {
		lastSeq, d.warmedUp = seq, rebuilt
	}
	return dur.Run(ctx, cons, func(msg jetstream.Msg) {
		if md, err := msg.Metadata(); err == nil {
			if md.Sequence.Stream <= lastSeq {
				// A redelivery of a batch already counted (its ack was
				// lost or came late, or the take-over evaluated it):
				// counting it again would double every event in it.
				_ = msg.Ack()
				return
			}
			lastSeq = md.Sequence.Stream
		}
		if err := d.process(ctx, msg); err != nil {
			return // shutting down; the batch is redelivered
		}
		if err := msg.Ack(); err != nil {
			d.log.Warn("acknowledging events", "err", err)
		}
	})
}

// process evaluates the events of one batch and publishes the alerts they
// cause. It fails only when ctx ends before the alerts are stored.
func (d *detector) process(ctx context.Context, msg jetstream.Msg) error {
	now := time.Now()
	d.lock.mu.Lock()
	bad := d.evaluate(msg.Data(), func(ev *event.Event) {
		d.events.Add(1)
		d.lag.Observe(now.Sub(ev.Time).Seconds())
	})
	d.lock.mu.Unlock()
	for _, err := range bad {
		d.bad.Inc()
		d.log.Warn("undecodable event on the bus", "subject", msg.Subject(), "err", err)
	}
	for i := range d.alertBuf {
		if err := d.publish(ctx, msg, &d.alertBuf[i]); err != nil {
			return err
		}
	}
	return nil
}

// evaluate runs the engine over the events of one batch, calling each (when
// set) for every event first, and leaves the alerts they caused in
// d.alertBuf. It returns the events that could not be decoded. The caller
// holds d.lock.mu.
func (d *detector) evaluate(data []byte, each func(*event.Event)) []error {
	d.alertBuf = d.alertBuf[:0]
	return bus.DecodeBatch(data, func(ev *event.Event) {
		if each != nil {
			each(ev)
		}
		d.obsBuf = d.matcher.Match(ev, detect.Sample(ev), d.obsBuf[:0])
		for i := range d.obsBuf {
			d.alertBuf = d.engine.Observe(&d.obsBuf[i], d.alertBuf)
		}
	})
}

// takeOver prepares this process's engine when the consumer has just been
// pinned to it: at start-up, when a standby takes over from a detector that
// stopped, or when this process gets the pin back. lastSeq is the highest
// stream sequence this process has evaluated.
//
// When the engine's windows are not current (a first pinning, or another
// process has acknowledged batches since this one last evaluated any) it
// forgets them and rebuilds them from the last window before the consumer's
// ack floor. Then it evaluates at once, read straight from the stream, the
// batches delivered but not acknowledged: those a stopped detector held,
// which the server would hand out again only after the ack wait (too late
// to count in most windows), and those already delivered here. It returns
// the highest stream sequence evaluated: later deliveries at or below it
// are acknowledged and skipped.
func (d *detector) takeOver(ctx context.Context, cons jetstream.Consumer, lastSeq uint64) (uint64, error) {
	lastSeq, delivered, rebuilt, err := d.rebuild(ctx, cons, lastSeq)
	if err != nil {
		return lastSeq, err
	}
	d.takeovers.WithLabelValues(strconv.FormatBool(rebuilt || d.warmedUp)).Inc()
	d.warmedUp = false
	if delivered > lastSeq {
		from := max(lastSeq+1, d.firstSeq) // older ones were removed by the limits
		done, err := d.catchUp(ctx, from, delivered)
		lastSeq = max(lastSeq, done)
		if err != nil {
			return lastSeq, fmt.Errorf("evaluating the batches delivered but not acknowledged (%d..%d): %w", from, delivered, err)
		}
	}
	return lastSeq, nil
}

// rebuild is the first half of takeOver: it rebuilds the engine's windows
// if they are not current, and returns the highest stream sequence they
// hold and the highest delivered to a consumer. The detector also calls it
// at start-up, before it is pinned (which the server does only when a
// batch arrives), so that the first scan after a restart meets warm
// windows rather than waiting for their rebuild; take-over then finds them
// current, unless another process acknowledged batches meanwhile.
func (d *detector) rebuild(ctx context.Context, cons jetstream.Consumer, lastSeq uint64) (last, delivered uint64, rebuilt bool, err error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return lastSeq, 0, false, fmt.Errorf("reading the consumer: %w", err)
	}
	stream, err := d.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return lastSeq, 0, false, fmt.Errorf("reading the stream: %w", err)
	}
	st := stream.CachedInfo()
	d.firstSeq = st.State.FirstSeq
	if d.live && (!st.Created.Equal(d.streamCreated) || st.State.LastSeq < lastSeq) {
		// The stream was created anew (a NATS that lost its store) and
		// its sequence numbers started again, unnoticed by Open.
		d.live, lastSeq = false, 0
	}
	d.streamCreated = st.Created
	floor := info.AckFloor.Stream
	delivered = min(info.Delivered.Stream, st.State.LastSeq)
	rebuilt = !d.live || floor > lastSeq
	if rebuilt {
		d.lock.mu.Lock()
		d.engine.Reset()
		d.lock.mu.Unlock()
		lastSeq = floor
		since := d.restoreCooldowns(ctx, st.State.FirstTime)
		if floor > 0 {
			d.warmUp(ctx, floor)
		}
		// Last: the warm-up may fire again what an unban forgave.
		d.lock.mu.Lock()
		if err := d.restoreUnbans(ctx, since); err != nil {
			d.log.Warn("unbans not read back: an address unbanned early may stay in its rules' cooldowns", "err", err)
		}
		d.lock.mu.Unlock()
		d.live = true
	}
	return lastSeq, delivered, rebuilt, nil
}

// catchUp evaluates the batches with stream sequences from..to, read
// straight from the stream. It returns the highest sequence it evaluated
// (from-1 when none), and an error when it stopped before to.
func (d *detector) catchUp(ctx context.Context, from, to uint64) (uint64, error) {
	done := from - 1
	batches := 0
	err := d.readStream(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	}, to, func(msg jetstream.Msg, seq uint64) error {
		if err := d.process(ctx, msg); err != nil {
			return err
		}
		done = seq
		batches++
		return nil
	})
	if err != nil {
		return done, err
	}
	d.log.Info("detector evaluated the batches delivered but not acknowledged", "from", from, "to", to, "batches", batches)
	return to, nil
}

// readStream hands fn the batches of VIGIL_EVENTS from cfg's start position
// through stream sequence last, in order, reading ahead in large pulls. It
// stops at the first error, from fn or from reading; a batch missing from
// the stream for 5 s (removed by the limits) ends it with an error.
func (d *detector) readStream(ctx context.Context, cfg jetstream.OrderedConsumerConfig, last uint64, fn func(msg jetstream.Msg, seq uint64) error) error {
	return readMessages(ctx, d.js, bus.StreamEvents, bus.SubjectEvents+".>", cfg, last, fn)
}

// readMessages hands fn the messages of stream name on subjects from cfg's start
// position through stream sequence last, as (*detector).readStream does;
// none if nothing is stored from that position on.
func readMessages(ctx context.Context, js jetstream.JetStream, name, subjects string, cfg jetstream.OrderedConsumerConfig, last uint64, fn func(msg jetstream.Msg, seq uint64) error) error {
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	cfg.FilterSubjects = []string{subjects}
	oc, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	if info := oc.CachedInfo(); info != nil && info.NumPending == 0 {
		return nil
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		if md.Sequence.Stream > last {
			return nil
		}
		if err := fn(msg, md.Sequence.Stream); err != nil {
			return err
		}
		if md.Sequence.Stream == last {
			return nil
		}
	}
}

// publish puts one alert on VIGIL_ALERTS, retrying until it is stored.
func (d *detector) publish(ctx context.Context, batch jetstream.Msg, a *event.Alert) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if a.Allowlisted {
		level = slog.LevelInfo
	}
	d.log.Log(ctx, level, "detection", "rule", a.Rule, "key", a.Key, "count", a.Count, "at", a.At, "allowlisted", a.Allowlisted, "alert", a.ID)
	keepAlive := func() { _ = batch.InProgress() }
	if err := store(ctx, d.js, bus.AlertSubject(a.Rule), a.ID, data, d.log, "publishing alert", keepAlive); err != nil {
		return err
	}
	d.alerts.Inc()
	if d.notify != nil {
		d.notify(a)
	}
	return nil
}

// restoreCooldowns puts back the cooldowns that the alerts stored in
// VIGIL_ALERTS over the rules' longest cooldown left (Engine.Fired): warm-up
// rebuilds windows from the longest window of events only, and a key that
// fired before that must not fire again, alert twice and count as a new
// offence, because Vigil restarted or another detector took over. Alerts
// that do not decode, or whose rule or key kind changed, are passed over.
//
// Cooldowns run in event time, and a detector coming back evaluates the
// backlog as old as the stream's oldest event (firstEvent), so the alerts
// read go back the longest cooldown from there. It returns that start.
func (d *detector) restoreCooldowns(ctx context.Context, firstEvent time.Time) (start time.Time) {
	from := time.Now()
	if !firstEvent.IsZero() && firstEvent.Before(from) {
		from = firstEvent
	}
	start = from.Add(-d.engine.RuleSet().MaxCooldown() - d.lateness)
	stream, err := d.js.Stream(ctx, bus.StreamAlerts)
	if err != nil {
		d.log.Warn("cooldowns not restored: reading the alerts stream", "err", err)
		return start
	}
	last := stream.CachedInfo().State.LastSeq
	if last == 0 {
		return start
	}
	var a struct {
		Rule     string    `json:"rule"`
		KeyField string    `json:"key_field"`
		Key      string    `json:"key"`
		At       time.Time `json:"at"`
	}
	alerts, restored := 0, 0
	d.lock.mu.Lock()
	defer d.lock.mu.Unlock()
	err = readMessages(ctx, d.js, bus.StreamAlerts, bus.SubjectAlerts+".>", jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
	}, last, func(msg jetstream.Msg, _ uint64) error {
		alerts++
		a.Rule, a.KeyField, a.Key, a.At = "", "", "", time.Time{}
		if json.Unmarshal(msg.Data(), &a) == nil && d.engine.Fired(a.Rule, a.KeyField, a.Key, a.At) {
			restored++
		}
		return nil
	})
	if err != nil {
		d.log.Warn("cooldowns restored in part", "alerts", alerts, "restored", restored, "err", err)
		return start
	}
	if alerts > 0 {
		d.log.Info("detector cooldowns restored from the alerts stream", "alerts", alerts, "restored", restored, "since", start)
	}
	return start
}

// warmUp rebuilds the windows a restart (or a take-over) lost: it feeds the
// engine, in warm-up mode, the events of the last window before the
// consumer's ack floor (all of them already processed, their alerts already
// published), so a scan that straddles a restart is still caught and a key
// that fired in that last window stays quiet (older cooldowns are not
// rebuilt: such a key can fire again; the responder's bans are idempotent
// per alert and never shortened). Events after the floor are evaluated
// normally, by catchUp and the consumer.
func (d *detector) warmUp(ctx context.Context, floor uint64) {
	stream, err := d.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return
	}
	last, err := stream.GetMsg(ctx, floor)
	if err != nil {
		d.log.Info("detector warm-up skipped: last processed batch no longer stored", "seq", floor)
		return
	}
	// Events published while the detector was down are a backlog to
	// evaluate, not last week's log: the start-up cut-off counts from the
	// last batch processed, not from now.
	d.engine.SetNotBefore(last.Time)
	start := last.Time.Add(-time.Duration(d.engine.RuleSet().MaxWindow()) - d.lateness)
	events := 0
	d.lock.mu.Lock()
	defer d.lock.mu.Unlock()
	d.engine.SetWarmUp(true)
	defer d.engine.SetWarmUp(false)
	err = d.readStream(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
	}, floor, func(msg jetstream.Msg, _ uint64) error {
		d.evaluate(msg.Data(), func(*event.Event) { events++ }) // warm-up mode: no alerts
		return nil
	})
	if err != nil {
		d.log.Warn("detector warm-up cut short", "events", events, "err", err)
		return
	}
	d.log.Info("detector windows rebuilt from the stream", "events", events, "since", start)
}
