package app

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// An operator's unban gives the address a fresh start in the detector too
// (detect.Engine.Forgive): the rule that banned it would otherwise stay
// quiet for it for its cooldown, a ban's 72 h by default, and an address
// unbanned that attacks again would not be banned again. The detector
// hears of unbans from the audit entries the responder publishes
// (vigil.audit.unban), live, and reads back those of the span whose
// cooldowns it restores from VIGIL_AUDIT when it starts or takes over.

// followUnbans forgives each unban audited from now on, until the returned
// function is called. It reads VIGIL_AUDIT with an ordered consumer, which
// goes on after a reconnect where it left off, so an unban audited while
// the connection was down is not missed.
func (d *detector) followUnbans(ctx context.Context) (stop func()) {
	cons, err := d.js.OrderedConsumer(ctx, bus.StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.AuditSubject(event.ActionUnban)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	var cc jetstream.ConsumeContext
	if err == nil {
		cc, err = cons.Consume(func(msg jetstream.Msg) {
			d.lock.mu.Lock()
			defer d.lock.mu.Unlock()
			if d.forgive(msg.Data()) {
				d.unbans.Add(1)
			}
		})
	}
	if err != nil {
		d.log.Warn("not following unbans: an address unbanned early stays in its rules' cooldowns until the next restart", "err", err)
		return func() {}
	}
	return cc.Stop
}

// forgive applies one audit entry of an unban, applied or finding nothing
// to remove (a ban Redis lost), to the engine, and reports whether it was
// one. The caller holds d.lock.mu.
func (d *detector) forgive(data []byte) bool {
	var au event.Audit
	if json.Unmarshal(data, &au) != nil || au.Action != event.ActionUnban ||
		(au.Result != respond.ResultApplied && au.Result != respond.ResultUnchanged) {
		return false
	}
	p, err := respond.ParseTarget(au.Target)
	if err != nil {
		return false
	}
	if n := d.engine.Forgive(p, au.Time); n > 0 {
		d.log.Info("unbanned: the detector ended the address's cooldowns, its next offence counts", "target", au.Target, "cooldowns", n, "actor", au.Actor)
	}
	return true
}

// restoreUnbans forgives the unbans audited since start, in order, once
// the cooldowns of the alerts since then are restored and the windows
// warmed up (which may fire again). The caller holds d.lock.mu.
func (d *detector) restoreUnbans(ctx context.Context, start time.Time) error {
	stream, err := d.js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return err
	}
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.AuditSubject(event.ActionUnban)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if err != nil {
		return err
	}
	info := oc.CachedInfo()
	if info == nil || info.NumPending == 0 {
		return nil
	}
	batch, err := oc.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return err
	}
	for msg := range batch.Messages() {
		d.forgive(msg.Data()) // not counted again: vigil_detect_unbans_total counts live ones
	}
	return batch.Error()
}
