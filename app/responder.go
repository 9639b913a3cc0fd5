package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// responder consumes VIGIL_ALERTS and applies their actions. An alert is
// acknowledged only once its actions are applied and audited; while Redis is
// down it is negatively acknowledged with a growing delay and comes back, so
// an outage delays bans and loses none.
type responder struct {
	js  jetstream.JetStream
	r   *respond.Responder
	log *slog.Logger
}

// retryDelay is the redelivery delay after the n-th failed attempt.
func retryDelay(n uint64) time.Duration {
	d := time.Second << min(n, 5)
	return min(d, 30*time.Second)
}

func (s *responder) run(ctx context.Context) error {
	dur := &bus.Durable{
		JS:     s.js,
		Stream: bus.StreamAlerts,
		Config: jetstream.ConsumerConfig{
			Durable:       consumerRespond,
			Description:   "Vigil responder",
			FilterSubject: bus.SubjectAlerts + ".>",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       time.Minute,
			MaxAckPending: 64,
		},
		Batch: 16,
		Log:   s.log,
	}
	if s.restoreBreakers(ctx) != nil {
		return nil // ctx ended: Vigil is stopping
	}
	cons, err := dur.Open(ctx)
	if err != nil {
		return err
	}
	return dur.Run(ctx, cons, func(msg jetstream.Msg) { s.handle(ctx, msg) })
}

// restoreBreakers opens the circuit breakers recorded in Redis before any
// alert is handled, waiting for Redis (no action can be applied without
// it anyway). It fails only when ctx ends.
func (s *responder) restoreBreakers(ctx context.Context) error {
	for n := uint64(0); ; n++ {
		opened, err := s.r.RestoreBreakers(ctx)
		if err == nil {
			if len(opened) > 0 {
				s.log.Error("circuit breakers still open from before the restart: automatic bans of these scopes stay stopped until `vigil breaker reset`", "scopes", opened)
			}
			return nil
		}
		delay := retryDelay(n)
		s.log.Warn("reading open circuit breakers from Redis, will retry", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func (s *responder) handle(ctx context.Context, msg jetstream.Msg) {
	var a event.Alert
	if err := json.Unmarshal(msg.Data(), &a); err != nil {
		s.log.Error("undecodable alert, dropping it", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("undecodable alert")
		return
	}
	if md, err := msg.Metadata(); err == nil {
		a.Stored = md.Timestamp
	}
	audits, retry, err := s.r.Handle(ctx, &a)
	if err != nil && retry {
		n := uint64(1)
		if md, merr := msg.Metadata(); merr == nil {
			n = md.NumDelivered
		}
		delay := retryDelay(n)
		s.log.Warn("applying actions failed, will retry", "alert", a.ID, "rule", a.Rule, "key", a.Key, "attempt", n, "retry_in", delay, "err", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	for i := range audits {
		if perr := s.audit(ctx, &audits[i]); perr != nil {
			_ = msg.NakWithDelay(time.Second) // shutting down: do it again later
			return
		}
	}
	if err != nil {
		s.log.Error("applying actions failed for good", "alert", a.ID, "rule", a.Rule, "key", a.Key, "err", err)
		_ = msg.TermWithReason(err.Error())
		return
	}
	_ = msg.Ack()
}

// audit appends one entry to VIGIL_AUDIT, retrying until it is stored.
func (s *responder) audit(ctx context.Context, au *event.Audit) error {
	data, err := json.Marshal(au)
	if err != nil {
		return err
	}
	return store(ctx, s.js, bus.AuditSubject(au.Action), au.ID, data, s.log, "writing audit entry", nil)
}
