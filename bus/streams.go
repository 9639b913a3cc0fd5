package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and subjects (the contract other programs read).
const (
	StreamEvents = "VIGIL_EVENTS" // vigil.events.<source>.<partition>
	StreamAlerts = "VIGIL_ALERTS" // vigil.alerts.<rule-id>
	StreamAudit  = "VIGIL_AUDIT"  // vigil.audit.<action>; delete and purge denied

	SubjectEvents = "vigil.events"
	SubjectAlerts = "vigil.alerts"
	SubjectAudit  = "vigil.audit"
)

// StreamsConfig sizes the streams. Zero values take the defaults.
type StreamsConfig struct {
	// EventsMaxAge is how long events are kept (default 24h).
	EventsMaxAge time.Duration
	// EventsMaxBytes caps the events stream (default 4 GiB); the oldest
	// events are discarded past it.
	EventsMaxBytes int64
	// AlertsMaxAge is how long alerts are kept (default 30 days).
	AlertsMaxAge time.Duration
	// Duplicates is the window in which a re-sent message id is dropped
	// (default 10m): it must cover a collector's restart.
	Duplicates time.Duration
	// Replicas for a clustered NATS (default 1).
	Replicas int
}

func (c *StreamsConfig) defaults() {
	if c.EventsMaxAge <= 0 {
		c.EventsMaxAge = 24 * time.Hour
	}
	if c.EventsMaxBytes <= 0 {
		c.EventsMaxBytes = 4 << 30
	}
	if c.AlertsMaxAge <= 0 {
		c.AlertsMaxAge = 30 * 24 * time.Hour
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 10 * time.Minute
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
}

// EnsureStreams creates or updates the three streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg.defaults()
	streams := []jetstream.StreamConfig{{
		Name:        StreamEvents,
		Description: "Normalised security events (NDJSON batches, ECS fields)",
		Subjects:    []string{SubjectEvents + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.EventsMaxAge,
		MaxBytes:    cfg.EventsMaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
	}, {
		Name:        StreamAlerts,
		Description: "Detections: one JSON alert per message",
		Subjects:    []string{SubjectAlerts + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.AlertsMaxAge,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
	}, {
		Name:        StreamAudit,
		Description: "Append-only audit trail of every action",
		Subjects:    []string{SubjectAudit + ".>"},
		Storage:     jetstream.FileStorage,
		Duplicates:  cfg.Duplicates,
		DenyDelete:  true,
		DenyPurge:   true,
		Replicas:    cfg.Replicas,
	}}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Partition is the partition of a grouping key: FNV-1a 32 of the key modulo
// n, the same function NATS subject mapping's partition() uses.
func Partition[K ~string | ~[]byte](key K, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// EventSubject is the subject of events of source in partition p.
func EventSubject(source string, p int) string {
	return SubjectEvents + "." + source + "." + strconv.Itoa(p)
}

// AlertSubject is the subject of alerts of a rule.
func AlertSubject(rule string) string { return SubjectAlerts + "." + rule }

// AuditSubject is the subject of audit entries of an action.
func AuditSubject(action string) string { return SubjectAudit + "." + action }

// KeepStreams checks every interval that the three streams exist and
// creates again any that is missing (a NATS server that came back without
// its store, an operator's `nats stream rm`), until ctx is done. It reports
// each re-creation through log; while NATS is unreachable it waits.
func KeepStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, name := range []string{StreamEvents, StreamAlerts, StreamAudit} {
			sctx, cancel := context.WithTimeout(ctx, interval)
			_, err := js.Stream(sctx, name)
			cancel()
			if !errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			sctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			err = EnsureStreams(sctx, js, cfg)
			cancel()
			if err != nil {
				log.Warn("stream missing; creating it again failed, will retry", "stream", name, "err", err)
			} else {
				log.Warn("stream was missing (did NATS lose its store?); created the streams again", "stream", name)
			}
			break
		}
	}
}
