package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// store publishes data on subject with the dedupe id, retrying with a
// growing back-off until JetStream has stored it or ctx ends. waiting, when
// set, is called before each retry (to keep the message being processed
// from being redelivered meanwhile).
func store(ctx context.Context, js jetstream.JetStream, subject, id string, data []byte, log *slog.Logger, what string, waiting func()) error {
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set(nats.MsgIdHdr, id)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn(what+" failed, will retry", "err", err, "id", id)
		if waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}
